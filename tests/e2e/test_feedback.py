"""Feedback on answers (issue 17 item 2): POST /questions/{id}/feedback by the
asker only, stored with the question (GET and history return it), a second
rating replaces the first, bounded comments, 404 for another user's question,
409 for one not completed, toro_feedback_total in /metrics, and `toro
feedback export` writing the down-rated questions as eval cases. The same
tests run on `toro serve` (SQLite) and on a cluster (`toro api` + workers on
PostgreSQL and NATS). Also: a SQLite file made before feedback existed keeps
opening and takes feedback."""
import json
import os
import re
import sqlite3
import subprocess
import time
import uuid

import pytest
import requests

from cluster import cluster_factory  # noqa: F401 (fixture)
from conftest import BIN, auth, post_question, wait_terminal
from test_operations import error_codes_in_openapi

DOCUMENTED = error_codes_in_openapi()


@pytest.fixture(params=["serve", "cluster"])
def deploy(request, server_factory, cluster_factory):  # noqa: F811
    """(endpoint, store URL, run SQL on the store)."""
    if request.param == "serve":
        s = server_factory()
        path = os.path.join(s.data_dir, "toro.db")

        def sql(q):
            with sqlite3.connect(path, timeout=10) as c:
                c.execute(q)
        return s, "sqlite://" + path, sql
    c = cluster_factory()
    return c, c.store, c.sql


def feedback(ep, qid, user, body, token_user=None, raw=None, headers=None):
    h = dict(auth(token_user or user), **(headers or {}))
    if raw is not None:
        return requests.post(ep.url("/questions/%s/feedback" % qid), data=raw, headers=h, timeout=10)
    return requests.post(ep.url("/questions/%s/feedback" % qid), json=body, headers=h, timeout=10)


def ask_done(ep, user, text):
    r = post_question(ep, user, text)
    assert r.status_code == 202, r.text
    qid = r.json()["data"]["question_id"]
    q = wait_terminal(ep, qid, timeout=60)
    assert q["status"] == "completed", q
    return qid, q


def expect(r, status, code):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and body["code"] == code, body
    assert code in DOCUMENTED, "code %s is not in openapi.yaml ErrorCode" % code
    return body


def feedback_count(ep, rating):
    text = requests.get(ep.url("/metrics"), timeout=5).text
    m = re.search(r'^toro_feedback_total\{rating="%s"\} (\d+)$' % rating, text, re.M)
    assert m, text
    return int(m.group(1))


def insert_pending(sql, user, ts_ms):
    """A question whose process event has not run (the process stage never
    sees it: no event): the pending state, held still for the test."""
    qid = str(uuid.uuid4())
    sql("INSERT INTO questions(user_id, question_id, question, status, attempts, created_at, updated_at)"
        " VALUES ('%s', '%s', 'ainda pendente?', 'pending', 0, %d, %d)" % (user, qid, ts_ms, ts_ms))
    return qid


def test_rating_is_stored_returned_replaced_and_counted(deploy):
    ep, _, _ = deploy
    qid, q = ask_done(ep, "ana", "Qual o limite de garantia do FGC por CPF?")
    assert q["feedback"] is None
    up0, down0 = feedback_count(ep, "up"), feedback_count(ep, "down")
    r = feedback(ep, qid, "ana", {"rating": "up"})
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["question_id"] == qid and d["feedback"]["rating"] == "up" and d["feedback"]["comment"] is None
    assert d["feedback"]["updated_at"]
    got = requests.get(ep.url("/questions/" + qid), headers=auth("ana"), timeout=5).json()["data"]
    assert got["feedback"]["rating"] == "up" and got["answer"] == q["answer"]
    # a second rating replaces the first (comment trimmed; user_id may repeat the token's)
    r = feedback(ep, qid, "ana", {"rating": "down", "comment": "  faltou o limite global  ", "user_id": "ana"})
    assert r.status_code == 200, r.text
    got = requests.get(ep.url("/questions/" + qid), headers=auth("ana"), timeout=5).json()["data"]
    assert got["feedback"]["rating"] == "down" and got["feedback"]["comment"] == "faltou o limite global"
    hist = requests.get(ep.url("/questions"), headers=auth("ana"), timeout=5).json()["data"]["items"]
    assert [i["feedback"]["rating"] for i in hist if i["question_id"] == qid] == ["down"]
    assert feedback_count(ep, "up") == up0 + 1 and feedback_count(ep, "down") == down0 + 1
    assert 'toro_http_requests_total{route="/questions/{id}/feedback",method="POST",status="200"} ' in \
        requests.get(ep.url("/metrics"), timeout=5).text


