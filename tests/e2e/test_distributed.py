"""The distributed mode (`toro api` + `toro worker` on PostgreSQL and NATS
JetStream): the same REST/WebSocket contract tests as the embedded mode, run
against a cluster (one suite, two backends), plus what only a cluster has:
cross-node delivery, the outbox relay, dead letters, health of workers."""
import json
import time

import pytest
import requests

from cluster import cluster_factory, stream_info  # noqa: F401 (fixture)
from conftest import auth, jwt_for, post_question, recv_until, wait_terminal, ws_connect

# The contract tests of the embedded mode, collected again here where the
# `server` / `server_factory` fixtures below give them a cluster instead of
# `toro serve`. Left out: tests that read the SQLite file or count stage
# metrics inside the serving process (in a cluster those run in the workers).
from test_api import (test_body_limit_and_unknown_routes, test_get_question_by_id,  # noqa: F401
                      test_history_newest_first_and_pagination, test_keep_alive_and_pipelining,
                      test_malformed_http_gets_400_and_server_survives, test_no_information_answer,
                      test_post_returns_202_envelope_and_answer_has_sources, test_validation_errors)
from test_lifecycle import test_transient_failures_are_retried_then_complete  # noqa: F401
from test_ws import (test_bad_upgrade_is_rejected, test_register_action_and_errors,  # noqa: F401
                     test_updates_pushed_to_every_connection_of_the_user)

WORKER_OPTS = ("--max-attempts", "--retry-base-ms", "--max-deliveries")


@pytest.fixture
def server(cluster_factory):  # noqa: F811
    return cluster_factory()


@pytest.fixture
def server_factory(cluster_factory):  # noqa: F811
    def make(extra_args=(), env=None, data_dir=None):
        args = list(extra_args)
        worker_args = []
        for i in range(0, len(args) - 1):
            if args[i] in WORKER_OPTS:
                worker_args += [args[i], args[i + 1]]
        return cluster_factory(worker_args=worker_args, env=env)
    return make


def test_cross_node_delivery(cluster_factory):  # noqa: F811
    c = cluster_factory(n_api=2, n_process=2, n_notify=2)
    a, b = c.apis
    on_a = ws_connect(a, "nina")
    on_b = ws_connect(b, "nina")
    other = ws_connect(a, "otto")
    # posted to B, answered on A (and on B: every connection of the user)
    qid = post_question(b, "nina", "Qual o limite de garantia do FGC?").json()["data"]["question_id"]
    for ws in (on_a, on_b):
        got = recv_until(ws, lambda m: m.get("question_id") == qid and m["status"] == "completed")
        # "processing" is pushed by the process worker before it answers, "completed" by
        # a notify worker after the commit: in that order on every socket of the user
        assert [m["status"] for m in got if m.get("question_id") == qid] == ["processing", "completed"]
        assert got[-1]["answer"] and got[-1]["sources"]
    # and the other way round
    qid2 = post_question(a, "nina", "O que é o Tesouro Selic?").json()["data"]["question_id"]
    recv_until(on_b, lambda m: m.get("question_id") == qid2 and m["status"] == "completed")
    recv_until(on_a, lambda m: m.get("question_id") == qid2 and m["status"] == "completed")
    other.settimeout(1.0)
    try:
        leaked = other.recv()
        raise AssertionError("otto received nina's update: %s" % leaked)
    except Exception as e:  # websocket timeout
        assert "timed out" in str(e) or "Timeout" in type(e).__name__, e
    # both instances read the same history
    ha = requests.get(a.url("/questions"), params={"user_id": "nina"}, headers=auth("nina"), timeout=5).json()
    hb = requests.get(b.url("/questions"), params={"user_id": "nina"}, headers=auth("nina"), timeout=5).json()
    assert [i["question_id"] for i in ha["data"]["items"]] == [qid2, qid]
    assert ha["data"]["items"] == hb["data"]["items"]
    for ws in (on_a, on_b, other):
        ws.close()


def test_closed_connection_rows_removed_and_stale_node_is_gone(cluster_factory):  # noqa: F811
    c = cluster_factory(n_api=2)
    a, b = c.apis
    ws = ws_connect(a, "paulo")
    assert c.sql("SELECT count(*) FROM connections WHERE user_id = 'paulo'").strip() == "1"
    ws.close()
    deadline = time.time() + 10
    while c.sql("SELECT count(*) FROM connections WHERE user_id = 'paulo'").strip() != "0":
        assert time.time() < deadline, "connection row not removed"
        time.sleep(0.05)
    # a row whose node no longer runs (no NATS responder) is deleted by notify
    c.sql("INSERT INTO connections VALUES ('00000000-0000-4000-8000-00000000dead', 'paulo', 'gone-node', 0)")
    qid = post_question(b, "paulo", "O que é LCI?").json()["data"]["question_id"]
    assert wait_terminal(b, qid)["status"] == "completed"
    deadline = time.time() + 10
    while c.sql("SELECT count(*) FROM connections WHERE user_id = 'paulo'").strip() != "0":
        assert time.time() < deadline, "stale connection row kept"
        time.sleep(0.05)


