"""Backends chosen by URL (--store sqlite://…|postgres://…, --bus
local|nats://…) for serve, api and worker:

- `toro serve --store postgres://… --bus nats://…` is one distributed node in
  one process (gateway, stages and outbox relay): the contract tests of the
  embedded mode run against it, two such nodes deliver to each other's
  sockets, and an api + worker cluster and a serve node share one deployment;
- `toro serve --store sqlite://PATH` is the embedded mode under its URL name;
- pairs that cannot work are refused before anything opens, with the reason
  on stderr and exit status 2.

Each test gets its own PostgreSQL database and NATS stream prefix
(cluster.Cluster), dropped afterwards."""
import os
import subprocess
import time
import types

import pytest

from cluster import ApiNode, Cluster, Proc, psql
from conftest import (BIN, TEST_ISSUER, TEST_SECRET, Endpoint, post_question, recv_until, wait_terminal,
                      ws_connect)

# The embedded mode's contract tests, collected again with `server` /
# `server_factory` below giving them a serve node on PostgreSQL + NATS.
from test_api import (test_get_question_by_id, test_history_newest_first_and_pagination,  # noqa: F401
                      test_no_information_answer, test_post_returns_202_envelope_and_answer_has_sources,
                      test_validation_errors)
from test_lifecycle import test_transient_failures_are_retried_then_complete  # noqa: F401
from test_ws import test_register_action_and_errors, test_updates_pushed_to_every_connection_of_the_user  # noqa: F401


class ServeNode(Proc, Endpoint):
    """A `toro serve` process on the deployment's PostgreSQL database and NATS
    prefix, usable wherever a conftest.Server is."""

    def __init__(self, deployment, name, args):
        super().__init__(name, list(args), deployment.env, deployment.log_dir, b"listening on ")
        self.deployment = deployment
        self.port = None

    @property
    def owner(self):
        return self.deployment.owner

    def start(self, timeout=60):
        super().start(timeout)
        self.port = int(self.ready_line.rsplit(":", 1)[1])
        return self.wait_healthy(time.time() + timeout, "serve")


class Deployment(Cluster):
    """A cluster with no api or worker of its own (its database and NATS
    prefix, created and dropped as in cluster.py) that serve nodes join; the
    mixed test adds an api and a worker."""

    def __init__(self, kb, log_dir, env=None):
        super().__init__(kb, log_dir, n_api=0, n_process=0, n_notify=0, env=env)

    def serve(self, extra_args=()):
        args = ["serve", "--port", "0", "--store", self.store, "--bus", self.bus, "--kb", self.kb,
                "--rate-limit", "0", "--read-rate-limit", "0"] + list(extra_args)
        node = ServeNode(self, "serve%d" % len(self.apis), args)
        self.apis.append(node)  # stopped (exit status checked) with the cluster
        return node.start()


@pytest.fixture
def deployment_factory(kb_file, tmp_path):
    made = []
    yield lambda env=None: made.append(Deployment(kb_file, str(tmp_path), env)) or made[-1].start()
    bad = [line for d in made for line in d.stop()]
    assert not bad, "\n".join(bad)


@pytest.fixture
def server_factory(deployment_factory):
    def make(extra_args=(), env=None, data_dir=None):
        return deployment_factory(env).serve(extra_args)
    return make


@pytest.fixture
def server(server_factory):
    return server_factory()


def test_serve_node_on_postgres_and_nats_answers_end_to_end(server):
    """HTTP in, answer over the WebSocket, and the state really lives in
    PostgreSQL and went through JetStream (the outbox relay ran here)."""
    ws = ws_connect(server, "wanda")
    qid = post_question(server, "wanda", "Qual o limite de garantia do FGC?").json()["data"]["question_id"]
    got = recv_until(ws, lambda m: m.get("question_id") == qid and m["status"] == "completed")
    assert got[-1]["answer"] and got[-1]["sources"]
    assert wait_terminal(server, qid)["status"] == "completed"
    d = server.deployment
    row = psql("SELECT status FROM questions WHERE question_id = '%s'" % qid, d.store).strip()
    assert row == "completed"
    deadline = time.time() + 10  # every event relayed (rows go once JetStream acknowledged them)
    while psql("SELECT count(*) FROM outbox", d.store).strip() != "0" and time.time() < deadline:
        time.sleep(0.1)
    assert psql("SELECT count(*) FROM outbox", d.store).strip() == "0"
    ws.close()


def test_two_serve_nodes_deliver_to_each_others_sockets(deployment_factory):
    d = deployment_factory()
    a, b = d.serve(), d.serve()
    on_a = ws_connect(a, "xena")
    qid = post_question(b, "xena", "O que é o Tesouro Selic?").json()["data"]["question_id"]
    got = recv_until(on_a, lambda m: m.get("question_id") == qid and m["status"] == "completed")
    assert got[-1]["answer"]
    on_b = ws_connect(b, "yuri")
    qid2 = post_question(a, "yuri", "Qual o limite de garantia do FGC?").json()["data"]["question_id"]
    recv_until(on_b, lambda m: m.get("question_id") == qid2 and m["status"] == "completed")
    on_a.close()
    on_b.close()


