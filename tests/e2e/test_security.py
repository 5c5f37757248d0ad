"""Authentication, isolation between users, limits and hostile clients,
through the real binary."""
import json
import socket
import subprocess
import time

import requests
import websocket

from conftest import TEST_ISSUER, BIN, TEST_SECRET, auth, jwt_for, make_jwt, post_question, recv_until, wait_terminal, ws_connect


def close_code(ws, timeout=5):
    """Reads raw frames from the socket until the server's close frame; returns its code."""
    sock = ws.sock
    sock.settimeout(timeout)
    buf = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        while len(buf) >= 2:
            op, ln = buf[0] & 0x0F, buf[1] & 0x7F
            hl = 2
            if ln == 126:
                if len(buf) < 4:
                    break
                ln, hl = int.from_bytes(buf[2:4], "big"), 4
            elif ln == 127:
                if len(buf) < 10:
                    break
                ln, hl = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < hl + ln:
                break
            if op == 0x8:
                return int.from_bytes(buf[hl:hl + 2], "big")
            buf = buf[hl + ln:]
        try:
            b = sock.recv(65536)
        except (socket.timeout, OSError):
            break
        if not b:
            break
        buf += b
    return None


def test_isolation_between_users(server):
    a_ws = ws_connect(server, "alice")
    b_ws = ws_connect(server, "bruno")
    qa = post_question(server, "alice", "O que é o Tesouro Selic?").json()["data"]["question_id"]
    qb = post_question(server, "bruno", "O que é CDB?").json()["data"]["question_id"]
    recv_until(a_ws, lambda m: m.get("question_id") == qa and m["status"] == "completed")
    got_b = recv_until(b_ws, lambda m: m.get("question_id") == qb and m["status"] == "completed")
    assert all(m.get("question_id") == qb for m in got_b if m.get("type") == "question_update")
    # bruno's socket never saw alice's question and vice versa
    b_ws.settimeout(1)
    try:
        extra = json.loads(b_ws.recv())
        assert extra.get("question_id") != qa, "bruno was notified of alice's question"
    except websocket.WebSocketTimeoutException:
        pass
    # reads: by id, by list, with and without naming the other user
    assert requests.get(server.url("/questions/" + qa), headers=auth("bruno"), timeout=5).status_code == 404
    assert requests.get(server.url("/questions/" + qa), params={"user_id": "alice"}, headers=auth("bruno"),
                        timeout=5).status_code == 403
    mine = requests.get(server.url("/questions"), headers=auth("bruno"), timeout=5).json()["data"]["items"]
    assert [q["question_id"] for q in mine] == [qb]
    assert requests.get(server.url("/questions"), params={"user_id": "alice"}, headers=auth("bruno"),
                        timeout=5).status_code == 403
    # writes as somebody else
    r = requests.post(server.url("/questions"), json={"user_id": "alice", "question": "oi"}, headers=auth("bruno"),
                      timeout=5)
    assert r.status_code == 403
    # a WebSocket cannot be registered for alice with bruno's token
    try:
        websocket.create_connection(server.ws_url("?user_id=alice&access_token=" + jwt_for("bruno")), timeout=5)
        raise AssertionError("registered for another user")
    except websocket.WebSocketBadStatusException as e:
        assert e.status_code == 403
    a_ws.close()
    b_ws.close()


