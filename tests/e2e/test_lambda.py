"""toro on AWS Lambda, on this machine: `toro lambda` processes driven by a
Lambda Runtime API emulator (lambda_emulator.py) with events in the shapes
AWS documents (lambda_events/), moto_server as SNS and SQS, a SigV4-checking
stand-in for the API Gateway Management API (tests/integration/bus/
apigw_peer.py: answers 410 Gone for connection "gone"), a fake
OpenAI-compatible model (so a question can be held mid-answer), and a store
given by URL; every test runs twice: on DynamoDB (moto, tables of the run's
own, created by `toro db migrate`), the store the reference uses, and on a
PostgreSQL database of the test's own. TORO_LAMBDA_TEST_STORE replaces both
with one URL (migrated first; "{moto}" in it stands for moto's endpoint).

Walks a question from the REST event to the post_to_connection carrying the
answer; a process function killed mid-question (SQS redelivers, answered
once); a 410 Gone connection removed; a bad token refused at $connect; a
user registering for another user's id refused; cfn-lint on the template.
"""
import copy
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from conftest import BIN, ROOT, TEST_ISSUER, TEST_SECRET, jwt_for  # noqa: E402
from lambda_emulator import Function, SqsSource  # noqa: E402

boto3 = pytest.importorskip("boto3")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
EVENTS = os.path.join(os.path.dirname(__file__), "lambda_events")
PEER = os.path.join(ROOT, "tests", "integration", "bus", "apigw_peer.py")
CREDS = {"AWS_ACCESS_KEY_ID": "AKIDTOROTEST", "AWS_SECRET_ACCESS_KEY": "toro-test-secret",
         "AWS_SESSION_TOKEN": "toro-test-session-token", "AWS_REGION": "us-east-1"}
QUESTION = "Qual o limite de garantia do FGC?"
# The functions run `toro lambda` from the build, or the packaged zip's bootstrap when
# TORO_LAMBDA_TEST_BOOTSTRAP names it (scripts/lambda-package.sh, unzipped: it sets
# LAMBDA_TASK_ROOT to the bootstrap's directory, as the Lambda service does).
BOOTSTRAP = os.environ.get("TORO_LAMBDA_TEST_BOOTSTRAP")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("port %d" % port)


def load(name):
    with open(os.path.join(EVENTS, name)) as f:
        return json.load(f)


