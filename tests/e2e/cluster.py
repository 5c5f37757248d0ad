"""A local distributed toro for the end-to-end tests: `toro api` x N and
`toro worker process|notify` x N on the real PostgreSQL and nats-server of
this machine (started by scripts/services.sh when not running). Each cluster
gets its own database (toro_test_<random>) and its own NATS prefix (streams
<prefix>_process/_notify/_dead), both removed when it stops, so tests never
see each other's data and leave nothing behind.

An ApiNode exposes the same surface as conftest.Server (url, port, ws_url,
owner, log, stop), so contract tests written for `toro serve` run unchanged
against the distributed mode."""
import json
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest

from conftest import BIN, ROOT, TEST_ISSUER, TEST_SECRET, Endpoint, log_tail, read_line

PG_ADMIN = os.environ.get("TORO_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres")
PG_BASE = PG_ADMIN.rsplit("/", 1)[0]
NATS_URL = os.environ.get("TORO_TEST_NATS", "nats://127.0.0.1:4222")


def ensure_services():
    subprocess.run([os.path.join(ROOT, "scripts", "services.sh")], check=True, timeout=120)


def psql(sql, db_url=PG_ADMIN, timeout=30):
    r = subprocess.run(["psql", db_url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("psql failed: %s" % r.stderr)
    return r.stdout


def nats_request(subject, payload=b"", timeout=5):
    """A minimal NATS client: one request/reply over the text protocol."""
    host, port = NATS_URL[len("nats://"):].split(":")
    s = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        f = s.makefile("rb")
        f.readline()  # INFO
        inbox = "_INBOX.toro_test_%s" % uuid.uuid4().hex
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB %s 1\r\nPUB %s %s %d\r\n%s\r\nPING\r\n'
                  % (inbox.encode(), subject.encode(), inbox.encode(), len(payload), payload))
        while True:
            line = f.readline()
            if not line:
                raise RuntimeError("nats closed the connection")
            if line.startswith(b"MSG "):
                n = int(line.split()[-1])
                data = f.read(n + 2)[:n]
                return json.loads(data) if data else {}
            if line.startswith(b"-ERR"):
                raise RuntimeError(line.decode())
    finally:
        s.close()


def delete_streams(prefix):
    for t in ("process", "notify", "dead"):
        try:
            nats_request("$JS.API.STREAM.DELETE.%s_%s" % (prefix, t))
        except (OSError, RuntimeError):
            pass


def stream_info(prefix, topic):
    return nats_request("$JS.API.STREAM.INFO.%s_%s" % (prefix, topic))


class Proc:
    """One toro process (api or worker) with its own log file."""

    def __init__(self, name, args, env, log_dir, ready_prefix):
        self.name = name
        self.args = args
        self.env = env
        self.log_path = os.path.join(log_dir, name + ".log")
        self.ready_prefix = ready_prefix
        self.proc = None
        self.ready_line = None

    def start(self, timeout=60):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([BIN] + self.args, stdout=subprocess.PIPE, stderr=log, env=self.env)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = read_line(self.proc, deadline)
            if line.startswith(self.ready_prefix):
                self.ready_line = line.decode().strip()
                return self
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError("%s did not start\n%s" % (self.name, self.log()))

    def log(self):
        return log_tail(self.log_path)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("%s did not stop within %ss" % (self.name, timeout))
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()


class ApiNode(Proc, Endpoint):
    """A `toro api` process, usable wherever a conftest.Server is."""

    def __init__(self, cluster, name, args, env, log_dir):
        super().__init__(name, args, env, log_dir, b"listening on ")
        self.cluster = cluster
        self.port = None

    @property
    def owner(self):
        return self.cluster.owner  # question ownership is cluster-wide

    def start(self, timeout=60):
        super().start(timeout)
        self.port = int(self.ready_line.rsplit(":", 1)[1])
        return self.wait_healthy(time.time() + timeout, "api")


class Cluster:
    """n_api api instances, n_process + n_notify worker processes."""

    def __init__(self, kb, log_dir, n_api=1, n_process=1, n_notify=1, worker_args=(), env=None, ack_wait_ms=3000,
                 concurrency=2):
        tag = uuid.uuid4().hex[:10]
        self.db = "toro_test_" + tag
        self.prefix = "t" + tag
        self.store = "%s/%s" % (PG_BASE, self.db)
        self.bus = "%s?prefix=%s&ack_wait_ms=%d" % (NATS_URL, self.prefix, ack_wait_ms)
        self.kb = kb
        self.log_dir = log_dir
        self.env = dict(os.environ)
        self.env.setdefault("TORO_JWT_SECRET", TEST_SECRET)
        self.env.setdefault("TORO_JWT_ISSUER", TEST_ISSUER)
        self.env.update(env or {})
        self.worker_args = list(worker_args)
        self.concurrency = concurrency
        self.owner = {}
        self.apis = []
        self.processors = []
        self.notifiers = []
        self.counts = (n_api, n_process, n_notify)
        self.created = False

    # conftest.Server surface, delegated to the first api instance
    @property
    def port(self):
        return self.apis[0].port

    def url(self, path):
        return self.apis[0].url(path)

    def ws_url(self, query=""):
        return self.apis[0].ws_url(query)

    def log(self):
        return "\n".join("== %s ==\n%s" % (p.name, p.log()) for p in self.procs())

    def procs(self):
        return self.apis + self.processors + self.notifiers

    def new_api(self, i):
        args = ["api", "--port", "0", "--node", "api%d-%s" % (i, self.prefix), "--store", self.store, "--bus",
                self.bus, "--kb", self.kb, "--rate-limit", "0", "--read-rate-limit", "0"]
        return ApiNode(self, "api%d" % i, args, self.env, self.log_dir)

    def new_worker(self, stage, i):
        args = ["worker", stage, "--store", self.store, "--bus", self.bus, "--concurrency", str(self.concurrency)]
        if stage == "process":
            args += ["--kb", self.kb] + self.worker_args
        return Proc("%s%d" % (stage, i), args, self.env, self.log_dir, b"worker %s ready" % stage.encode())

    def start(self):
        ensure_services()
        psql("CREATE DATABASE %s" % self.db)
        self.created = True
        subprocess.run([BIN, "db", "migrate", "--store", self.store], check=True, capture_output=True, timeout=60)
        n_api, n_process, n_notify = self.counts
        for i in range(n_process):
            self.processors.append(self.new_worker("process", i).start())
        for i in range(n_notify):
            self.notifiers.append(self.new_worker("notify", i).start())
        for i in range(n_api):
            self.apis.append(self.new_api(i).start())
        return self

    def restart(self, proc):
        """Starts a fresh process in place of proc (same name and arguments)."""
        fresh = ApiNode(self, proc.name, proc.args, self.env, self.log_dir) if isinstance(proc, ApiNode) else \
            Proc(proc.name, proc.args, self.env, self.log_dir, proc.ready_prefix)
        fresh.start()
        for group in (self.apis, self.processors, self.notifiers):
            for i, p in enumerate(group):
                if p is proc:
                    group[i] = fresh
        return fresh

    def sql(self, query):
        return psql(query, self.store)

    def stop(self):
        bad = []
        for p in self.procs():
            if p.alive():
                try:
                    rc = p.stop()
                except AssertionError as e:  # killed; still clean up below
                    bad.append("%s\n%s" % (e, p.log()))
                    continue
                if rc != 0:
                    bad.append("%s exited with %s\n%s" % (p.name, rc, p.log()))
        if self.created:
            psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.db)
        delete_streams(self.prefix)
        return bad


@pytest.fixture
def cluster_factory(kb_file, tmp_path):
    made = []

    def make(**kw):
        c = Cluster(kb_file, str(tmp_path), **kw)
        made.append(c)
        return c.start()

    yield make
    bad = []
    for c in made:
        bad += c.stop()
    assert not bad, "\n".join(bad)