def test_outbox_drained_and_streams_empty(cluster_factory):  # noqa: F811
    c = cluster_factory(n_process=2, n_notify=1)
    ids = [post_question(c, "quel%d" % (i % 3), "Pergunta %d: o que é CDB?" % i).json()["data"]["question_id"]
           for i in range(30)]
    for qid in ids:
        assert wait_terminal(c, qid)["status"] == "completed"
    deadline = time.time() + 15
    while True:
        outbox = int(c.sql("SELECT count(*) FROM outbox"))
        depth = [stream_info(c.prefix, t)["state"]["messages"] for t in ("process", "notify")]
        if outbox == 0 and depth == [0, 0]:
            break
        assert time.time() < deadline, (outbox, depth)
        time.sleep(0.1)
    rows = c.sql("SELECT status, count(*), sum(attempts) FROM questions GROUP BY status").split()
    assert rows == ["completed|30|30"], rows


def test_dead_letter_after_max_deliveries_marks_error(cluster_factory):  # noqa: F811
    c = cluster_factory(worker_args=["--max-attempts", "100", "--retry-base-ms", "20", "--max-deliveries", "3"],
                        env={"TORO_FAULT_ANSWERER": "transient:1000:[sempre]"})
    ws = ws_connect(c, "rita")
    qid = post_question(c, "rita", "[sempre] O que é CRI?").json()["data"]["question_id"]
    got = recv_until(ws, lambda m: m.get("question_id") == qid and m["status"] == "error", timeout=60)
    assert "3 entregas" in got[-1]["error_message"], got[-1]
    q = wait_terminal(c, qid)
    assert q["status"] == "error" and q["attempts"] == 3
    deadline = time.time() + 10
    while stream_info(c.prefix, "dead")["state"]["messages"] != 1:
        assert time.time() < deadline, stream_info(c.prefix, "dead")
        time.sleep(0.1)
    ws.close()


def test_health_of_api_and_worker(cluster_factory, tmp_path):  # noqa: F811
    c = cluster_factory()
    h = requests.get(c.url("/healthz"), timeout=5).json()["data"]
    assert h["status"] == "ok" and h["store"] == "ok" and h["bus"] == "ok" and h["kb_version"]
    w = c.new_worker("notify", 9)
    w.args += ["--health-port", "0"]
    w.ready_prefix = b"health on "
    w.start()
    c.notifiers.append(w)
    port = int(w.ready_line.split(":")[2].split("/")[0])
    r = requests.get("http://127.0.0.1:%d/healthz" % port, timeout=5)
    assert r.status_code == 200 and r.json()["data"] == {"status": "ok", "store": "ok", "bus": "ok"}


def test_store_unreachable_reports_unhealthy_then_recovers(cluster_factory, kb_file, tmp_path):  # noqa: F811
    """An api started while its database refuses connections runs, answers
    503 on /healthz and becomes healthy once the database accepts them."""
    c = cluster_factory()
    c.sql("SELECT 1")
    from cluster import psql
    psql("ALTER DATABASE %s ALLOW_CONNECTIONS false" % c.db)
    try:
        api = c.new_api(7)
        api.ready_prefix = b"listening on "
        from cluster import Proc
        Proc.start(api)
        api.port = int(api.ready_line.rsplit(":", 1)[1])
        c.apis.append(api)
        r = requests.get(api.url("/healthz"), timeout=5)
        assert r.status_code == 503 and r.json()["data"]["store"] == "unreachable", r.text
    finally:
        psql("ALTER DATABASE %s ALLOW_CONNECTIONS true" % c.db)
    deadline = time.time() + 15
    while requests.get(api.url("/healthz"), timeout=5).status_code != 200:
        assert time.time() < deadline, api.log()
        time.sleep(0.2)
    qid = post_question(api, "sara", "O que é FII?").json()["data"]["question_id"]
    assert wait_terminal(api, qid)["status"] == "completed"


def test_migrate_is_idempotent_and_reports_version(cluster_factory):  # noqa: F811
    import subprocess
    from conftest import BIN
    c = cluster_factory()
    r = subprocess.run([BIN, "db", "migrate", "--store", c.store], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "up to date" in r.stdout, r
    r = subprocess.run([BIN, "db", "migrate"], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and "--store" in r.stderr
    r = subprocess.run([BIN, "worker", "process", "--store", c.store, "--bus", "redis://x"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert json.loads(c.sql("SELECT json_agg(indexname ORDER BY indexname) FROM pg_indexes"
                            " WHERE tablename = 'questions'")) == [
        "questions_by_id", "questions_conversation", "questions_feedback", "questions_history", "questions_pkey",
        "questions_status"]
