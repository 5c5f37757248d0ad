"""Fixtures for end-to-end tests: the real toro binary on a free port in a
temporary data directory, driven over real HTTP and WebSocket sockets."""
import base64
import hashlib
import hmac
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import requests
import websocket

ROOT = os.environ.get("TORO_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("TORO_BIN", os.path.join(ROOT, "build", "toro"))
# Servers started by the tests sign and accept tokens with this secret, so a
# token stays valid across restarts; the tests mint tokens with their own
# HS256 implementation (not the server's).
TEST_SECRET = "toro-test-secret-0123456789-abcdefghijklmnop"
# With a secret configured the servers run in jwt mode (even on loopback) and
# require this issuer; "toro-dev" is the development login's and refused.
TEST_ISSUER = "toro-test"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims, secret=TEST_SECRET, header=None):
    h = b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    p = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (h, p, b64url(sig))


def jwt_for(user, ttl=3600, **extra):
    now = int(time.time())
    claims = {"sub": user, "iss": TEST_ISSUER, "iat": now, "exp": now + ttl}
    claims.update(extra)
    return make_jwt(claims)


def auth(user):
    return {"Authorization": "Bearer " + jwt_for(user)}


def build_kb(out_path):
    subprocess.run([BIN, "kb", "build", os.path.join(ROOT, "kb", "docs"), "-o", out_path],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    return out_path


def log_tail(path, n=4000):
    try:
        with open(path, "rb") as f:
            lines = [ln for ln in f if b'"component":"access"' not in ln]
        return b"".join(lines).decode("utf-8", "replace")[-n:]
    except OSError:
        return ""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Nothing skips silently: with CI=true a skipped test (a missing service,
    engine or privilege) fails with the skip's reason; elsewhere the reason is
    printed in the summary (ctest passes -rs)."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and os.environ.get("CI") == "true" and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = "skipped in CI (CI=true), which must run every test: %s" % reason


@pytest.fixture(scope="session")
def kb_file(tmp_path_factory):
    return build_kb(str(tmp_path_factory.mktemp("kb") / "sample.toro"))


def read_line(proc, deadline):
    """The next line of proc's stdout, or b"" at end of file or when the
    deadline passes first (a process that hangs before printing must not
    hang the test). Reads the pipe unbuffered: nothing else reads it."""
    fd, line = proc.stdout.fileno(), b""
    while not line.endswith(b"\n"):
        left = deadline - time.time()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return b""
        c = os.read(fd, 1)
        if not c:
            time.sleep(0.05)  # end of file: the caller sees the process exit
            return b""
        line += c
    return line


class Endpoint:
    """A toro process serving HTTP and WebSocket on 127.0.0.1:self.port."""

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def ws_url(self, query=""):
        return "ws://127.0.0.1:%d/ws%s" % (self.port, query)

    def wait_healthy(self, deadline, what):
        """Polls /healthz until it answers 200 or the deadline passes. A slow
        first answer (a cold machine: the first PostgreSQL connection and the
        JetStream declarations happen on the first /healthz) is waited for:
        each try may take what is left of the deadline, and a refused, reset
        or timed-out try is simply retried."""
        last = "no answer"
        while True:
            left = deadline - time.time()
            if left <= 0:
                break
            try:
                r = requests.get(self.url("/healthz"), timeout=max(0.5, min(left, 30)))
                if r.status_code == 200:
                    return self
                last = "%d %s" % (r.status_code, r.text[:200])
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        raise RuntimeError("%s /healthz did not answer 200 in time (last: %s)\n%s" % (what, last, self.log()))


class Server(Endpoint):
    """One `toro serve` process. start() waits until /healthz answers."""

    def __init__(self, data_dir, kb, extra_args=(), env=None):
        self.data_dir = data_dir
        self.kb = kb
        # tests poll freely; the rate limits have their own tests (test_security.py, test_operations.py)
        self.extra_args = list(extra_args) if "--rate-limit" in extra_args else ["--rate-limit", "0"] + list(extra_args)
        if "--read-rate-limit" not in self.extra_args:
            self.extra_args = ["--read-rate-limit", "0"] + self.extra_args
        self.env = dict(os.environ)
        self.env.setdefault("TORO_JWT_SECRET", TEST_SECRET)
        self.env.setdefault("TORO_JWT_ISSUER", TEST_ISSUER)
        self.env.update(env or {})
        self.owner = {}  # question_id -> user, for reads with the right token
        self.proc = None
        self.port = None
        self.log_path = os.path.join(data_dir, "server.log")

    def start(self, port=0):
        os.makedirs(self.data_dir, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--port", str(port), "--data", self.data_dir, "--kb", self.kb] + self.extra_args,
            stdout=subprocess.PIPE, stderr=log, env=self.env)
        log.close()
        deadline = time.time() + 60
        line = b""
        while time.time() < deadline:
            line = read_line(self.proc, deadline)
            if line.startswith(b"listening on "):
                self.port = int(line.strip().rsplit(b":", 1)[1])
                break
            if self.proc.poll() is not None:
                break
        if self.port is None:
            raise RuntimeError("toro did not start: %r\n%s" % (line, self.log()))
        return self.wait_healthy(deadline, "toro")

    def log(self):
        """The end of the log without access-log lines (test_operations.py reads those)."""
        return log_tail(self.log_path)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("toro did not stop within %ss after signal %s" % (timeout, sig))
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def server_factory(kb_file, tmp_path):
    started = []

    def make(extra_args=(), env=None, data_dir=None):
        s = Server(data_dir or str(tmp_path / ("data%d" % len(started))), kb_file, extra_args, env)
        started.append(s)
        return s.start()

    yield make
    bad = []
    for s in started:
        if s.proc and s.proc.poll() is None:
            rc = s.stop()
            # a clean exit also means no sanitizer report (they exit non-zero)
            if rc != 0:
                bad.append("server exited with %s\n%s" % (rc, s.log()))
    assert not bad, "\n".join(bad)


@pytest.fixture
def server(server_factory):
    return server_factory()


def post_question(server, user, question, timeout=10):
    r = requests.post(server.url("/questions"), json={"user_id": user, "question": question}, headers=auth(user),
                      timeout=timeout)
    if r.status_code == 202:
        server.owner[r.json()["data"]["question_id"]] = user
    return r


def ws_connect(server, user=None, timeout=20):
    q = "?access_token=%s" % jwt_for(user) if user else ""
    ws = websocket.create_connection(server.ws_url(q), timeout=timeout)
    if user:
        msg = json.loads(ws.recv())
        assert msg["type"] == "registered", msg
        assert msg["user_id"] == user
    return ws


def recv_until(ws, pred, timeout=30):
    """Receives JSON messages until pred(msg) is true; returns all received."""
    got = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        ws.settimeout(max(0.1, deadline - time.time()))
        try:
            raw = ws.recv()
        except websocket.WebSocketTimeoutException:
            break
        msg = json.loads(raw)
        got.append(msg)
        if pred(msg):
            return got
    raise AssertionError("condition not met within %ss; received %r" % (timeout, got))


def wait_terminal(server, qid, timeout=30, user=None):
    headers = auth(user or server.owner[qid])
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(server.url("/questions/" + qid), headers=headers, timeout=5)
        if r.status_code == 200 and r.json()["data"]["status"] in ("completed", "error"):
            return r.json()["data"]
        time.sleep(0.05)
    raise AssertionError("question %s did not end within %ss" % (qid, timeout))