def rest(method, path, user=None, body=None, query=None, token=None):
    ev = load("rest_proxy.json")
    ev["httpMethod"] = ev["requestContext"]["httpMethod"] = method
    ev["path"] = path
    parts = path.strip("/").split("/")  # /questions, /questions/{id}[/feedback], /conversations[/{id}]
    ev["resource"] = ev["requestContext"]["resourcePath"] = "/".join(
        [""] + parts[:1] + (["{id}"] if len(parts) > 1 else []) + parts[2:])
    ev["pathParameters"] = {"id": parts[1]} if len(parts) > 1 else None
    ev["queryStringParameters"] = query
    ev["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    ev["headers"]["Authorization"] = "Bearer " + (token or jwt_for(user))
    ev["body"] = json.dumps(body) if body is not None else None
    ev["requestContext"]["requestId"] = str(uuid.uuid4())
    return ev


def ws(route, connection_id, token=None, body=None):
    ev = load("ws_event.json")
    ctx = ev["requestContext"]
    ctx["routeKey"], ctx["connectionId"] = route, connection_id
    ctx["eventType"] = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
    if token:
        ev["queryStringParameters"] = {"token": token}
        ev["multiValueQueryStringParameters"] = {"token": [token]}
    if body is not None:
        ev["body"] = json.dumps(body)
    return ev


class FakeModel:
    """An OpenAI-compatible chat endpoint; hold() makes the next call hang."""

    def __init__(self):
        self.calls, self.hold_next, self.held = 0, False, threading.Event()
        self.release = threading.Event()
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                fake.calls += 1
                if fake.hold_next:
                    fake.hold_next = False
                    fake.held.set()
                    fake.release.wait(60)
                    return
                body = json.dumps({"id": "c1", "object": "chat.completion", "model": "test-model",
                                   "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                       "role": "assistant", "content": "O FGC garante até R$ 250 mil [1]."}}],
                                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/v1" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Aws:
    """moto, the Management API peer, the fake model, a store and the five functions."""

    def __init__(self, kb, tmp, store_kind):
        self.tmp, self.procs, self.fns, self.db = tmp, [], {}, None
        moto_bin = os.path.join(VENV_BIN, "moto_server")
        if not os.access(moto_bin, os.X_OK):
            pytest.skip("moto_server is not installed in .venv (tests/requirements.txt)")
        self.moto_port, self.peer_port = free_port(), free_port()
        self.spawn([moto_bin, "-p", str(self.moto_port)], "moto.log")
        self.peer_log = os.path.join(tmp, "apigw-posts.log")
        open(self.peer_log, "w").close()
        self.spawn([sys.executable, PEER, str(self.peer_port), self.peer_log], "apigw-peer.log")
        wait_port(self.moto_port)
        wait_port(self.peer_port)
        self.model = FakeModel()
        given = os.environ.get("TORO_LAMBDA_TEST_STORE")
        if not given and store_kind == "dynamodb":
            t = "tl%s" % uuid.uuid4().hex[:8]
            given = "dynamodb://us-east-1?endpoint={moto}&questions=%s_q&connections=%s_c&outbox=%s_o" % (t, t, t)
        self.store = given.replace("{moto}", "http://127.0.0.1:%d" % self.moto_port) if given else self.postgres()
        if given:
            subprocess.run([BIN, "db", "migrate", "--store", self.store], check=True, capture_output=True, timeout=120,
                           env=dict(os.environ, **CREDS))
        prefix = "tl%s" % uuid.uuid4().hex[:8]
        self.env = dict(CREDS, LAMBDA_TASK_ROOT=os.path.dirname(BOOTSTRAP or BIN), TORO_STORE=self.store,
                        TORO_KB=os.path.join(os.path.dirname(BOOTSTRAP), "kb.toro") if BOOTSTRAP else kb, TORO_ANSWERER="openai",
                        TORO_OPENAI_BASE_URL=self.model.url, TORO_OPENAI_MODEL="test-model",
                        TORO_PROVIDER_RETRIES="0", TORO_FAULT_ANSWERER="transient:1:retry-probe",
                        TORO_RETRY_BASE_MS="6000", TORO_RETRY_MAX_MS="6000", TORO_JWT_SECRET=TEST_SECRET, TORO_JWT_ISSUER=TEST_ISSUER,
                        TORO_APIGW_ENDPOINT="http://127.0.0.1:%d/prod" % self.peer_port,
                        TORO_BUS="sns://us-east-1?endpoint=http://127.0.0.1:%d&prefix=%s&declare=1&visibility_s=2"
                                 "&retries=6&wait_s=1" % (self.moto_port, prefix))
        for h in ("relay", "ingest", "websocket", "process", "notify"):  # relay first: it declares the queues
            fn = Function(BOOTSTRAP or BIN, h, self.env, os.path.join(tmp, "lambda-%s.log" % h))
            self.fns[h] = fn
            fn.start()
            if h == "relay":
                assert fn.invoke({"source": "aws.events", "detail-type": "Scheduled Event"})[0] == "ok", fn.log()
        sqs = self.client("sqs")
        self.process = SqsSource(sqs, prefix + "-process", self.fns["process"])
        self.notify = SqsSource(sqs, prefix + "-notify", self.fns["notify"])

    def client(self, service):
        return boto3.client(service, endpoint_url="http://127.0.0.1:%d" % self.moto_port, region_name="us-east-1",
                            aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"])

    def spawn(self, argv, log):
        with open(os.path.join(self.tmp, log), "ab") as f:
            self.procs.append(subprocess.Popen(argv, stdout=f, stderr=f))

    def postgres(self):
        from cluster import PG_BASE, psql
        self.db = "toro_lambda_%s" % uuid.uuid4().hex[:8]
        psql("CREATE DATABASE %s" % self.db)
        url = "%s/%s" % (PG_BASE, self.db)
        subprocess.run([BIN, "db", "migrate", "--store", url], check=True, capture_output=True, timeout=60)
        return url

    def invoke(self, handler, event):
        kind, body = self.fns[handler].invoke(event)
        assert kind == "ok", (kind, body, self.fns[handler].log()[-3000:])
        return body

    def posts(self):
        with open(self.peer_log) as f:
            return [(line.split("\t", 1)[0], json.loads(line.split("\t", 1)[1])) for line in f if "\t" in line]

    def pump_until(self, pred, timeout=60):
        """Plays both event source mappings until pred() holds."""
        end = time.time() + timeout
        while time.time() < end:
            if pred():
                return
            self.process.poll(wait_s=0)
            self.notify.poll(wait_s=0)
            time.sleep(0.2)
        raise AssertionError("timed out; posts so far: %s" % self.posts())

    def close(self):
        for fn in self.fns.values():
            fn.stop()
        for fn in self.fns.values():  # sanitizer builds report at exit
            for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                assert bad not in fn.log(), "%s: %s" % (fn.handler, fn.log()[-4000:])
        self.model.stop()
        for p in self.procs:
            p.kill()
            p.wait(10)
        if self.db:
            from cluster import psql
            psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.db)


@pytest.fixture(scope="module", params=["dynamodb", "postgres"])
def aws(kb_file, tmp_path_factory, request):
    a = None
    try:
        a = Aws(kb_file, str(tmp_path_factory.mktemp("lambda")), request.param)
        yield a
    finally:
        if a:
            a.close()


def connect(aws, user, connection_id):
    r = aws.invoke("websocket", ws("$connect", connection_id, token=jwt_for(user)))
    assert r["statusCode"] == 200, r
    r = aws.invoke("websocket", ws("register", connection_id, body={"action": "register", "user_id": user}))
    assert r["statusCode"] == 200 and json.loads(r["body"])["type"] == "registered", r


def ask(aws, user, question=QUESTION):
    r = aws.invoke("ingest", rest("POST", "/questions", user, {"question": question}))
    assert r["statusCode"] == 202, r
    return json.loads(r["body"])["data"]["question_id"]


def updates(aws, connection_id, qid, status=None):
    return [m for c, m in aws.posts() if c == connection_id and m.get("question_id") == qid
            and (status is None or m.get("status") == status)]


def test_question_walks_from_rest_event_to_post_to_connection(aws):
    connect(aws, "ana", "conn-ana-1")
    connect(aws, "ana", "conn-ana-2")  # several connections per user: each gets the update
    qid = ask(aws, "ana")
    aws.pump_until(lambda: updates(aws, "conn-ana-1", qid, "completed") and updates(aws, "conn-ana-2", qid, "completed"))
    done = updates(aws, "conn-ana-1", qid, "completed")
    assert len(done) == 1 and "250 mil" in done[0]["answer"] and done[0]["sources"], done
    one = aws.invoke("ingest", rest("GET", "/questions/" + qid, "ana"))
    assert one["statusCode"] == 200 and json.loads(one["body"])["data"]["status"] == "completed"
    assert aws.invoke("ingest", rest("GET", "/questions/" + qid, "bob"))["statusCode"] == 404
    qid2 = ask(aws, "ana", "O que é CDB?")
    page = aws.invoke("ingest", rest("GET", "/questions", "ana", query={"limit": "1"}))
    body = json.loads(page["body"])["data"]
    assert page["statusCode"] == 200 and [q["question_id"] for q in body["items"]] == [qid2] and body["next_token"]
    page2 = aws.invoke("ingest", rest("GET", "/questions", "ana", query={"limit": "1", "next_token": body["next_token"]}))
    assert [q["question_id"] for q in json.loads(page2["body"])["data"]["items"]] == [qid]
    aws.pump_until(lambda: updates(aws, "conn-ana-1", qid2, "completed"))


def test_feedback_and_conversations_through_ingest(aws):
    r = aws.invoke("ingest", rest("POST", "/questions", "gil", {"question": QUESTION}))
    assert r["statusCode"] == 202, r
    data = json.loads(r["body"])["data"]
    qid, conv = data["question_id"], data["conversation_id"]

    def state():
        return json.loads(aws.invoke("ingest", rest("GET", "/questions/" + qid, "gil"))["body"])["data"]
    aws.pump_until(lambda: state()["status"] == "completed")
    fb = aws.invoke("ingest", rest("POST", "/questions/%s/feedback" % qid, "gil", {"rating": "down", "comment": "curta"}))
    assert fb["statusCode"] == 200, fb
    assert aws.invoke("ingest", rest("POST", "/questions/%s/feedback" % qid, "hal", {"rating": "up"}))["statusCode"] == 404
    assert state()["feedback"]["rating"] == "down" and state()["conversation_id"] == conv
    convs = aws.invoke("ingest", rest("GET", "/conversations", "gil"))
    assert convs["statusCode"] == 200, convs
    assert [c["conversation_id"] for c in json.loads(convs["body"])["data"]["items"]] == [conv]
    turns = aws.invoke("ingest", rest("GET", "/conversations/" + conv, "gil"))
    assert turns["statusCode"] == 200, turns
    assert [q["question_id"] for q in json.loads(turns["body"])["data"]["items"]] == [qid]
    assert aws.invoke("ingest", rest("GET", "/conversations/" + conv, "hal"))["statusCode"] == 404


def test_rest_refusals_follow_the_gateway_rules(aws):
    assert aws.invoke("ingest", rest("POST", "/questions", "ana", {"question": "x"}, token="bad"))["statusCode"] == 401
    assert aws.invoke("ingest", rest("POST", "/questions", "ana", {"question": "  "}))["statusCode"] == 400
    r = aws.invoke("ingest", rest("POST", "/questions", "ana", {"user_id": "bob", "question": QUESTION}))
    assert r["statusCode"] == 403, r
    r = aws.invoke("ingest", rest("GET", "/questions", "ana", query={"user_id": "bob"}))
    assert r["statusCode"] == 403 and json.loads(r["body"])["code"] == "user_mismatch", r
    assert aws.invoke("ingest", rest("DELETE", "/questions", "ana"))["statusCode"] == 405


def test_connect_refuses_a_bad_token(aws):
    r = aws.invoke("websocket", ws("$connect", "conn-bad", token=jwt_for("ana") + "x"))
    assert r["statusCode"] == 401, r
    r = aws.invoke("websocket", ws("$connect", "conn-none"))
    assert r["statusCode"] == 401, r


def test_register_for_another_users_id_is_refused(aws):
    connect(aws, "bob", "conn-bob")
    r = aws.invoke("websocket", ws("register", "conn-bob", body={"action": "register", "user_id": "ana"}))
    assert r["statusCode"] == 403 and json.loads(r["body"])["code"] == "user_mismatch", r
    r = aws.invoke("websocket", ws("register", "conn-bob", body={"action": "register", "user_id": "ana",
                                                                  "token": jwt_for("bob")}))
    assert r["statusCode"] == 403, r
    qid = ask(aws, "ana")  # bob's connection never gets ana's answer
    aws.pump_until(lambda: updates(aws, "conn-ana-1", qid, "completed"))
    assert not [m for c, m in aws.posts() if c == "conn-bob" and m.get("question_id") == qid]


def test_gone_connection_is_removed(aws):
    connect(aws, "carla", "gone")  # the peer answers 410 Gone for this id
    connect(aws, "carla", "conn-carla")
    qid = ask(aws, "carla")
    aws.pump_until(lambda: updates(aws, "conn-carla", qid, "completed"))
    # its row is gone: the store no longer holds "gone" for carla
    r = aws.invoke("websocket", ws("register", "gone", body={"action": "register", "user_id": "carla"}))
    assert r["statusCode"] == 403, r
    r = aws.invoke("websocket", ws("register", "conn-carla", body={"action": "register", "user_id": "carla"}))
    assert r["statusCode"] == 200, r
    aws.invoke("websocket", ws("$disconnect", "conn-carla"))
    r = aws.invoke("websocket", ws("register", "conn-carla", body={"action": "register", "user_id": "carla"}))
    assert r["statusCode"] == 403, r


def test_process_crash_mid_question_is_redelivered_and_answered_once(aws):
    connect(aws, "dora", "conn-dora")
    aws.model.held.clear()
    aws.model.hold_next = True
    qid = ask(aws, "dora")
    fn = aws.fns["process"]
    end = time.time() + 30
    recs = []
    while not recs and time.time() < end:
        recs = aws.process.records(wait_s=1)
    assert recs
    result = {}
    t = threading.Thread(target=lambda: result.update(r=aws.process.deliver(recs)))
    t.start()
    assert aws.model.held.wait(30), fn.log()[-3000:]  # the model is answering this question: kill the sandbox
    fn.kill9()
    t.join(30)
    assert result["r"][0] == "crash"
    fn.start()  # Lambda starts a new execution environment
    aws.pump_until(lambda: updates(aws, "conn-dora", qid, "completed"), timeout=90)
    time.sleep(3)  # past the visibility timeout: a second answer would have arrived by now
    aws.process.poll(wait_s=1)
    aws.notify.poll(wait_s=1)
    done = updates(aws, "conn-dora", qid, "completed")
    assert len(done) == 1, done
    one = json.loads(aws.invoke("ingest", rest("GET", "/questions/" + qid, "dora"))["body"])["data"]
    assert one["status"] == "completed" and one["attempts"] == 2, one


def test_nacked_record_comes_back_after_its_backoff_not_the_queue_timeout(aws):
    """A transient answerer failure: the record is a batch item failure whose visibility is set to
    the stage's backoff (4.5-6 s here), not left to the queue's 2 s."""
    connect(aws, "fred", "conn-fred")
    qid = ask(aws, "fred", QUESTION + " (retry-probe)")
    recs, end = [], time.time() + 30
    while not recs and time.time() < end:
        recs = aws.process.records(wait_s=1)
    assert len(recs) == 1
    kind, failed = aws.process.deliver(recs)
    assert kind == "ok" and failed == {recs[0]["messageId"]}, (kind, failed)
    t0 = time.time()
    time.sleep(3)
    assert not aws.process.records(wait_s=0)  # past the queue's own 2 s, still invisible
    aws.pump_until(lambda: updates(aws, "conn-fred", qid, "completed"))
    assert time.time() - t0 >= 4
    one = json.loads(aws.invoke("ingest", rest("GET", "/questions/" + qid, "fred"))["body"])["data"]
    assert one["status"] == "completed" and one["attempts"] == 2, one


def test_relay_publishes_what_ingest_could_not(aws):
    """No dual write: with SNS refusing (the topic gone), the question is still accepted (202) and its
    event waits in the store's outbox; the scheduled relay publishes it once SNS is back."""
    sns = aws.client("sns")
    arn = aws.process.arn.replace(":sqs:", ":sns:")
    sns.delete_topic(TopicArn=arn)
    connect(aws, "eva", "conn-eva")
    qid = ask(aws, "eva")
    assert "outbox not published now" in aws.fns["ingest"].log()
    assert not aws.process.records(wait_s=1)  # nothing reached the queue
    assert sns.create_topic(Name=arn.rsplit(":", 1)[1])["TopicArn"] == arn
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=aws.process.arn, Attributes={"RawMessageDelivery": "true"})
    assert aws.invoke("relay", {"version": "0", "source": "aws.events", "detail-type": "Scheduled Event"})["published"] >= 1
    aws.pump_until(lambda: updates(aws, "conn-eva", qid, "completed"))
    assert aws.invoke("relay", {"source": "aws.events"})["published"] == 0  # published events left the outbox


def test_template_passes_cfn_lint():
    lint = os.path.join(VENV_BIN, "cfn-lint")
    if not os.access(lint, os.X_OK):
        pytest.skip("cfn-lint is not installed in .venv (tests/requirements.txt)")
    r = subprocess.run([lint, os.path.join(ROOT, "deploy", "aws", "template.yaml")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
