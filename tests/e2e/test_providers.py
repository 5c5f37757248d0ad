"""The model-backed answerers through the real binary: `toro serve --answerer
openai|bedrock|bedrock-kb` against a fake provider (http.server on 127.0.0.1
in a thread) that records each request and replies with scripted, recorded
response shapes: success, 429 with Retry-After, 500, malformed JSON, a reply
slower than the timeout. Each test checks the exact request the provider got
(path, headers, JSON body shape; for Bedrock the SigV4 signature, verified
here with an independent hmac/hashlib implementation) and how the question
ends (GET /questions/{id}): completed, completed after retries, or error."""
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import post_question, wait_terminal

NO_INFO_PT = "Não tenho informações suficientes para responder a essa pergunta."
NO_INFO_EN = "I don't have enough information to answer this question."
IRRELEVANT = "Qual é a receita de bolo de cenoura com cobertura de chocolate?"
AK = "AKIDEXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FQoGZXIvYXdzEXAMPLE-session-token//////////wEaDA=="
API_KEY = "sk-test-0123456789abcdef"


class Reply:
    def __init__(self, status=200, body=b"", headers=None, delay=0.0):
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = headers or {"Content-Type": "application/json"}
        self.delay = delay


class FakeProvider:
    """Records requests; answers with the scripted replies in order, then `default`."""

    def __init__(self):
        self.requests = []
        self.script = []
        self.default = Reply(500, {"message": "no scripted reply"})
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with fake.lock:
                    fake.requests.append({"method": "POST", "path": self.path, "body": body, "time": time.time(),
                                          "headers": {k.lower(): v for k, v in self.headers.items()}})
                    reply = fake.script.pop(0) if fake.script else fake.default
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def provider():
    p = FakeProvider()
    yield p
    p.close()


BASE_ENV = {  # nothing from the caller's environment leaks into a test
    "TORO_ANSWERER": "", "OPENAI_API_KEY": "", "TORO_OPENAI_API_KEY": "", "TORO_OPENAI_BASE_URL": "",
    "TORO_OPENAI_MODEL": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
    "AWS_REGION": "", "AWS_DEFAULT_REGION": "", "TORO_BEDROCK_MODEL_ID": "", "TORO_BEDROCK_ENDPOINT": "",
    "TORO_BEDROCK_KB_ID": "", "TORO_BEDROCK_MODEL_ARN": "", "TORO_BEDROCK_AGENT_ENDPOINT": "",
    "TORO_PROVIDER_TIMEOUT_MS": "5000", "TORO_PROVIDER_RETRIES": "2", "TORO_PROVIDER_BACKOFF_MS": "50",
    "TORO_PROVIDER_RETRY_AFTER_MAX_MS": "10000", "TORO_FAULT_ANSWERER": "",
    "TORO_PROVIDER_STREAM": "0",  # the whole-reply path; test_streaming.py covers streams
}
ARGS = ["--max-attempts", "2", "--retry-base-ms", "50"]


def start(server_factory, answerer, **env):
    e = dict(BASE_ENV)
    e.update(env)
    return server_factory(extra_args=ARGS + ["--answerer", answerer], env=e)


def ask(server, question, user="prov-user", timeout=60):
    r = post_question(server, user, question)
    assert r.status_code == 202, r.text
    return wait_terminal(server, r.json()["data"]["question_id"], timeout=timeout)


