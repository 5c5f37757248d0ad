"""lambda_emulator.py: a small AWS Lambda Runtime API for the tests, so that
`toro lambda` runs as it does in a provided.al2023 sandbox.

Function starts `toro lambda` with AWS_LAMBDA_RUNTIME_API pointing at its own
http.server and _HANDLER set, then serves the Runtime API as AWS documents it
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html):
  GET  /2018-06-01/runtime/invocation/next        -> the event, with the
       Lambda-Runtime-Aws-Request-Id and Lambda-Runtime-Deadline-Ms headers
  POST /2018-06-01/runtime/invocation/{id}/response, .../{id}/error -> 202
  POST /2018-06-01/runtime/init/error              -> 202
invoke(event) hands one event out and returns ("ok", result JSON),
("error", error JSON) or ("crash", None) when the runtime process died with
the invocation in hand (as Lambda reports a crashed sandbox).

SqsSource plays the SQS event source mapping: receive a batch, invoke, delete
the records the function did not list in batchItemFailures (nothing when the
invocation failed or crashed: SQS makes them visible again).
"""
import json
import os
import queue
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class Function:
    def __init__(self, binary, handler, env, log_path):
        self.binary, self.handler, self.env, self.log_path = binary, handler, env, log_path
        self.pending = queue.Queue()
        self.results = {}
        self.in_flight = None
        self.init_error = None
        self.closing = False
        self.cv = threading.Condition()
        self.proc = None
        fn = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, status, body=b"{}", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != PREFIX + "/invocation/next":
                    return self.reply(404)
                proc = fn.proc
                while True:  # a dead runtime's request must not take the next event
                    try:
                        rid, event = fn.pending.get(timeout=0.2)
                        break
                    except queue.Empty:
                        if fn.closing or proc is None or proc.poll() is not None or proc is not fn.proc:
                            return  # no answer: the runtime's next call fails and it exits
                with fn.cv:
                    fn.in_flight = rid
                deadline = str(int(time.time() * 1000) + 60000)
                self.reply(200, json.dumps(event).encode(),
                           [("Lambda-Runtime-Aws-Request-Id", rid), ("Lambda-Runtime-Deadline-Ms", deadline),
                            ("Content-Type", "application/json")])

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                parts = self.path[len(PREFIX):].strip("/").split("/")
                if parts == ["init", "error"]:
                    fn.init_error = json.loads(body or b"{}")
                    return self.reply(202)
                if len(parts) != 3 or parts[0] != "invocation" or parts[2] not in ("response", "error"):
                    return self.reply(404)
                with fn.cv:
                    fn.results[parts[1]] = ("ok" if parts[2] == "response" else "error", json.loads(body or b"null"))
                    fn.in_flight = None
                    fn.cv.notify_all()
                self.reply(202)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def start(self):
        env = dict(os.environ)
        env.update(self.env)
        env["AWS_LAMBDA_RUNTIME_API"] = "127.0.0.1:%d" % self.server.server_address[1]
        env["_HANDLER"] = self.handler
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "lambda"], env=env, stdout=log, stderr=log)

    def invoke(self, event, timeout=60):
        rid = str(uuid.uuid4())
        proc = self.proc
        self.pending.put((rid, event))
        end = time.time() + timeout
        with self.cv:
            while rid not in self.results:
                if proc.poll() is not None:
                    self.in_flight = None
                    return ("crash", None)
                if time.time() > end:
                    raise TimeoutError("%s: no answer to invocation %s" % (self.handler, rid))
                self.cv.wait(0.1)
            return self.results.pop(rid)

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10)

    def stop(self):
        """Ends the Runtime API: the runtime's next call fails and it exits on its own
        (so sanitizers report at exit); killed if it does not within 15 s."""
        self.closing = True
        self.server.shutdown()
        self.server.server_close()
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


class SqsSource:
    """The event source mapping of one queue onto one function."""

    def __init__(self, sqs, queue_name, function):
        self.sqs, self.fn = sqs, function
        self.url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        self.arn = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def records(self, wait_s=1):
        r = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s,
                                     AttributeNames=["All"])
        return [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                 "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                 "eventSource": "aws:sqs", "eventSourceARN": self.arn, "awsRegion": "us-east-1"}
                for m in r.get("Messages", [])]

    def deliver(self, records):
        """One invocation; returns (kind, failed message ids)."""
        kind, body = self.fn.invoke({"Records": records})
        if kind != "ok":
            return kind, {r["messageId"] for r in records}
        failed = {f["itemIdentifier"] for f in body["batchItemFailures"]}
        for r in records:
            if r["messageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=r["receiptHandle"])
        return kind, failed

    def poll(self, wait_s=1):
        """Receive and deliver one batch; the records delivered."""
        recs = self.records(wait_s)
        if recs:
            self.deliver(recs)
        return recs