def test_invalid_bodies_and_comment_limits(deploy):
    ep, _, _ = deploy
    qid, _ = ask_done(ep, "bia", "O que é CDI?")
    ok = feedback(ep, qid, "bia", {"rating": "down", "comment": "é" * 1000})  # characters, not bytes
    assert ok.status_code == 200, ok.text
    assert ok.json()["data"]["feedback"]["comment"] == "é" * 1000
    expect(feedback(ep, qid, "bia", {"rating": "down", "comment": "x" * 1001}), 400, "comment_too_long")
    expect(feedback(ep, qid, "bia", {"rating": "meh"}), 400, "invalid_rating")
    expect(feedback(ep, qid, "bia", {"rating": 1}), 400, "invalid_rating")
    expect(feedback(ep, qid, "bia", {"comment": "sem nota"}), 400, "rating_missing")
    expect(feedback(ep, qid, "bia", {"rating": "up", "comment": 5}), 400, "invalid_comment")
    expect(feedback(ep, qid, "bia", {"rating": "up", "stars": 5}), 400, "unknown_field")
    expect(feedback(ep, qid, "bia", None, raw=b"{not json", headers={"Content-Type": "application/json"}), 400,
           "invalid_json")
    expect(feedback(ep, qid, "bia", None, raw=b"[]", headers={"Content-Type": "application/json"}), 400,
           "invalid_json")
    r = feedback(ep, qid, "bia", None, raw=b'{"rating":"up"}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    expect(feedback(ep, qid, "bia", {"rating": "up", "user_id": "eve"}), 403, "user_mismatch")
    r = requests.get(ep.url("/questions/%s/feedback" % qid), headers=auth("bia"), timeout=5)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = requests.post(ep.url("/questions/%s/feedback" % qid), json={"rating": "up"}, timeout=5)
    assert r.status_code == 401
    # nothing above changed the stored rating
    got = requests.get(ep.url("/questions/" + qid), headers=auth("bia"), timeout=5).json()["data"]
    assert got["feedback"]["rating"] == "down" and got["feedback"]["comment"] == "é" * 1000


def test_only_the_asker_and_only_completed(deploy):
    ep, _, sql = deploy
    qid, _ = ask_done(ep, "caio", "Como funciona o come-cotas?")
    # another user's question answers exactly as a missing one
    other = expect(feedback(ep, qid, "eve", {"rating": "down"}), 404, "not_found")
    missing = expect(feedback(ep, "00000000-0000-4000-8000-000000000000", "eve", {"rating": "down"}), 404, "not_found")
    assert other == missing
    expect(feedback(ep, "abc", "caio", {"rating": "up"}), 404, "not_found")
    got = requests.get(ep.url("/questions/" + qid), headers=auth("caio"), timeout=5).json()["data"]
    assert got["feedback"] is None
    pending = insert_pending(sql, "caio", int(time.time() * 1000))
    body = expect(feedback(ep, pending, "caio", {"rating": "up"}), 409, "question_not_completed")
    assert "completed" in body["error"]
    expect(feedback(ep, pending, "eve", {"rating": "up"}), 404, "not_found")  # still no leak


def test_export_writes_down_rated_cases(deploy, tmp_path):
    ep, store, _ = deploy
    a, qa = ask_done(ep, "dani", "Qual o limite de garantia do FGC por CPF?")
    b, qb = ask_done(ep, "edu", "What is the IOF on a fixed income redemption after 10 days?")
    c, _ = ask_done(ep, "dani", "O que é CDI?")
    assert feedback(ep, a, "dani", {"rating": "down", "comment": "não falou do limite de R$ 1 milhão"}).status_code == 200
    assert feedback(ep, b, "edu", {"rating": "down"}).status_code == 200
    assert feedback(ep, c, "dani", {"rating": "up"}).status_code == 200
    out = tmp_path / "fb.jsonl"
    r = subprocess.run([BIN, "feedback", "export", "--store", store, "-o", str(out)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "2 down-rated" in r.stderr
    cases = [json.loads(line) for line in out.read_text().splitlines()]
    by_q = {x["question_id"]: x for x in cases}
    assert set(by_q) == {a, b}
    for qid, q, lang in ((a, qa, "pt"), (b, qb, "en")):
        x = by_q[qid]
        assert x["question"] == q["question"] and x["answer"] == q["answer"]
        want = []
        for s in q["sources"]:
            if s["doc_id"] not in want:
                want.append(s["doc_id"])
        assert x["relevant"] == want and want, x
        assert x["key_facts"] == [] and x["tags"] == ["feedback"] and x["lang"] == lang
        assert x["id"].startswith("fb-") and x["rated_at"]
    assert by_q[a]["comment"] == "não falou do limite de R$ 1 milhão" and by_q[b].get("comment") is None
    # --since in the future: nothing; stdout without -o; a bad date is a usage error
    r = subprocess.run([BIN, "feedback", "export", "--store", store, "--since", "2999-01-01"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    r = subprocess.run([BIN, "feedback", "export", "--store", store, "--since", "2000-01-01T00:00:00Z"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stderr
    r = subprocess.run([BIN, "feedback", "export", "--store", store, "--since", "yesterday"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "--since" in r.stderr


def test_export_usage_errors(tmp_path):
    r = subprocess.run([BIN, "feedback", "export"], capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if k != "TORO_STORE"})
    assert r.returncode == 2 and "--store" in r.stderr
    r = subprocess.run([BIN, "feedback", "export", "--store", "mysql://x"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "mysql://x" in r.stderr
    missing = tmp_path / "none" / "toro.db"
    r = subprocess.run([BIN, "feedback", "export", "--store", "sqlite://%s" % missing], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1 and str(missing) in r.stderr and not missing.exists()
    r = subprocess.run([BIN, "feedback", "export", "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "toro feedback export" in r.stdout


# The schema of the first release (store/sqlite.c before feedback), with data.
OLD_SCHEMA = """
CREATE TABLE questions(user_id TEXT NOT NULL, question_id TEXT NOT NULL, question TEXT NOT NULL, status TEXT NOT NULL,
 answer TEXT, sources TEXT, found_relevant_docs INTEGER, model TEXT, kb_version TEXT, error_message TEXT,
 attempts INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
 processing_started_at INTEGER, processed_at INTEGER, PRIMARY KEY (user_id, question_id)) WITHOUT ROWID;
CREATE UNIQUE INDEX questions_by_id ON questions(question_id);
"""


def test_existing_sqlite_file_keeps_opening(server_factory, tmp_path):
    data = tmp_path / "old"
    data.mkdir()
    qid = "11111111-1111-4111-8111-111111111111"
    with sqlite3.connect(str(data / "toro.db")) as c:
        c.executescript(OLD_SCHEMA)
        c.execute("INSERT INTO questions VALUES ('ana', ?, 'antiga?', 'completed', 'resposta antiga',"
                  " '[{\"doc_id\":\"cdb\",\"title\":\"CDB\"}]', 1, 'extractive', 'v0', NULL, 1, 1000, 2000, 1500, 2000)",
                  (qid,))
    s = server_factory(data_dir=str(data))
    got = requests.get(s.url("/questions/" + qid), headers=auth("ana"), timeout=5)
    assert got.status_code == 200 and got.json()["data"]["feedback"] is None
    assert got.json()["data"]["answer"] == "resposta antiga"
    assert feedback(s, qid, "ana", {"rating": "down", "comment": "velha"}).status_code == 200
    got = requests.get(s.url("/questions/" + qid), headers=auth("ana"), timeout=5).json()["data"]
    assert got["feedback"]["rating"] == "down" and got["feedback"]["comment"] == "velha"
