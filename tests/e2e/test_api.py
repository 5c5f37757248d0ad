"""REST contract of DESIGN.md through the real binary: envelopes, status
codes, validation, history and pagination, health and metrics."""
import json
import socket
import time

import requests

from conftest import auth, post_question, wait_terminal


def raw_request(server, data, read_timeout=5):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=read_timeout)
    s.sendall(data)
    chunks = []
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    except socket.timeout:
        pass
    s.close()
    return b"".join(chunks)


def test_post_returns_202_envelope_and_answer_has_sources(server):
    r = post_question(server, "ana", "Qual o limite de garantia do FGC por CPF?")
    assert r.status_code == 202
    body = r.json()
    assert body["success"] is True
    data = body["data"]
    assert data["user_id"] == "ana"
    assert data["status"] == "pending"
    assert len(data["question_id"]) == 36
    q = wait_terminal(server, data["question_id"])
    assert q["status"] == "completed"
    assert q["found_relevant_docs"] is True
    assert q["answer"]
    assert q["sources"], q
    assert any(s["doc_id"].startswith("fgc") for s in q["sources"]), q["sources"]
    for s in q["sources"]:
        assert set(["doc_id", "title", "section", "chunk_id", "score", "snippet"]) <= set(s)
    assert q["kb_version"]
    assert q["model"] == "extractive"
    assert q["created_at"] <= q["processed_at"]
    assert q["attempts"] == 1


def test_no_information_answer(server):
    r = post_question(server, "ana", "Qual é a receita de bolo de cenoura com cobertura de chocolate?")
    q = wait_terminal(server, r.json()["data"]["question_id"])
    assert q["status"] == "completed"
    assert q["answer"] == "Não tenho informações suficientes para responder a essa pergunta."
    assert q["found_relevant_docs"] is False
    assert q["sources"] == []


def expect_error(r, status, fragment):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["success"] is False
    assert fragment in body["error"], body


def test_validation_errors(server):
    url = server.url("/questions")
    post = lambda body, ct="application/json": requests.post(url, data=body, headers=dict(auth("u"), **{"Content-Type": ct}),
                                                             timeout=5)
    expect_error(post(b'{"user_id":"u","question":""}'), 400, "question must not be empty")
    expect_error(post(b'{"user_id":"u","question":"   "}'), 400, "question must not be empty")
    expect_error(post(b'{"user_id":"someone-else","question":"oi"}'), 403, "differs from the authenticated user")
    expect_error(post(b'{"user_id":"","question":"oi"}'), 400, "user_id must not be empty")
    expect_error(post(b'{"user_id":"u","question":5}'), 400, "question must be a string")
    expect_error(post(b'{"user_id":"u","question":"oi","x":1}'), 400, "unknown field")
    expect_error(post(b'[1,2]'), 400, "JSON object")
    expect_error(post(b'{bad json'), 400, "not valid JSON")
    expect_error(post(b'{"user_id":"u","question":"\xff\xfe"}'), 400, "UTF-8")
    expect_error(post(b''), 400, "body is required")
    expect_error(post(b'{"user_id":"u","question":"oi"}', "text/plain"), 415, "application/json")
    ok = post(json.dumps({"user_id": "u", "question": "ç" * 2000}).encode(), "application/json; charset=utf-8")
    assert ok.status_code == 202, ok.text
    expect_error(post(json.dumps({"user_id": "u", "question": "ç" * 2001}, ensure_ascii=False).encode()), 400,
                 "at most 2000 characters")


def test_body_limit_and_unknown_routes(server):
    big = b'{"user_id":"u","question":"' + b"a" * (70 * 1024) + b'"}'
    r = requests.post(server.url("/questions"), data=big, headers=dict(auth("u"), **{"Content-Type": "application/json"}),
                      timeout=5)
    expect_error(r, 413, "too large")
    expect_error(requests.get(server.url("/nope"), timeout=5), 404, "not found")
    r = requests.delete(server.url("/questions"), timeout=5)
    expect_error(r, 405, "method not allowed")
    assert "POST" in r.headers["Allow"]
    expect_error(requests.put(server.url("/healthz"), timeout=5), 405, "method not allowed")
    # the server still serves after the rejected requests
    assert requests.get(server.url("/healthz"), timeout=5).status_code == 200


