"""Retries with backoff, error after the last attempt, clean shutdown and
durability across restarts, through the real binary."""
import signal
import time

import requests

from conftest import Server, auth, post_question, recv_until, wait_terminal, ws_connect

FAULTS = {"TORO_FAULT_ANSWERER": "transient:2:[instavel];transient:99:[fora];permanent:1:[recusa]"}


def test_transient_failures_are_retried_then_complete(server_factory):
    s = server_factory(extra_args=["--max-attempts", "3", "--retry-base-ms", "50"], env=FAULTS)
    ws = ws_connect(s, "gil")
    qid = post_question(s, "gil", "[instavel] O que é CDB?").json()["data"]["question_id"]
    got = recv_until(ws, lambda m: m.get("question_id") == qid and m["status"] in ("completed", "error"))
    assert got[-1]["status"] == "completed"
    # processing is announced once, not once per attempt
    assert [m["status"] for m in got] == ["processing", "completed"]
    q = wait_terminal(s, qid)
    assert q["attempts"] == 3
    ws.close()


def test_exhausted_retries_mark_error_and_notify(server_factory):
    s = server_factory(extra_args=["--max-attempts", "3", "--retry-base-ms", "50"], env=FAULTS)
    ws = ws_connect(s, "hana")
    qid = post_question(s, "hana", "[fora] O que é LCA?").json()["data"]["question_id"]
    got = recv_until(ws, lambda m: m.get("question_id") == qid and m["status"] in ("completed", "error"))
    err = got[-1]
    assert err["status"] == "error"
    assert "3 tentativas" in err["error_message"]
    q = wait_terminal(s, qid)
    assert q["status"] == "error" and q["attempts"] == 3 and q["answer"] is None
    qid2 = post_question(s, "hana", "[recusa] O que é CRA?").json()["data"]["question_id"]
    q2 = wait_terminal(s, qid2)
    assert q2["status"] == "error" and q2["attempts"] == 1
    metrics = requests.get(s.url("/metrics"), timeout=5).text
    retries = [l for l in metrics.splitlines() if l.startswith("toro_process_retries_total ")][0]
    assert int(retries.split()[1]) >= 2
    ws.close()


def test_sigterm_stops_cleanly_and_work_survives_restart(server_factory, kb_file, tmp_path):
    data = str(tmp_path / "shared-data")
    # the first attempt fails and is retried only after 4 s: still queued when we stop
    s = server_factory(extra_args=["--retry-base-ms", "4000"],
                       env={"TORO_FAULT_ANSWERER": "transient:1:[lento]"}, data_dir=data)
    done = post_question(s, "ivo", "O que é poupança?").json()["data"]["question_id"]
    wait_terminal(s, done)
    slow = post_question(s, "ivo", "[lento] O que é debênture incentivada?").json()["data"]["question_id"]
    deadline = time.time() + 10
    while requests.get(s.url("/questions/" + slow), headers=auth("ivo"), timeout=5).json()["data"]["attempts"] < 1:
        assert time.time() < deadline
        time.sleep(0.05)
    t0 = time.time()
    assert s.stop(signal.SIGTERM) == 0
    assert time.time() - t0 < 5, "shutdown waited for the retry delay"
    # a second server on the same directory is refused while the first runs
    s2 = Server(data, kb_file).start()
    blocked = Server(data, kb_file)
    try:
        blocked.start()
        raise AssertionError("two servers on one data directory")
    except RuntimeError as e:
        assert "in use" in str(e)
    q = wait_terminal(s2, slow, timeout=30, user="ivo")
    assert q["status"] == "completed"
    assert wait_terminal(s2, done, user="ivo")["status"] == "completed"
    hist = requests.get(s2.url("/questions"), headers=auth("ivo"), timeout=5).json()["data"]["items"]
    assert [h["question_id"] for h in hist] == [slow, done]
    assert s2.stop(signal.SIGINT) == 0


def test_start_errors_are_clear(kb_file, tmp_path):
    import subprocess
    from conftest import BIN
    r = subprocess.run([BIN, "serve", "--port", "0", "--data", str(tmp_path / "d"), "--kb", str(tmp_path / "none.toro")],
                       capture_output=True, timeout=30)
    assert r.returncode != 0
    assert b"knowledge base" in r.stderr
    r = subprocess.run([BIN, "serve", "--port", "99999"], capture_output=True, timeout=30)
    assert r.returncode == 2 and b"--port" in r.stderr
