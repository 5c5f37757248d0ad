"""Operations: the access log (one JSON line per HTTP request and per
WebSocket session, with typed fields), X-Request-Id, the machine code of
every API error (a fixed list, the one openapi.yaml documents), /metrics
labels (route template x method), refusal and per-answerer counters,
separate budgets for asking and reading, the WebSocket upgrade of "/" with
--auth none, and in a cluster: worker /metrics, the warning of an api
without a shared secret, and a quiet clean worker shutdown."""
import json
import os
import re
import socket
import time

import pytest
import requests
import websocket
import yaml

from cluster import ApiNode, cluster_factory  # noqa: F401 (fixture)
from conftest import ROOT, auth, jwt_for, post_question, recv_until, wait_terminal


def access_lines(server, pred=lambda o: True, timeout=5):
    """The access-log lines of server's log that satisfy pred (waits a little
    for them: a line is written after the response is queued)."""
    deadline = time.time() + timeout
    while True:
        found = []
        with open(server.log_path, "rb") as f:
            for raw in f:
                try:
                    o = json.loads(raw)
                except ValueError:
                    continue
                if o.get("component") == "access" and pred(o):
                    found.append(o)
        if found or time.time() > deadline:
            return found
        time.sleep(0.05)


def metric(text, name, **labels):
    """The value of one sample of a Prometheus text, 0 when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        m = re.match(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()) and len(got) == len(labels):
            return float(m.group(3))
    return 0.0


def error_codes_in_openapi():
    with open(os.path.join(ROOT, "openapi.yaml")) as f:
        spec = yaml.safe_load(f)
    return set(spec["components"]["schemas"]["ErrorCode"]["enum"])


# ---------------------------------------------------------------- access log

def test_access_log_fields_and_request_id(server_factory):
    server = server_factory(["--rate-limit", "2"])
    r = requests.get(server.url("/questions?user_id=ana"), headers=dict(auth("ana"), **{"X-Request-Id": "trace-42.a"}),
                     timeout=5)
    assert r.status_code == 200 and r.headers["X-Request-Id"] == "trace-42.a"
    line = access_lines(server, lambda o: o.get("request_id") == "trace-42.a")
    assert len(line) == 1, line
    o = line[0]
    assert o["level"] == "info" and o["method"] == "GET" and o["route"] == "/questions" and o["status"] == 200
    assert isinstance(o["bytes"], int) and o["bytes"] >= len(r.content)
    assert isinstance(o["duration_ms"], int) and o["duration_ms"] >= 0
    assert o["user_id"] == "ana" and o["remote"] == "127.0.0.1"
    assert "ana" not in o["message"] and "trace-42.a" not in o["message"]

    # an unusable client id (bad characters, too long) is replaced by a new one
    for bad in ("has space", "x" * 65, "quote\"x"):
        r = requests.get(server.url("/healthz"), headers={"X-Request-Id": bad}, timeout=5)
        rid = r.headers["X-Request-Id"]
        assert rid != bad and re.fullmatch(r"[0-9a-f-]{36}", rid), rid
        assert access_lines(server, lambda o, rid=rid: o.get("request_id") == rid and o["route"] == "/healthz")

    # refusals are logged too: 401, 429, 404, 405, a malformed request
    requests.get(server.url("/questions?user_id=bob"), headers={"X-Request-Id": "no-token"}, timeout=5)
    for i in range(4):
        post_question(server, "carol", "O que é CDB? %d" % i)
    requests.get(server.url("/nope"), headers={"X-Request-Id": "unknown-route"}, timeout=5)
    requests.delete(server.url("/questions/abc"), headers={"X-Request-Id": "delete-it"}, timeout=5)
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"BROKEN\r\n\r\n")
    s.recv(4096)
    s.close()
    assert access_lines(server, lambda o: o.get("request_id") == "no-token" and o["status"] == 401 and
                        o["user_id"] is None)
    limited = access_lines(server, lambda o: o["status"] == 429)
    assert limited and limited[0]["user_id"] == "carol" and limited[0]["route"] == "/questions"
    assert access_lines(server, lambda o: o.get("request_id") == "unknown-route" and o["route"] == "unmatched"
                        and o["status"] == 404)
    assert access_lines(server, lambda o: o.get("request_id") == "delete-it" and o["method"] == "DELETE"
                        and o["route"] == "/questions/{id}" and o["status"] == 405)
    assert access_lines(server, lambda o: o["status"] == 400 and o["route"] == "unmatched")

    # a WebSocket session: one line when it ends, with its user and length
    ws = websocket.create_connection(server.ws_url("?access_token=" + jwt_for("dora")), timeout=10,
                                     header=["X-Request-Id: ws-session-1"])
    assert json.loads(ws.recv())["type"] == "registered"
    ws.send(json.dumps({"action": "ping"}))
    ws.recv()
    # the upgrade request has its line at once; the session its own when it ends
    up = access_lines(server, lambda o: o.get("request_id") == "ws-session-1")
    assert len(up) == 1 and up[0]["status"] == 101 and up[0]["route"] == "/ws" and up[0]["user_id"] == "dora", up
    assert "connection_id" not in up[0]
    ws.close()
    end = access_lines(server, lambda o: o.get("request_id") == "ws-session-1" and "connection_id" in o)
    assert len(end) == 1, end
    assert end[0]["route"] == "/ws" and end[0]["status"] == 101 and end[0]["user_id"] == "dora"
    assert end[0]["bytes"] > 0 and isinstance(end[0]["duration_ms"], int) and end[0]["remote"] == "127.0.0.1"


# ---------------------------------------------------------------- error codes

def test_every_error_has_a_documented_code(server):
    documented = error_codes_in_openapi()
    h = dict(auth("ana"), **{"Content-Type": "application/json"})
    url = server.url
    cases = [
        (lambda: requests.post(url("/questions"), data='{"question": "  "}', headers=h), 400, "question_empty"),
        (lambda: requests.post(url("/questions"), data=json.dumps({"question": "x" * 2001}), headers=h), 400,
         "question_too_long"),
        (lambda: requests.post(url("/questions"), data="{", headers=h), 400, "invalid_json"),
        (lambda: requests.post(url("/questions"), data="{}", headers=h), 400, "question_missing"),
        (lambda: requests.post(url("/questions"), data='{"question": 5}', headers=h), 400, "question_invalid"),
        (lambda: requests.post(url("/questions"), data='{"question": "oi", "user_id": "bob"}', headers=h), 403,
         "user_mismatch"),
        (lambda: requests.post(url("/questions"), data="x", headers=auth("ana")), 415, "unsupported_media_type"),
        (lambda: requests.get(url("/questions?user_id=ana&limt=5"), headers=auth("ana")), 400, "unknown_parameter"),
        (lambda: requests.get(url("/questions?user_id=ana&limit=0"), headers=auth("ana")), 400, "invalid_parameter"),
        (lambda: requests.get(url("/questions?user_id=a%20b"), headers=auth("ana")), 400, "invalid_user_id"),
        (lambda: requests.get(url("/questions?user_id=bob"), headers=auth("ana")), 403, "user_mismatch"),
        (lambda: requests.get(url("/questions?user_id=ana")), 401, "unauthorized"),
        (lambda: requests.get(url("/questions/" + "0" * 36), headers=auth("ana")), 404, "not_found"),
        (lambda: requests.get(url("/nope")), 404, "not_found"),
        (lambda: requests.delete(url("/questions/abc")), 405, "method_not_allowed"),
        (lambda: requests.post(url("/questions"), data="x" * (65 * 1024), headers=h), 413, "payload_too_large"),
        (lambda: requests.get(url("/ws")), 400, "invalid_request"),
    ]
    for call, status, code in cases:
        r = call()
        body = r.json()
        assert r.status_code == status and body["success"] is False, (code, r.status_code, r.text)
        assert body["code"] == code, (code, body)
        assert isinstance(body["error"], str) and body["error"]
        assert code in documented, "code %s is not in openapi.yaml ErrorCode" % code
    assert "rate_limited" in documented  # returned in test_asking_and_reading_have_separate_budgets
    # raw-socket errors carry codes too
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"POST /questions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    raw = s.recv(65536).decode()
    s.close()
    assert " 411 " in raw.split("\r\n")[0] and '"code":"length_required"' in raw


def test_asking_and_reading_have_separate_budgets(server_factory):
    server = server_factory(["--auth", "dev", "--rate-limit", "3", "--read-rate-limit", "20"])
    # dev-login and history reads do not use the asking budget
    tok = requests.post(server.url("/auth/dev-login"), json={"user_id": "ana"}, timeout=5).json()["data"]["token"]
    h = {"Authorization": "Bearer " + tok}
    for _ in range(2):
        assert requests.get(server.url("/questions?user_id=ana"), headers=h, timeout=5).status_code == 200
    r = requests.post(server.url("/questions"), json={"question": "O que é CDB?"}, headers=h, timeout=5)
    assert r.status_code == 202, r.text
    r = requests.post(server.url("/questions"), json={"question": "E LCI?"}, headers=h, timeout=5)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
    # reading goes on after asking is refused, until its own budget (burst 4) is used up
    statuses = []
    while len(statuses) < 12 and 429 not in statuses:
        statuses.append(requests.get(server.url("/questions?user_id=ana"), headers=h, timeout=5).status_code)
    assert statuses[0] == 200 and statuses[-1] == 429, statuses


# ---------------------------------------------------------------- metrics

def test_route_labels_refusals_and_answerer_metrics(server):
    requests.delete(server.url("/questions/abc"), timeout=5)
    requests.get(server.url("/definitely/unknown"), timeout=5)
    requests.post(server.url("/healthz"), timeout=5)
    requests.post(server.url("/auth/dev-login"), json={"user_id": "ana"}, timeout=5)  # 404 in jwt mode
    requests.get(server.url("/questions?user_id=ana"), headers=auth("ana"), timeout=5)
    qid = post_question(server, "ana", "Qual é a receita de bolo de cenoura com cobertura de chocolate?"
                        ).json()["data"]["question_id"]
    assert wait_terminal(server, qid)["found_relevant_docs"] is False
    qid = post_question(server, "ana", "O que é o Tesouro Selic?").json()["data"]["question_id"]
    assert wait_terminal(server, qid)["found_relevant_docs"] is True
    text = requests.get(server.url("/metrics"), timeout=5).text
    name = "toro_http_requests_total"
    assert metric(text, name, route="/questions/{id}", method="DELETE", status="405") == 1
    assert metric(text, name, route="/questions/{id}", method="GET", status="405") == 0
    assert metric(text, name, route="unmatched", method="GET", status="404") == 1
    assert metric(text, name, route="/healthz", method="POST", status="405") == 1
    assert metric(text, name, route="/auth/dev-login", method="POST", status="404") == 1
    assert metric(text, name, route="/questions", method="GET", status="200") == 1
    assert metric(text, name, route="/questions", method="POST", status="202") == 2
    assert metric(text, "toro_refusals_total") == 1
    assert metric(text, "toro_answers_total", found_relevant_docs="false") == 1
    assert metric(text, "toro_answers_total", found_relevant_docs="true") == 1
    assert metric(text, "toro_answerer_calls_total", answerer="extractive") == 2
    assert metric(text, "toro_answerer_errors_total", answerer="extractive") == 0
    assert metric(text, "toro_answerer_latency_seconds_count", answerer="extractive") == 2


# ---------------------------------------------------------------- reference client on "/"

def test_reference_client_on_the_root_with_auth_none(server_factory):
    server = server_factory(["--auth", "none"])
    root = "ws://127.0.0.1:%d/" % server.port
    ws = websocket.create_connection(root, timeout=20)
    ws.send(json.dumps({"action": "register", "user_id": "ref-user"}))
    assert json.loads(ws.recv())["type"] == "registered"
    r = requests.post(server.url("/questions"), json={"user_id": "ref-user", "question": "O que é CDB?"}, timeout=5)
    assert r.status_code == 202, r.text
    qid = r.json()["data"]["question_id"]
    got = recv_until(ws, lambda m: m.get("question_id") == qid and m.get("status") == "completed")
    assert got[-1]["answer"]
    ws.close()
    # a plain GET / is still the web UI
    page = requests.get(server.url("/"), timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert access_lines(server, lambda o: o["route"] == "/ws" and o.get("path") == "/" and o["user_id"] == "ref-user")


def test_root_is_not_a_websocket_when_tokens_are_required(server):
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection("ws://127.0.0.1:%d/" % server.port, timeout=10)
    assert e.value.status_code == 200  # the web UI, not an upgrade


# ---------------------------------------------------------------- cluster

def test_worker_metrics_and_quiet_shutdown(cluster_factory):  # noqa: F811
    c = cluster_factory(n_process=0, n_notify=0)
    workers = []
    for stage in ("process", "notify"):
        w = c.new_worker(stage, 5)
        w.args += ["--health-port", "0"]
        w.ready_prefix = b"health on "
        w.start()
        (c.processors if stage == "process" else c.notifiers).append(w)
        workers.append((stage, w, int(w.ready_line.split(":")[2].split("/")[0])))
    qid = post_question(c, "wanda", "O que é o Tesouro Selic?").json()["data"]["question_id"]
    assert wait_terminal(c, qid)["status"] == "completed"
    qid = post_question(c, "wanda", "Qual é a receita de bolo de cenoura com cobertura de chocolate?"
                        ).json()["data"]["question_id"]
    assert wait_terminal(c, qid)["found_relevant_docs"] is False
    deadline = time.time() + 15
    for stage, w, port in workers:
        while True:
            r = requests.get("http://127.0.0.1:%d/metrics" % port, timeout=5)
            assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain"), r.text
            if metric(r.text, "toro_stage_latency_seconds_count", stage=stage) >= 2 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert metric(r.text, "toro_stage_latency_seconds_count", stage=stage) >= 2, (stage, r.text)
        if stage == "process":
            assert metric(r.text, "toro_answerer_calls_total", answerer="extractive") == 2
            assert metric(r.text, "toro_refusals_total") == 1
        assert requests.get("http://127.0.0.1:%d/nope" % port, timeout=5).json()["code"] == "not_found"
    # the api serves the HTTP figures; its stage figures are the workers'
    api_text = requests.get(c.url("/metrics"), timeout=5).text
    assert metric(api_text, "toro_http_requests_total", route="/questions", method="POST", status="202") == 2
    # a clean shutdown is not reported as a lost NATS server
    for _, w, _ in workers:
        assert w.stop() == 0
        log = open(w.log_path, encoding="utf-8", errors="replace").read()
        assert "disconnected; reconnecting" not in log, log[-2000:]
        assert '"stopped"' in log


def test_api_without_shared_secret_says_so(cluster_factory):  # noqa: F811
    c = cluster_factory(n_process=0, n_notify=0)
    env = {k: v for k, v in c.env.items() if k != "TORO_JWT_SECRET"}
    api = ApiNode(c, "api-nosecret", c.new_api(8).args, env, c.log_dir).start()
    c.apis.append(api)
    assert "no shared secret" in api.log()
    assert "no shared secret" not in c.apis[0].log()


def test_websocket_errors_have_documented_codes(server_factory):
    server = server_factory(["--max-ws-per-user", "1"])
    documented = error_codes_in_openapi()
    ws = websocket.create_connection(server.ws_url(), timeout=10)
    cases = [
        ("not json", "invalid_message"),
        (json.dumps({"action": "dance"}), "unknown_action"),
        (json.dumps({"action": "register", "token": "x.y.z"}), "unauthorized"),
        (json.dumps({"action": "register"}), "unauthorized"),
        (json.dumps({"action": "register", "user_id": "a b", "token": jwt_for("ana")}), "invalid_user_id"),
        (json.dumps({"action": "register", "user_id": "bob", "token": jwt_for("ana")}), "user_mismatch"),
    ]
    for message, code in cases:
        ws.send(message)
        got = json.loads(ws.recv())
        assert got["type"] == "error" and got["code"] == code and got["error"], (message, got)
        assert code in documented
    ws.send(json.dumps({"action": "register", "token": jwt_for("ana")}))
    assert json.loads(ws.recv())["type"] == "registered"
    ws.send(json.dumps({"action": "register", "token": jwt_for("bob")}))
    got = json.loads(ws.recv())
    assert got["code"] == "already_registered" and got["code"] in documented, got
    second = websocket.create_connection(server.ws_url("?access_token=" + jwt_for("ana")), timeout=10)
    got = json.loads(second.recv())
    assert got["code"] == "too_many_connections" and got["code"] in documented, got
    second.close()
    ws.close()


def test_request_id_of_a_refused_request(server):
    """A request refused after its head was read (chunked body: 411) still
    answers with its X-Request-Id and logs it."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"POST /questions HTTP/1.1\r\nHost: x\r\nX-Request-Id: chunky-1\r\nTransfer-Encoding: chunked\r\n\r\n")
    raw = s.recv(65536).decode()
    s.close()
    assert "X-Request-Id: chunky-1\r\n" in raw, raw
    line = access_lines(server, lambda o: o.get("request_id") == "chunky-1")
    assert line and line[0]["status"] == 411 and line[0]["method"] == "POST", line
    assert line[0]["route"] == "/questions"  # labelled by its path though refused before routing
    text = requests.get(server.url("/metrics"), timeout=5).text
    assert metric(text, "toro_http_requests_total", route="/questions", method="POST", status="411") == 1
