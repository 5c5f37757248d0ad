"""Burst benchmark used by bench/distributed.sh: U users each hold a
WebSocket on the api; N questions are posted as fast as T threads can; for
each question the latency is POST sent -> completed update received on the
asker's socket. Prints one JSON line: throughput (questions completed per
second over the whole burst), p50/p99 latency in ms, and missing updates.
Usage: distributed_bench.py PORT [PORT...] [--n 600] [--users 8] [--threads 8]
(ports are used round-robin; needs TORO_JWT_SECRET as the servers have)."""
import argparse
import base64
import hashlib
import hmac
import json
import os
import statistics
import threading
import time

import requests
import websocket


def jwt_for(user, secret):
    b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
    now = int(time.time())
    h = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b(json.dumps({"sub": user, "iss": "toro-bench", "iat": now, "exp": now + 3600}).encode())
    sig = hmac.new(secret.encode(), ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (h, p, b(sig))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ports", type=int, nargs="+")
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--threads", type=int, default=8)
    a = ap.parse_args()
    secret = os.environ["TORO_JWT_SECRET"]
    users = ["bench%d" % i for i in range(a.users)]
    tokens = {u: jwt_for(u, secret) for u in users}
    sent, done = {}, {}
    lock = threading.Lock()
    sockets = []
    for i, u in enumerate(users):
        port = a.ports[i % len(a.ports)]
        ws = websocket.create_connection("ws://127.0.0.1:%d/ws?access_token=%s" % (port, tokens[u]), timeout=10)
        assert json.loads(ws.recv())["type"] == "registered"
        sockets.append(ws)

    def listen(ws):
        ws.settimeout(1.0)
        while True:
            try:
                m = json.loads(ws.recv())
            except websocket.WebSocketTimeoutException:
                with lock:
                    if stop_listen[0]:
                        return
                continue
            except Exception:
                return
            if m.get("type") == "question_update" and m["status"] in ("completed", "error"):
                with lock:
                    done.setdefault(m["question_id"], time.time())

    stop_listen = [False]
    listeners = [threading.Thread(target=listen, args=(ws,), daemon=True) for ws in sockets]
    for t in listeners:
        t.start()
    counter = iter(range(a.n))

    def post():
        s = requests.Session()
        while True:
            with lock:
                k = next(counter, None)
            if k is None:
                return
            u = users[k % len(users)]
            port = a.ports[k % len(a.ports)]
            t0 = time.time()
            r = s.post("http://127.0.0.1:%d/questions" % port, json={"question": "Pergunta %d: o que é CDB?" % k},
                       headers={"Authorization": "Bearer " + tokens[u]}, timeout=30)
            if r.status_code == 202:
                with lock:
                    sent[r.json()["data"]["question_id"]] = t0

    start = time.time()
    posters = [threading.Thread(target=post) for _ in range(a.threads)]
    for t in posters:
        t.start()
    for t in posters:
        t.join()
    deadline = time.time() + 120
    while time.time() < deadline:
        with lock:
            if all(q in done for q in sent):
                break
        time.sleep(0.05)
    with lock:
        stop_listen[0] = True
        lat = sorted((done[q] - sent[q]) * 1000 for q in sent if q in done)
        end = max(done.values()) if done else time.time()
    for ws in sockets:
        ws.close()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
    print(json.dumps({"accepted": len(sent), "completed": len(lat), "missing": len(sent) - len(lat),
                      "throughput_qps": round(len(lat) / (end - start), 1), "p50_ms": round(statistics.median(lat), 1)
                      if lat else None, "p99_ms": round(q(0.99), 1)}))


if __name__ == "__main__":
    main()