def test_malformed_http_gets_400_and_server_survives(server):
    resp = raw_request(server, b"GARBAGE\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 400"), resp
    resp = raw_request(server, b"POST /questions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 411"), resp
    resp = raw_request(server, b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 431"), resp
    assert requests.get(server.url("/healthz"), timeout=5).status_code == 200


def test_keep_alive_and_pipelining(server):
    body = b'{"question":"O que e CDB?"}'
    one = (b"POST /questions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (auth("pipe")["Authorization"].encode(), len(body), body))
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(one + one + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    assert data.count(b"HTTP/1.1 202 Accepted") == 2, data
    assert data.count(b"HTTP/1.1 200 OK") == 1, data


def test_history_newest_first_and_pagination(server):
    ids = []
    for i in range(5):
        r = post_question(server, "hist-user", "Pergunta número %d sobre Tesouro Selic?" % i)
        assert r.status_code == 202
        ids.append(r.json()["data"]["question_id"])
    post_question(server, "someone-else", "O que é LCA?")
    seen = []
    token = None
    pages = 0
    while True:
        params = {"user_id": "hist-user", "limit": 2}
        if token:
            params["next_token"] = token
        r = requests.get(server.url("/questions"), params=params, headers=auth("hist-user"), timeout=5)
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        pages += 1
        assert len(data["items"]) <= 2
        for item in data["items"]:
            assert item["user_id"] == "hist-user"
        seen += [it["question_id"] for it in data["items"]]
        token = data["next_token"]
        if not token:
            break
    assert pages == 3
    assert seen == list(reversed(ids))
    r = requests.get(server.url("/questions"), headers=auth("hist-user"), timeout=5)
    assert [it["question_id"] for it in r.json()["data"]["items"]] == list(reversed(ids))
    h = auth("hist-user")
    expect_error(requests.get(server.url("/questions"), params={"user_id": "hist-user", "next_token": "@@"},
                              headers=h, timeout=5), 400, "next_token")
    expect_error(requests.get(server.url("/questions"), params={"limit": "0"}, headers=h, timeout=5), 400, "limit")
    expect_error(requests.get(server.url("/questions"), params={"limit": "abc"}, headers=h, timeout=5), 400, "limit")
    expect_error(requests.get(server.url("/questions"), params={"user_id": "someone-else"}, headers=h, timeout=5),
                 403, "differs")
    expect_error(requests.get(server.url("/questions"), timeout=5), 401, "missing bearer token")


def test_get_question_by_id(server):
    r = post_question(server, "bob", "Como funciona o come-cotas?")
    qid = r.json()["data"]["question_id"]
    got = requests.get(server.url("/questions/" + qid), headers=auth("bob"), timeout=5)
    assert got.status_code == 200
    assert got.json()["data"]["question"] == "Como funciona o come-cotas?"
    assert got.json()["data"]["user_id"] == "bob"
    # another user's question does not exist for eve; naming bob in the query is forbidden
    expect_error(requests.get(server.url("/questions/" + qid), headers=auth("eve"), timeout=5), 404, "not found")
    expect_error(requests.get(server.url("/questions/" + qid), params={"user_id": "bob"}, headers=auth("eve"),
                              timeout=5), 403, "differs")
    expect_error(requests.get(server.url("/questions/00000000-0000-4000-8000-000000000000"), headers=auth("bob"),
                              timeout=5), 404, "not found")
    expect_error(requests.get(server.url("/questions/abc"), headers=auth("bob"), timeout=5), 404, "not found")


def test_healthz_and_metrics(server):
    h = requests.get(server.url("/healthz"), timeout=5)
    assert h.status_code == 200
    d = h.json()["data"]
    assert d["status"] == "ok" and d["store"] == "ok" and d["bus"] == "ok"
    assert d["kb_version"]
    qid = post_question(server, "met", "O que é CDI?").json()["data"]["question_id"]
    wait_terminal(server, qid)
    requests.post(server.url("/questions"), data=b"{}", headers=dict(auth("met"), **{"Content-Type": "application/json"}),
                  timeout=5)
    m = requests.get(server.url("/metrics"), timeout=5)
    assert m.status_code == 200
    assert m.headers["Content-Type"].startswith("text/plain")
    text = m.text
    assert 'toro_http_requests_total{route="/questions",method="POST",status="202"} ' in text
    assert 'toro_http_requests_total{route="/questions",method="POST",status="400"} ' in text
    assert 'toro_questions{status="completed"} ' in text
    assert 'toro_queue_depth{topic="process"} ' in text
    assert 'toro_stage_latency_seconds_count{stage="process"} ' in text
    assert "toro_websocket_connections " in text
    count = [l for l in text.splitlines() if l.startswith('toro_stage_latency_seconds_count{stage="process"}')][0]
    assert int(count.split()[-1]) >= 1


def test_group_commit_answers_pipelined_posts_in_order(server):
    """Many POSTs in one write share a commit; each gets its own 202, in order."""
    token = auth("batch-user")["Authorization"].encode()
    reqs = b""
    for i in range(40):
        body = ('{"question":"Pergunta em lote numero %d sobre CDB?"}' % i).encode()
        reqs += (b"POST /questions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (token, len(body), body))
    reqs += b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    data = raw_request(server, reqs, read_timeout=10)
    assert data.count(b"HTTP/1.1 202 Accepted") == 40, data[:500]
    assert data.rstrip().endswith(b"}") and data.rfind(b"HTTP/1.1 200 OK") > data.rfind(b"HTTP/1.1 202 Accepted")
    ids = [json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0])["data"]["question_id"]
           for part in data.split(b"HTTP/1.1 202 Accepted")[1:]]
    assert len(set(ids)) == 40
    items = requests.get(server.url("/questions"), params={"limit": 100}, headers=auth("batch-user"),
                         timeout=5).json()["data"]["items"]
    # all stored, each with its own text; newest first (questions of one batch may share a millisecond)
    assert sorted(it["question_id"] for it in items) == sorted(ids)
    by_id = {it["question_id"]: it["question"] for it in items}
    assert [by_id[q] for q in ids] == ["Pergunta em lote numero %d sobre CDB?" % i for i in range(40)]
    stamps = [it["created_at"] for it in items]
    assert stamps == sorted(stamps, reverse=True)


def test_question_is_kept_when_the_client_leaves_before_the_202(server):
    body = b'{"question":"O que acontece se eu desconectar?"}'
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(b"POST /questions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (auth("leaver")["Authorization"].encode(), len(body), body))
    s.close()  # gone before the group commit answers
    deadline = time.time() + 10
    items = []
    while time.time() < deadline and not items:
        items = requests.get(server.url("/questions"), headers=auth("leaver"), timeout=5).json()["data"]["items"]
        time.sleep(0.05)
    assert [it["question"] for it in items] == ["O que acontece se eu desconectar?"]
    assert requests.get(server.url("/healthz"), timeout=5).status_code == 200