def test_token_validation(server):
    now = int(time.time())
    url = server.url("/questions")
    cases = {
        "expired": make_jwt({"sub": "u", "iss": TEST_ISSUER, "exp": now - 120}),
        "not yet valid": make_jwt({"sub": "u", "iss": TEST_ISSUER, "exp": now + 600, "nbf": now + 600}),
        "wrong issuer": make_jwt({"sub": "u", "iss": "evil", "exp": now + 600}),
        "no exp": make_jwt({"sub": "u", "iss": TEST_ISSUER}),
        "wrong secret": make_jwt({"sub": "u", "iss": TEST_ISSUER, "exp": now + 600}, secret="x" * 40),
        "alg none": make_jwt({"sub": "u", "iss": TEST_ISSUER, "exp": now + 600},
                             header={"alg": "none", "typ": "JWT"}).rsplit(".", 1)[0] + ".",
        "alg HS512": make_jwt({"sub": "u", "iss": TEST_ISSUER, "exp": now + 600}, header={"alg": "HS512"}),
        "bad subject": make_jwt({"sub": "a b", "iss": TEST_ISSUER, "exp": now + 600}),
        "garbage": "abc.def.ghi",
        "two parts": "abc.def",
    }
    good = jwt_for("u")
    h, p, s = good.split(".")
    tampered_payload = make_jwt({"sub": "admin", "iss": TEST_ISSUER, "exp": now + 600}).split(".")[1]
    cases["tampered"] = "%s.%s.%s" % (h, tampered_payload, s)
    for name, token in cases.items():
        r = requests.get(url, headers={"Authorization": "Bearer " + token}, timeout=5)
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.json()["success"] is False
        assert "Bearer" in r.headers.get("WWW-Authenticate", "")
    assert requests.get(url, headers={"Authorization": "Bearer " + good}, timeout=5).status_code == 200
    assert requests.get(url, headers={"Authorization": "Basic dTpw"}, timeout=5).status_code == 401


def test_dev_login_issues_working_tokens(server_factory):
    server = server_factory(extra_args=["--auth", "dev"])
    r = requests.post(server.url("/auth/dev-login"), json={"user_id": "dora"}, timeout=5)
    assert r.status_code == 200
    tok = r.json()["data"]["token"]
    assert r.json()["data"]["user_id"] == "dora"
    q = requests.post(server.url("/questions"), json={"question": "O que é LCI?"},
                      headers={"Authorization": "Bearer " + tok}, timeout=5)
    assert q.status_code == 202 and q.json()["data"]["user_id"] == "dora"
    assert requests.post(server.url("/auth/dev-login"), json={"user_id": "a b"}, timeout=5).status_code == 400
    assert requests.post(server.url("/auth/dev-login"), json={"user_id": "x", "admin": True}, timeout=5).status_code == 400


def test_jwt_mode(server_factory, tmp_path):
    s = server_factory(extra_args=["--auth", "jwt", "--jwt-issuer", "https://idp.example", "--jwt-audience", "toro"])
    now = int(time.time())
    ok = make_jwt({"sub": "joao", "iss": "https://idp.example", "aud": ["other", "toro"], "exp": now + 600})
    wrong_aud = make_jwt({"sub": "joao", "iss": "https://idp.example", "aud": "other", "exp": now + 600})
    assert requests.get(s.url("/questions"), headers={"Authorization": "Bearer " + ok}, timeout=5).status_code == 200
    assert requests.get(s.url("/questions"), headers={"Authorization": "Bearer " + wrong_aud},
                        timeout=5).status_code == 401
    # no development login outside dev mode
    assert requests.post(s.url("/auth/dev-login"), json={"user_id": "joao"}, timeout=5).status_code == 404
    # jwt mode refuses to start without a secret
    env = {"PATH": "/usr/bin:/bin"}
    r = subprocess.run([BIN, "serve", "--port", "0", "--auth", "jwt", "--data", str(tmp_path / "x"), "--kb", "none"],
                       capture_output=True, env=env, timeout=30)
    assert r.returncode == 2 and b"secret" in r.stderr


def test_rate_limit_per_user(server_factory):
    s = server_factory(extra_args=["--rate-limit", "6"])  # asking: 6/min, burst 3
    codes = [post_question(s, "rita", "O que é CDB? %d" % i) for i in range(4)]
    assert [c.status_code for c in codes[:3]] == [202, 202, 202]
    assert codes[3].status_code == 429
    assert int(codes[3].headers["Retry-After"]) >= 1
    assert codes[3].json()["success"] is False and codes[3].json()["code"] == "rate_limited"
    # another user has a bucket of their own
    assert post_question(s, "sara", "O que é LCI?").status_code == 202
    # reading one's history has its own budget
    assert requests.get(s.url("/questions"), headers=auth("rita"), timeout=5).status_code == 200


