"""WebSocket capacity, Python side. bench/run.sh uses `ws10k.py serve` (the
baseline server) with the C client bench/ws_client.c; the Python client here
does the same measurement but reads only ~10k frames/s, so its delivery times
are client-bound (kept for machines without a C compiler).

WebSocket capacity: N concurrent connections on one server process; server
resident memory per connection (VmRSS from /proc/PID/status before connecting
and after all N are open) and the time to deliver one update to each.
toro: all N sockets belong to one user (--max-ws-per-user N); one POST
/questions makes the notify stage push the completed update to every socket of
the asker; time = POST sent -> last socket received it (also first -> last).
baseline: `ws10k.py serve PORT` is a Python `websockets` server (asyncio, no
compression) that on a "fire" message broadcasts one update to every socket.
usage: ws10k.py client PORT SERVER_PID [--n 10000] [--mode toro|baseline]
       ws10k.py serve PORT
Needs ulimit -n > N+100 (run.sh raises it) and TORO_JWT_SECRET for toro."""
import argparse
import asyncio
import json
import os
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokens import jwt_for  # noqa: E402


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def serve(port):
    clients = set()

    async def handler(ws):
        clients.add(ws)
        try:
            await ws.send(json.dumps({"type": "registered"}))
            async for m in ws:
                if m == "fire":
                    websockets.broadcast(clients, json.dumps({"type": "question_update", "status": "completed",
                                                              "question_id": "q1", "answer": "x" * 200}))
        finally:
            clients.discard(ws)
    async with websockets.serve(handler, "127.0.0.1", port, compression=None, max_queue=None, backlog=4096):
        await asyncio.Future()


async def client(a):
    token = jwt_for("ws10k") if a.mode == "toro" else "x"
    url = "ws://127.0.0.1:%d/ws?access_token=%s" % (a.port, token)
    rss0 = rss_kb(a.pid)
    socks = []
    t0 = time.perf_counter()
    sem = asyncio.Semaphore(256)

    async def one():
        async with sem:
            for attempt in range(5):
                try:
                    ws = await websockets.connect(url, compression=None, max_queue=None, open_timeout=30)
                    m = json.loads(await ws.recv())
                    assert m["type"] == "registered", m
                    return ws
                except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake):
                    await asyncio.sleep(0.2 * (attempt + 1))
            raise RuntimeError("cannot connect")
    socks = await asyncio.gather(*[one() for _ in range(a.n)])
    connect_s = time.perf_counter() - t0
    await asyncio.sleep(1.0)
    rss1 = rss_kb(a.pid)
    got = []
    done = asyncio.Event()

    async def wait_update(ws):
        async for raw in ws:
            m = json.loads(raw)
            if m.get("type") == "question_update" and m.get("status") in ("completed", "error"):
                got.append(time.perf_counter())
                if len(got) == a.n:
                    done.set()
                return
    waiters = [asyncio.create_task(wait_update(ws)) for ws in socks]
    await asyncio.sleep(0.2)
    t_send = time.perf_counter()
    t_accepted = [None]
    if a.mode == "toro":
        r, w = await asyncio.open_connection("127.0.0.1", a.port)
        body = b'{"question":"Qual o limite de garantia do FGC?"}'
        w.write(b"POST /questions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (token.encode(), len(body), body))
        await w.drain()
        await r.read()
        t_accepted[0] = time.perf_counter()
        w.close()
    else:
        await socks[0].send("fire")
    try:
        await asyncio.wait_for(done.wait(), 60)
    except asyncio.TimeoutError:
        pass
    rss2 = rss_kb(a.pid)
    out = {"mode": a.mode, "connections": a.n, "connect_s": round(connect_s, 2),
           "rss_before_mb": round(rss0 / 1024, 1), "rss_after_mb": round(rss1 / 1024, 1),
           "rss_per_conn_kb": round((rss1 - rss0) / a.n, 2), "rss_after_update_mb": round(rss2 / 1024, 1),
           "delivered": len(got),
           "post_202_ms": round((t_accepted[0] - t_send) * 1000, 1) if t_accepted[0] else None,
           "post_to_first_ms": round((min(got) - t_send) * 1000, 1) if got else None,
           "deliver_all_ms": round((max(got) - t_send) * 1000, 1) if got else None,
           "first_to_last_ms": round((max(got) - min(got)) * 1000, 1) if got else None}
    for t in waiters:
        t.cancel()
    await asyncio.gather(*[ws.close() for ws in socks], return_exceptions=True)
    print(json.dumps(out))


def main():
    if sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2])))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("port", type=int)
    ap.add_argument("pid", type=int)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--mode", default="toro")
    asyncio.run(client(ap.parse_args()))


if __name__ == "__main__":
    main()
