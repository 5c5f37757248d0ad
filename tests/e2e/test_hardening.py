"""Hardening against hostile clients and sick machines (issue 12), against the
real binary over real sockets on 127.0.0.1: the output budget and
back-pressure, half-closed clients, pipelined POSTs. Every loop is bounded in
count and time; no test asserts a timing, only bounds on memory, CPU and log
lines that an unbounded server would exceed by orders of magnitude."""
import json
import os
import socket
import threading
import time

import requests

from conftest import auth


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def cpu_s(pid):
    """utime + stime of the process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_responses(sock, want, timeout=60):
    """Reads HTTP/1.1 responses (Content-Length framed) until `want` arrived,
    EOF or the deadline. Returns (list of (status, headers, body), eof)."""
    buf = b""
    out = []
    eof = False
    deadline = time.time() + timeout
    sock.settimeout(1.0)
    while len(out) < want and time.time() < deadline:
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", "0"))
            if len(buf) < end + 4 + n:
                break
            out.append((int(head[0].split()[1]), headers, buf[end + 4:end + 4 + n]))
            buf = buf[end + 4 + n:]
        if len(out) >= want:
            break
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            eof = True
            break
        if not chunk:
            eof = True
            break
        buf += chunk
    return out, eof


def post_bytes(user, question, close=False):
    body = json.dumps({"user_id": user, "question": question}).encode()
    head = ("POST /questions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Authorization: %s\r\nContent-Length: %d\r\n%s\r\n"
            % (auth(user)["Authorization"], len(body), "Connection: close\r\n" if close else ""))
    return head.encode() + body


def stored_count(server, user):
    n, token = 0, None
    for _ in range(100):
        params = {"user_id": user, "limit": 100}
        if token:
            params["next_token"] = token
        d = requests.get(server.url("/questions"), params=params, headers=auth(user), timeout=10).json()["data"]
        n += len(d["items"])
        token = d["next_token"]
        if not token:
            break
    return n


# --- 1. one output budget per connection -------------------------------------

def test_never_reading_pipeliner_keeps_rss_bounded(server_factory):
    """A client pipelining GET /app.js (33 bytes in, ~28 KB out) and never
    reading made RSS grow by hundreds of MB; with the output budget the server
    stops reading it. Bound: RSS grows by less than 48 MB with 4 such sockets
    (each could otherwise queue >100 MB), and the stalled sockets are closed
    after the send timeout."""
    s = server_factory(extra_args=["--send-timeout-ms", "4000"])
    pid = s.proc.pid
    assert requests.get(s.url("/app.js"), timeout=5).status_code == 200
    base = rss_kb(pid)
    req = b"GET /app.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 256
    socks = []
    sent = []
    for _ in range(4):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.setblocking(False)
        socks.append(c)
        sent.append(0)
    deadline = time.time() + 1.5
    while time.time() < deadline:
        progressed = False
        for i, c in enumerate(socks):
            try:
                sent[i] += c.send(req)
                progressed = True
            except BlockingIOError:
                pass
        if not progressed:
            time.sleep(0.05)
    grown_mb = (rss_kb(pid) - base) / 1024
    # an unbounded server would queue ~850x what was sent
    assert min(sent) > 64 * 1024, sent
    assert grown_mb < 48, "RSS grew by %.1f MB for %r bytes of pipelined GETs" % (grown_mb, sent)
    # the server is still responsive to others
    assert requests.get(s.url("/healthz"), timeout=5).status_code == 200
    # a socket whose output stays over the budget is closed after the send timeout
    c = socks[0]
    c.setblocking(True)
    c.settimeout(2.0)
    time.sleep(5)
    got, closed = 0, False
    end = time.time() + 20
    while time.time() < end:
        try:
            chunk = c.recv(1 << 16)
        except socket.timeout:
            continue
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        got += len(chunk)
    assert closed, "a never-reading socket was not closed (read %d bytes)" % got
    for c in socks:
        c.close()
    assert "bytes unsent" in s.log()


def test_pipelined_posts_all_answered(server_factory):
    """1,000 pipelined POSTs (about 340 KB) on one socket: every one gets its
    response and every 202 names a stored question (the connection used to be
    reset with no response while one question was stored)."""
    s = server_factory()
    n = 1000
    payload = b"".join(post_bytes("pipe", "Pergunta em lote numero %d sobre CDB?" % i) for i in range(n))
    c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    sender = threading.Thread(target=c.sendall, args=(payload,), daemon=True)
    sender.start()
    got, eof = read_responses(c, n, timeout=120)
    sender.join(10)
    c.close()
    assert len(got) == n, "%d of %d responses (eof=%s)" % (len(got), n, eof)
    statuses = [st for st, _, _ in got]
    assert set(statuses) <= {202, 503}, set(statuses)
    ids = {json.loads(b)["data"]["question_id"] for st, _, b in got if st == 202}
    assert len(ids) == statuses.count(202)
    assert stored_count(s, "pipe") == len(ids)


def test_half_closed_client_gets_its_responses(server_factory):
    """POST then shutdown(SHUT_WR): the question is stored and the client
    reads its 202 (it used to get nothing); pipelined requests before the
    FIN are all answered, then the server closes."""
    s = server_factory()
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c.sendall(post_bytes("half", "O que e Tesouro Direto?"))
    c.shutdown(socket.SHUT_WR)
    got, eof = read_responses(c, 2, timeout=20)
    c.close()
    assert [st for st, _, _ in got] == [202] and eof, got
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + post_bytes("half", "O que e CDB?") +
              b"GET /app.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    c.shutdown(socket.SHUT_WR)
    got, eof = read_responses(c, 4, timeout=20)
    c.close()
    assert [st for st, _, _ in got] == [200, 202, 200] and eof, [st for st, _, _ in got]
    assert stored_count(s, "half") == 2