def passages_of(prompt):
    """{n: "title — section"} of the numbered passages in the user prompt."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\[(\d+)\] (.+)$", prompt, re.M)}


def heading(src):
    return src["title"] + (" — " + src["section"] if src["section"] else "")


# ---- OpenAI-compatible ------------------------------------------------------------

def openai_env(provider, **extra):
    e = {"TORO_OPENAI_BASE_URL": provider.url + "/v1", "TORO_OPENAI_MODEL": "test-model", "OPENAI_API_KEY": API_KEY}
    e.update(extra)
    return e


def chat_reply(content):
    return Reply(200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "test-model",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960}})


ANSWER = "**CDB**\n- É um título de renda fixa emitido por bancos [2].\n- Tem garantia do FGC [1][2]."


def test_openai_success_request_shape_and_citations(server_factory, provider):
    provider.script = [chat_reply(ANSWER)]
    s = start(server_factory, "openai", **openai_env(provider))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "completed", q
    assert q["model"] == "openai:test-model"
    assert q["found_relevant_docs"] is True
    assert len(provider.requests) == 1
    req = provider.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == "Bearer " + API_KEY
    assert req["headers"]["content-type"] == "application/json"
    body = json.loads(req["body"])
    assert body["model"] == "test-model" and body["stream"] is False
    assert isinstance(body["max_tokens"], int) and isinstance(body["temperature"], float)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    assert NO_INFO_PT in system and "[1]" in system and "**" in system
    assert user.startswith("Contexto:\n") and user.rstrip().endswith("Pergunta: O que é CDB?")
    passages = passages_of(user)
    assert 2 <= len(passages) <= 5 and sorted(passages) == list(range(1, len(passages) + 1))
    # [2] is cited first: it becomes source 1, passage [1] becomes source 2
    assert q["answer"] == "**CDB**\n- É um título de renda fixa emitido por bancos [1].\n- Tem garantia do FGC [2][1]."
    assert [heading(src) for src in q["sources"]] == [passages[2], passages[1]]
    assert all(src["snippet"] and src["chunk_id"] for src in q["sources"])
    assert API_KEY not in s.log()


def test_openai_no_relevant_docs_means_no_call(server_factory, provider):
    s = start(server_factory, "openai", **openai_env(provider))
    q = ask(s, IRRELEVANT)
    assert q["status"] == "completed"
    assert q["answer"] == NO_INFO_PT and q["found_relevant_docs"] is False and q["sources"] == []
    assert q["model"] == "openai:test-model"
    q = ask(s, "How do I bake a carrot cake with chocolate frosting?")
    assert q["answer"] == NO_INFO_EN and q["found_relevant_docs"] is False
    assert provider.requests == []


def test_openai_model_says_no_info(server_factory, provider):
    provider.script = [chat_reply(NO_INFO_PT)]
    s = start(server_factory, "openai", **openai_env(provider))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "completed" and q["answer"] == NO_INFO_PT
    assert q["found_relevant_docs"] is False and q["sources"] == []


def test_openai_429_retry_after_is_honored(server_factory, provider):
    provider.script = [Reply(429, {"error": {"message": "Rate limit reached", "type": "requests"}},
                             {"Content-Type": "application/json", "Retry-After": "1"}),
                       chat_reply("O CDB é um título de renda fixa [1].")]
    s = start(server_factory, "openai", **openai_env(provider))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "completed" and q["attempts"] == 1, q
    assert len(provider.requests) == 2
    assert provider.requests[1]["time"] - provider.requests[0]["time"] >= 0.9
    assert provider.requests[0]["body"] == provider.requests[1]["body"]
    assert "Rate limit reached" in s.log()


def test_openai_retries_through_the_bus_then_completes(server_factory, provider):
    # one in-call retry per attempt: attempt 1 sees two 429s and gives up (TORO_ERETRY),
    # the process stage retries later and attempt 2 succeeds
    busy = Reply(429, {"error": {"message": "busy"}}, {"Content-Type": "application/json", "Retry-After": "0"})
    provider.script = [busy, busy, chat_reply("O CDB é renda fixa [1].")]
    s = start(server_factory, "openai", **openai_env(provider, TORO_PROVIDER_RETRIES="1"))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "completed" and q["attempts"] == 2, q
    assert len(provider.requests) == 3
    assert q["model"] == "openai:test-model"


def test_openai_500_exhausts_attempts_and_marks_error(server_factory, provider):
    provider.default = Reply(500, {"error": {"message": "upstream exploded"}})
    s = start(server_factory, "openai", **openai_env(provider, TORO_PROVIDER_RETRIES="1"))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "error" and q["attempts"] == 2, q
    assert "HTTP 500" in q["error_message"] and "upstream exploded" in q["error_message"]
    assert len(provider.requests) == 4  # (1 + 1 retry) x 2 attempts
    assert q["answer"] is None


def test_openai_malformed_json_is_permanent(server_factory, provider):
    provider.script = [Reply(200, b'{"choices": [ {"message": ', {"Content-Type": "application/json"})]
    s = start(server_factory, "openai", **openai_env(provider))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "error" and q["attempts"] == 1, q
    assert "malformed" in q["error_message"]
    assert len(provider.requests) == 1


def test_openai_4xx_is_permanent(server_factory, provider):
    provider.script = [Reply(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})]
    s = start(server_factory, "openai", **openai_env(provider))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "error" and q["attempts"] == 1, q
    assert "HTTP 401" in q["error_message"] and "Incorrect API key" in q["error_message"]
    assert API_KEY not in q["error_message"]


def test_openai_timeout_is_retried(server_factory, provider):
    provider.script = [Reply(200, b"{}", delay=2.5), chat_reply("O CDB é renda fixa [1].")]
    s = start(server_factory, "openai", **openai_env(provider, TORO_PROVIDER_TIMEOUT_MS="700"))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "completed" and q["attempts"] == 2, q
    assert "timed out" in s.log()


def test_unconfigured_provider_falls_back_to_extractive(server_factory, provider):
    s = start(server_factory, "openai")
    q = ask(s, "O que é CDB?")
    assert q["status"] == "completed" and q["model"] == "extractive"
    assert "falling back to the extractive answerer" in s.log()


def test_unknown_answerer_refuses_to_start(server_factory):
    with pytest.raises(RuntimeError) as e:
        start(server_factory, "gpt-please")
    assert "unknown answerer 'gpt-please'" in str(e.value)


# ---- Bedrock: SigV4 checked independently ------------------------------------------

def verify_sigv4(req, region, service="bedrock", token=TOKEN):
    h = req["headers"]
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                     r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", h["authorization"])
    assert m, h["authorization"]
    ak, date8, reg, svc, signed, sig = m.groups()
    assert (ak, reg, svc) == (AK, region, service)
    assert re.fullmatch(r"\d{8}T\d{6}Z", h["x-amz-date"]) and h["x-amz-date"][:8] == date8
    assert h["x-amz-content-sha256"] == hashlib.sha256(req["body"]).hexdigest()
    expected = ["content-type", "host", "x-amz-content-sha256", "x-amz-date"] + (["x-amz-security-token"] if token else [])
    assert signed.split(";") == expected
    if token:
        assert h["x-amz-security-token"] == token
    path, _, query = req["path"].partition("?")
    creq = "\n".join([req["method"], urllib.parse.quote(path, safe="/~"), query,
                      "".join("%s:%s\n" % (n, " ".join(h[n].split())) for n in signed.split(";")),
                      signed, hashlib.sha256(req["body"]).hexdigest()])
    scope = "%s/%s/%s/aws4_request" % (date8, region, service)
    sts = "\n".join(["AWS4-HMAC-SHA256", h["x-amz-date"], scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + SK).encode()
    for part in (date8, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    assert hmac.new(key, sts.encode(), hashlib.sha256).hexdigest() == sig, creq


def bedrock_env(provider, **extra):
    e = {"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK, "AWS_SESSION_TOKEN": TOKEN,
         "AWS_REGION": "sa-east-1", "TORO_BEDROCK_ENDPOINT": provider.url}
    e.update(extra)
    return e


def converse_reply(text):
    return Reply(200, {"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                       "stopReason": "end_turn", "usage": {"inputTokens": 900, "outputTokens": 50, "totalTokens": 950},
                       "metrics": {"latencyMs": 812}})


THROTTLED = Reply(429, {"message": "Too many requests, please wait before trying again."},
                  {"Content-Type": "application/json",
                   "x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"})


def test_bedrock_converse_signed_request_and_answer(server_factory, provider):
    provider.script = [converse_reply("O CDB é um título de renda fixa [1]. Ele tem garantia do FGC [3].")]
    s = start(server_factory, "bedrock", **bedrock_env(provider))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "completed", q
    assert q["model"] == "bedrock:us.amazon.nova-pro-v1:0"
    req = provider.requests[0]
    assert req["path"] == "/model/us.amazon.nova-pro-v1%3A0/converse"
    assert req["headers"]["host"] == "127.0.0.1:%d" % provider.port
    verify_sigv4(req, "sa-east-1")
    body = json.loads(req["body"])
    assert set(body) == {"system", "messages", "inferenceConfig"}
    assert NO_INFO_PT in body["system"][0]["text"]
    assert body["messages"][0]["role"] == "user" and len(body["messages"]) == 1
    user = body["messages"][0]["content"][0]["text"]
    assert "Pergunta: O que é CDB?" in user
    assert isinstance(body["inferenceConfig"]["maxTokens"], int)
    assert isinstance(body["inferenceConfig"]["temperature"], float)
    passages = passages_of(user)
    assert q["answer"] == "O CDB é um título de renda fixa [1]. Ele tem garantia do FGC [2]."
    assert [heading(src) for src in q["sources"]] == [passages[1], passages[3]]
    log = s.log()
    assert SK not in log and TOKEN not in log


def test_bedrock_throttling_is_retried(server_factory, provider):
    provider.script = [THROTTLED, converse_reply("O CDB é renda fixa [1].")]
    s = start(server_factory, "bedrock", **bedrock_env(provider, AWS_SESSION_TOKEN=""))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "completed" and q["attempts"] == 1, q
    assert len(provider.requests) == 2
    for r in provider.requests:  # each attempt is signed, without a session token
        verify_sigv4(r, "sa-east-1", token=None)
        assert "x-amz-security-token" not in r["headers"]
    assert "ThrottlingException" in s.log()


def test_bedrock_5xx_marks_error_after_attempts(server_factory, provider):
    provider.default = Reply(500, {"message": "Internal server error"},
                             {"Content-Type": "application/json", "x-amzn-ErrorType": "InternalServerException"})
    s = start(server_factory, "bedrock", **bedrock_env(provider, TORO_PROVIDER_RETRIES="0"))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "error" and q["attempts"] == 2, q
    assert "HTTP 500 (InternalServerException)" in q["error_message"]
    assert len(provider.requests) == 2


def test_bedrock_malformed_and_validation_errors_are_permanent(server_factory, provider):
    provider.script = [Reply(200, {"output": {}, "stopReason": "end_turn"}),
                       Reply(400, {"message": "The provided model identifier is invalid."},
                             {"Content-Type": "application/json", "x-amzn-ErrorType": "ValidationException"})]
    s = start(server_factory, "bedrock", **bedrock_env(provider))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "error" and q["attempts"] == 1 and "malformed" in q["error_message"], q
    q = ask(s, "O que é LCI?")
    assert q["status"] == "error" and q["attempts"] == 1, q
    assert "HTTP 400 (ValidationException): The provided model identifier is invalid." in q["error_message"]


def test_bedrock_no_relevant_docs_means_no_call(server_factory, provider):
    s = start(server_factory, "bedrock", **bedrock_env(provider))
    q = ask(s, IRRELEVANT)
    assert q["answer"] == NO_INFO_PT and q["found_relevant_docs"] is False
    assert provider.requests == []


# ---- Bedrock Knowledge Base (RetrieveAndGenerate) ----------------------------------

KB_ARN = "arn:aws:bedrock:sa-east-1::foundation-model/amazon.nova-pro-v1:0"


def kb_env(provider, **extra):
    e = bedrock_env(provider, TORO_BEDROCK_ENDPOINT="", TORO_BEDROCK_AGENT_ENDPOINT=provider.url,
                    TORO_BEDROCK_KB_ID="KBTORO1234", TORO_BEDROCK_MODEL_ARN=KB_ARN)
    e.update(extra)
    return e


def ref(uri, text, chunk):
    return {"content": {"text": text}, "location": {"type": "S3", "s3Location": {"uri": uri}},
            "metadata": {"x-amz-bedrock-kb-source-uri": uri, "x-amz-bedrock-kb-chunk-id": chunk,
                         "x-amz-bedrock-kb-data-source-id": "DS1"}}


def test_bedrock_kb_retrieve_and_generate(server_factory, provider):
    part1 = "O CDB é um título de renda fixa emitido por bancos."
    part2 = "Ele tem garantia do FGC até R$ 250 mil por CPF e instituição."
    text = part1 + " " + part2
    cdb = ref("s3://toro-kb/docs/cdb.md", "O CDB (Certificado de Depósito Bancário) é um título...", "chunk-cdb-1")
    fgc = ref("s3://toro-kb/docs/fgc.md", "O FGC garante até R$ 250 mil por CPF...", "chunk-fgc-2")
    provider.script = [Reply(200, {
        "sessionId": "sess-1",
        "output": {"text": text},
        "citations": [
            {"generatedResponsePart": {"textResponsePart": {"text": part1, "span": {"start": 0, "end": len(part1)}}},
             "retrievedReferences": [cdb]},
            {"generatedResponsePart": {"textResponsePart": {"text": part2,
                                                            "span": {"start": len(part1) + 1, "end": len(text)}}},
             "retrievedReferences": [fgc, cdb]},
        ]})]
    s = start(server_factory, "bedrock-kb", **kb_env(provider))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "completed", q
    req = provider.requests[0]
    assert req["path"] == "/retrieveAndGenerate"
    verify_sigv4(req, "sa-east-1")
    assert json.loads(req["body"]) == {
        "input": {"text": "O que é CDB?"},
        "retrieveAndGenerateConfiguration": {"type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
            "knowledgeBaseId": "KBTORO1234", "modelArn": KB_ARN}}}
    assert q["answer"] == part1 + " [1] " + part2 + " [2][1]"
    assert [(x["doc_id"], x["chunk_id"]) for x in q["sources"]] == [("cdb", "chunk-cdb-1"), ("fgc", "chunk-fgc-2")]
    assert q["sources"][1]["snippet"].startswith("O FGC garante")
    assert q["model"] == "bedrock-kb:" + KB_ARN
    assert q["kb_version"] == "bedrock-kb:KBTORO1234"
    assert q["found_relevant_docs"] is True


def test_bedrock_kb_without_citations_is_no_info(server_factory, provider):
    provider.script = [Reply(200, {"sessionId": "s", "output": {"text": "Sorry, I am unable to assist you with this request."},
                                   "citations": [{"generatedResponsePart": {"textResponsePart": {
                                       "text": "Sorry", "span": {"start": 0, "end": 5}}}, "retrievedReferences": []}]})]
    s = start(server_factory, "bedrock-kb", **kb_env(provider))
    q = ask(s, "Qual a cotação do dólar hoje?")
    assert q["status"] == "completed" and q["answer"] == NO_INFO_PT and q["found_relevant_docs"] is False


def test_bedrock_kb_throttling_then_error(server_factory, provider):
    provider.default = THROTTLED
    s = start(server_factory, "bedrock-kb", **kb_env(provider, TORO_PROVIDER_RETRIES="1"))
    q = ask(s, "O que é CDB?")
    assert q["status"] == "error" and q["attempts"] == 2, q
    assert "ThrottlingException" in q["error_message"]
    assert len(provider.requests) == 4
    for r in provider.requests:
        verify_sigv4(r, "sa-east-1")