def test_serve_node_and_api_worker_cluster_share_one_deployment(deployment_factory):
    """A serve node is an ordinary member: a question asked on a `toro api`
    is answered (by whichever process worker takes it) and pushed to a socket
    held by the serve node."""
    d = deployment_factory()
    node = d.serve(["--process-workers", "1"])
    api_args = ["api", "--port", "0", "--store", d.store, "--bus", d.bus, "--kb", d.kb, "--rate-limit", "0"]
    api = ApiNode(d, "api", api_args, d.env, d.log_dir)
    d.apis.append(api)
    api.start()
    worker = Proc("process", ["worker", "process", "--store", d.store, "--bus", d.bus, "--kb", d.kb],
                  d.env, d.log_dir, b"worker process ready")
    d.processors.append(worker)
    worker.start()
    ws = ws_connect(node, "zeca")
    qid = post_question(api, "zeca", "O que é CDB?").json()["data"]["question_id"]
    got = recv_until(ws, lambda m: m.get("question_id") == qid and m["status"] == "completed")
    assert got[-1]["answer"]
    ws.close()


def test_serve_with_sqlite_url_is_the_embedded_mode(kb_file, tmp_path):
    db = tmp_path / "store" / "answers.db"
    env = dict(os.environ, TORO_JWT_SECRET=TEST_SECRET, TORO_JWT_ISSUER=TEST_ISSUER)
    d = types.SimpleNamespace(env=env, log_dir=str(tmp_path), owner={})
    node = ServeNode(d, "embedded", ["serve", "--port", "0", "--store", "sqlite://%s" % db, "--kb", kb_file,
                                     "--rate-limit", "0", "--read-rate-limit", "0"])
    node.start()
    try:
        ws = ws_connect(node, "olga")
        qid = post_question(node, "olga", "O que é CDB?").json()["data"]["question_id"]
        recv_until(ws, lambda m: m.get("question_id") == qid and m["status"] == "completed")
        ws.close()
        assert db.exists() and (tmp_path / "store" / "toro.lock").exists()
        # the same file cannot be served twice
        r = subprocess.run([BIN, "serve", "--port", "0", "--store", "sqlite://%s" % db, "--kb", kb_file],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 1 and "in use by another toro process" in r.stderr, r.stderr
    finally:
        assert node.stop() == 0, node.log()


NATS = "nats://127.0.0.1:1"
PG = "postgres://127.0.0.1:1/x"

# (arguments, words the message must contain); {kb} is a real snapshot. All
# refused before anything is opened (the URLs point at closed ports).
REFUSED = [
    (["serve", "--kb", "{kb}", "--store", "sqlite:///tmp/x.db", "--bus", NATS], "only --bus local reads"),
    (["serve", "--kb", "{kb}", "--data", "/tmp/x", "--bus", NATS], "only --bus local reads"),
    (["serve", "--kb", "{kb}", "--store", PG, "--bus", "local"], "relayed to a nats:// or sns:// bus"),
    (["serve", "--kb", "{kb}", "--store", "sqlite:///tmp/x.db", "--bus", "sns://us-east-1"], "only --bus local reads"),
    (["api", "--store", PG, "--bus", "sns://us-east-1"], "use nats:// for api and worker"),
    (["worker", "notify", "--store", PG, "--bus", "sns://us-east-1"], "has no node-to-node post"),
    (["serve", "--kb", "{kb}", "--store", "mysql://x"], "--store must be sqlite://PATH or postgres://"),
    (["serve", "--kb", "{kb}", "--store", PG, "--bus", "redis://x"], "--bus must be local, nats://HOST:PORT or sns://"),
    (["serve", "--kb", "{kb}", "--data", "d", "--store", PG], "--data DIR and --store URL both choose the store"),
    (["api", "--store", "sqlite:///tmp/x.db", "--bus", "local"], "would never see this api's questions"),
    (["api", "--store", "sqlite:///tmp/x.db"], "would never see this api's questions"),
    (["api", "--store", PG, "--bus", "local"], "--bus local belongs to one process"),
    (["worker", "process", "--kb", "{kb}", "--store", "sqlite:///tmp/x.db", "--bus", "local"],
     "this worker would never see the questions of a toro api"),
    (["worker", "notify", "--store", "sqlite:///tmp/x.db", "--bus", "local"],
     "this worker would never see the questions of a toro api"),
    (["worker", "notify", "--store", PG, "--bus", "local"], "--bus local belongs to one process"),
]


@pytest.mark.parametrize("args,needle", REFUSED, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_refused_combinations_say_why_and_exit_2(kb_file, args, needle):
    env = {k: v for k, v in os.environ.items() if k not in ("TORO_STORE", "TORO_BUS", "TORO_DATA")}
    r = subprocess.run([BIN] + [a.replace("{kb}", kb_file) for a in args], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert needle in r.stderr, r.stderr
    assert r.stdout == "" and "listening on" not in r.stderr


def test_store_and_bus_from_the_environment_are_checked_too(kb_file):
    env = {k: v for k, v in os.environ.items() if k not in ("TORO_STORE", "TORO_BUS")}
    env.update(TORO_STORE="sqlite:///tmp/never.db", TORO_BUS="local")
    r = subprocess.run([BIN, "worker", "notify"], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 2 and "--store sqlite:///tmp/never.db belongs to one process" in r.stderr, r.stderr
    # serve keeps its embedded default whatever TORO_STORE says: it would open
    # data/toro.db here, so only check that the store is not the variable's
    r = subprocess.run([BIN, "serve", "--kb", kb_file, "--bus", NATS], capture_output=True, text=True, env=env,
                       timeout=30)
    assert r.returncode == 2 and "--store sqlite://" in r.stderr and "never.db" not in r.stderr, r.stderr
