"""Fixtures for end-to-end tests: the real toro binary on a free port in a
temporary data directory, driven over real HTTP and WebSocket sockets."""
import json
import os
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


def build_kb(out_path):
    subprocess.run([BIN, "kb", "build", os.path.join(ROOT, "kb", "docs"), "-o", out_path],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    return out_path


@pytest.fixture(scope="session")
def kb_file(tmp_path_factory):
    return build_kb(str(tmp_path_factory.mktemp("kb") / "sample.toro"))


class Server:
    """One `toro serve` process. start() waits until /healthz answers."""

    def __init__(self, data_dir, kb, extra_args=(), env=None):
        self.data_dir = data_dir
        self.kb = kb
        self.extra_args = list(extra_args)
        self.env = dict(os.environ, **(env or {}))
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
            line = self.proc.stdout.readline()
            if line.startswith(b"listening on "):
                self.port = int(line.strip().rsplit(b":", 1)[1])
                break
            if self.proc.poll() is not None:
                break
        if self.port is None:
            raise RuntimeError("toro did not start: %r\n%s" % (line, self.log()))
        while time.time() < deadline:
            try:
                if requests.get(self.url("/healthz"), timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError("toro /healthz never answered\n" + self.log())

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def ws_url(self, query=""):
        return "ws://127.0.0.1:%d/ws%s" % (self.port, query)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

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
    for s in started:
        if s.proc and s.proc.poll() is None:
            s.stop()


@pytest.fixture
def server(server_factory):
    return server_factory()


def post_question(server, user, question, timeout=10):
    return requests.post(server.url("/questions"), json={"user_id": user, "question": question}, timeout=timeout)


def ws_connect(server, user=None, timeout=20):
    q = "?user_id=%s" % user if user else ""
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


def wait_terminal(server, qid, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(server.url("/questions/" + qid), timeout=5)
        if r.status_code == 200 and r.json()["data"]["status"] in ("completed", "error"):
            return r.json()["data"]
        time.sleep(0.05)
    raise AssertionError("question %s did not end within %ss" % (qid, timeout))