def test_websocket_limits(server_factory):
    s = server_factory(extra_args=["--max-ws-per-user", "2"])
    w1, w2 = ws_connect(s, "tina"), ws_connect(s, "tina")
    w3 = websocket.create_connection(s.ws_url("?access_token=" + jwt_for("tina")), timeout=5)
    err = json.loads(w3.recv())
    assert err["type"] == "error" and "too many connections" in err["error"]
    assert close_code(w3) == 1008
    w1.close()
    time.sleep(0.3)
    w4 = ws_connect(s, "tina")  # a slot was freed
    # message flood: the connection is closed with 1008
    flood = ws_connect(s, "ugo")
    for _ in range(60):
        try:
            flood.send(json.dumps({"action": "ping"}))
        except (websocket.WebSocketConnectionClosedException, BrokenPipeError, ConnectionResetError):
            break
    assert close_code(flood) == 1008
    # an oversized message: closed with 1009
    big = ws_connect(s, "vera")
    big.send("x" * (70 * 1024))
    assert close_code(big) == 1009
    for w in (w2, w4):
        w.close()
    assert requests.get(s.url("/healthz"), timeout=5).status_code == 200


def test_cors_allow_list(server_factory):
    s = server_factory(extra_args=["--cors-origins", "https://app.toro.example, https://m.toro.example"])
    good, bad = "https://app.toro.example", "https://evil.example"
    r = requests.get(s.url("/questions"), headers=dict(auth("c"), Origin=good), timeout=5)
    assert r.headers.get("Access-Control-Allow-Origin") == good
    assert "X-Request-Id" in r.headers.get("Access-Control-Expose-Headers", "")
    r = requests.get(s.url("/questions"), headers=dict(auth("c"), Origin=bad), timeout=5)
    assert "Access-Control-Allow-Origin" not in r.headers
    pre = requests.options(s.url("/questions"), headers={"Origin": good, "Access-Control-Request-Method": "POST"},
                           timeout=5)
    assert pre.status_code == 204 and pre.headers["Access-Control-Allow-Origin"] == good
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    assert "X-Request-Id" in pre.headers["Access-Control-Allow-Headers"]
    assert requests.options(s.url("/questions"), headers={"Origin": bad}, timeout=5).status_code == 403
    # cross-site WebSocket hijacking is refused; the allowed origin and same origin work
    try:
        websocket.create_connection(s.ws_url("?access_token=" + jwt_for("c")), origin=bad, timeout=5)
        raise AssertionError("foreign origin accepted")
    except websocket.WebSocketBadStatusException as e:
        assert e.status_code == 403
    websocket.create_connection(s.ws_url("?access_token=" + jwt_for("c")), origin=good, timeout=5).close()
    websocket.create_connection(s.ws_url("?access_token=" + jwt_for("c")),
                                origin="http://127.0.0.1:%d" % s.port, timeout=5).close()


def test_slow_and_oversized_clients_do_not_stop_others(server_factory):
    s = server_factory(extra_args=["--header-timeout-ms", "1500", "--max-connections", "200"])
    # slowloris: 30 sockets dribbling a request head one byte at a time
    slow = []
    for _ in range(30):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        slow.append(c)
    idle = [socket.create_connection(("127.0.0.1", s.port), timeout=10) for _ in range(30)]
    t0 = time.time()
    # meanwhile other clients are served, questions included
    qid = post_question(s, "wesley", "Quanto rende a poupança?").json()["data"]["question_id"]
    assert wait_terminal(s, qid)["status"] == "completed"
    for _ in range(20):
        assert requests.get(s.url("/healthz"), timeout=2).status_code == 200
    # a huge declared body is refused at once, before it is sent
    c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    c.sendall(b"POST /questions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000000000\r\n\r\n")
    assert c.recv(4096).startswith(b"HTTP/1.1 413")
    c.close()
    # the slow heads are cut off after the header timeout with 408
    for c in slow:
        try:
            c.sendall(b"X-Dribble: 1\r\n")
        except OSError:
            pass
    deadline = time.time() + 10
    closed = 0
    for c in slow:
        c.settimeout(max(0.1, deadline - time.time()))
        data = b""
        try:
            while True:
                b = c.recv(4096)
                if not b:
                    break
                data += b
        except socket.timeout:
            pass
        if data.startswith(b"HTTP/1.1 408") or data == b"":
            closed += 1
        c.close()
    assert closed == 30
    assert time.time() - t0 < 15
    for c in idle:
        c.close()
    assert requests.get(s.url("/healthz"), timeout=5).status_code == 200
