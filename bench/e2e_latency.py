"""Open-loop end-to-end latency: K users, each with a WebSocket, submit
questions at a fixed total rate; latency is measured from the moment the POST
is sent to the moment the completed update arrives on the asker's socket.
Usage: e2e_latency.py PORT [--users 16] [--rate 200] [--seconds 10]
Prints p50/p99/p99.9 and the number of completed/missing questions."""
import argparse
import asyncio
import json
import statistics
import time

import websockets


async def http_post(reader, writer, body):
    writer.write(b"POST /questions HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))
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
    a = ap.parse_args()
    sent_at, done_at = {}, {}
    users = ["lat%d" % i for i in range(a.users)]
    sockets = []
    for u in users:
        ws = await websockets.connect("ws://127.0.0.1:%d/ws?user_id=%s" % (a.port, u), max_queue=None)
        assert json.loads(await ws.recv())["type"] == "registered"
        sockets.append(ws)

    async def listen(ws):
        try:
            async for raw in ws:
                now = time.perf_counter()
                m = json.loads(raw)
                if m.get("type") == "question_update" and m["status"] in ("completed", "error"):
                    done_at.setdefault(m["question_id"], now)
        except websockets.ConnectionClosed:
            pass

    listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
    conns = [await asyncio.open_connection("127.0.0.1", a.port) for _ in range(32)]
    free = asyncio.Queue()
    for c in conns:
        free.put_nowait(c)
    errors = 0

    async def submit(i):
        nonlocal errors
        r, w = await free.get()
        body = json.dumps({"user_id": users[i % len(users)], "question": "Como funciona o Tesouro Selic? #%d" % i}).encode()
        t0 = time.perf_counter()
        try:
            status, resp = await http_post(r, w, body)
            if status == 202:
                sent_at[resp["data"]["question_id"]] = t0
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
        tasks.append(asyncio.create_task(submit(i)))
    await asyncio.gather(*tasks)
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and any(q not in done_at for q in sent_at):
        await asyncio.sleep(0.05)
    lat = sorted((done_at[q] - t) * 1000 for q, t in sent_at.items() if q in done_at)
    missing = sum(1 for q in sent_at if q not in done_at)
    for ws in sockets:
        await ws.close()
    for t in listeners:
        t.cancel()
    for _, w in conns:
        w.close()

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else float("nan")
    print("offered %.0f q/s for %.0f s with %d users: %d accepted, %d errors, %d completed, %d missing"
          % (a.rate, a.seconds, a.users, len(sent_at), errors, len(lat), missing))
    print("POST -> completed update latency ms: p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  mean %.2f"
          % (pct(50), pct(99), pct(99.9), lat[-1] if lat else float("nan"), statistics.mean(lat) if lat else float("nan")))


asyncio.run(main())
