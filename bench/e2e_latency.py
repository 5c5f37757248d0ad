"""Open-loop end-to-end latency: K users, each with a WebSocket, submit
questions at a fixed total offered rate (the send schedule never waits for
answers); latency is measured from the moment a POST was *scheduled* (so a
slow server cannot hide latency by back-pressure on the client) to the moment
the completed update arrives on the asker's socket.
Needs TORO_JWT_SECRET (the server's secret) to sign the users' tokens.
Usage: e2e_latency.py PORT [--users 16] [--rate 200] [--seconds 10] [--conns 64] [--distinct N] [--drain 30]
Every question is unique by default; --distinct N cycles through N questions
instead (a service with a query-vector cache then embeds each only once).
After the last send it waits up to --drain seconds for the outstanding updates.
Prints one JSON line: offered/achieved (send) rate, accepted, errors, completed,
missing, p50/p99/p99.9/max/mean latency in ms, completed_qps (completed over
first scheduled send -> last completed update) and drain_qps (completions per
second between the first and the last completed update: the service rate
when the offered load exceeds it)."""
import argparse
import asyncio
import json
import os
import statistics
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokens import jwt_for  # noqa: E402


async def http_post(reader, writer, body, token):
    writer.write(b"POST /questions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s" % (token, len(body), body))
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    data = await reader.readexactly(length)
    return int(head.split(b" ")[1]), json.loads(data)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--distinct", type=int, default=0, help="cycle through N questions (0: all unique)")
    ap.add_argument("--drain", type=float, default=30.0, help="seconds to wait for updates after the last send")
    a = ap.parse_args()
    sent_at, done_at = {}, {}
    users = ["lat%d" % i for i in range(a.users)]
    tokens = [jwt_for(u).encode() for u in users]
    sockets = []
    for t in tokens:
        ws = await websockets.connect("ws://127.0.0.1:%d/ws?access_token=%s" % (a.port, t.decode()), max_queue=None)
        assert json.loads(await ws.recv())["type"] == "registered"
        sockets.append(ws)

    async def listen(ws):
        try:
            async for raw in ws:
                now = time.perf_counter()
                m = json.loads(raw)
                if m.get("type") == "question_update" and m.get("status") in ("completed", "error"):
                    done_at.setdefault(m["question_id"], now)
        except websockets.ConnectionClosed:
            pass

    listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
    conns = [await asyncio.open_connection("127.0.0.1", a.port) for _ in range(a.conns)]
    free = asyncio.Queue()
    for c in conns:
        free.put_nowait(c)
    errors = 0
    last_send = [0.0]

    async def submit(i, t_sched):
        nonlocal errors
        r, w = await free.get()
        n = i % a.distinct if a.distinct > 0 else i
        body = json.dumps({"question": "Como funciona o Tesouro Selic? #%d" % n}).encode()
        try:
            status, resp = await http_post(r, w, body, tokens[i % len(tokens)])
            last_send[0] = time.perf_counter()
            if status == 202:
                sent_at[resp["data"]["question_id"]] = t_sched
            else:
                errors += 1
        finally:
            free.put_nowait((r, w))

    total = int(a.rate * a.seconds)
    start = time.perf_counter()
    tasks = []
    for i in range(total):
        target = start + i / a.rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(submit(i, target)))
    await asyncio.gather(*tasks)
    achieved = total / max(1e-9, last_send[0] - start)
    deadline = time.perf_counter() + a.drain
    while time.perf_counter() < deadline and any(q not in done_at for q in sent_at):
        await asyncio.sleep(0.05)
    lat = sorted((done_at[q] - t) * 1000 for q, t in sent_at.items() if q in done_at)
    missing = sum(1 for q in sent_at if q not in done_at)
    ends = sorted(done_at[q] for q in sent_at if q in done_at)
    completed_qps = round(len(ends) / max(1e-9, ends[-1] - start), 1) if ends else 0.0
    drain_qps = round((len(ends) - 1) / (ends[-1] - ends[0]), 1) if len(ends) > 1 and ends[-1] > ends[0] else None
    for ws in sockets:
        await ws.close()
    for t in listeners:
        t.cancel()
    for _, w in conns:
        w.close()

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 2) if lat else None
    print(json.dumps({"offered_qps": a.rate, "achieved_qps": round(achieved, 1), "seconds": a.seconds,
                      "users": a.users, "accepted": len(sent_at), "errors": errors, "completed": len(lat),
                      "missing": missing, "p50_ms": pct(50), "p99_ms": pct(99), "p999_ms": pct(99.9),
                      "max_ms": round(lat[-1], 2) if lat else None,
                      "mean_ms": round(statistics.mean(lat), 2) if lat else None,
                      "completed_qps": completed_qps, "drain_qps": drain_qps}))


asyncio.run(main())
