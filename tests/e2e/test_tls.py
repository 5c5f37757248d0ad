"""TLS on the listening port (--tls-cert / --tls-key), through the real
binary: https and wss with a self-signed certificate made by the openssl
command line, pipelined requests and large bodies across TLS records, a
plain-HTTP client and a stalled handshake on the TLS port, and refusal to
start with a certificate/key pair that does not match."""
import json
import os
import socket
import ssl
import subprocess
import time

import pytest
import requests
import websocket

import conftest
from conftest import BIN, auth, jwt_for, recv_until, wait_terminal


def make_cert(directory, name):
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=120)
    return cert, key


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def cert_pair(tls_dir):
    return make_cert(tls_dir, "server")


@pytest.fixture
def start_tls(server_factory, cert_pair, monkeypatch):
    """Starts toro with TLS. conftest's Server builds http:// URLs and its
    start() polls /healthz with requests' default CAs: point both at https
    and at our certificate for the duration of the test."""
    cert, key = cert_pair
    monkeypatch.setattr(conftest.Server, "url", lambda self, path: "https://127.0.0.1:%d%s" % (self.port, path))
    monkeypatch.setattr(conftest.Server, "ws_url",
                        lambda self, query="": "wss://127.0.0.1:%d/ws%s" % (self.port, query))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)

    def start(extra_args=(), env=None, files=True):
        args = (["--tls-cert", cert, "--tls-key", key] if files else []) + list(extra_args)
        return server_factory(extra_args=args, env=env)

    return start


def client_context(cert, **kw):
    ctx = ssl.create_default_context(cafile=cert)
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def read_response(f):
    """One HTTP/1.1 response (Content-Length framed) from a file object."""
    status = f.readline()
    headers = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, v = line.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = f.read(int(headers.get("content-length", "0")))
    return int(status.split()[1]), headers, body


def test_https_rest_api(start_tls, cert_pair):
    cert, _ = cert_pair
    s = start_tls()
    r = requests.get(s.url("/healthz"), verify=cert, timeout=5)
    assert r.status_code == 200 and r.json()["data"]["status"] == "ok"
    q = requests.post(s.url("/questions"), json={"question": "O que é o FGC?"}, headers=auth("tania"), verify=cert,
                      timeout=10)
    assert q.status_code == 202, q.text
    qid = q.json()["data"]["question_id"]
    assert q.json()["data"]["user_id"] == "tania"
    done = wait_terminal(s, qid, user="tania")
    assert done["status"] == "completed"
    # the token is still required over TLS
    assert requests.get(s.url("/questions"), verify=cert, timeout=5).status_code == 401
    # certificate verification by name works too (SAN DNS:localhost)
    assert requests.get("https://localhost:%d/healthz" % s.port, verify=cert, timeout=5).status_code == 200


def test_tls_versions_and_alpn(start_tls, cert_pair):
    cert, _ = cert_pair
    s = start_tls()
    ctx = client_context(cert)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    # TLS 1.2 is accepted
    ctx12 = client_context(cert, maximum_version=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
        with ctx12.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.version() == "TLSv1.2"
    # a client without ALPN is served as well
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
        with client_context(cert).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() is None
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert read_response(tls.makefile("rb"))[0] == 200


def test_pipelining_and_large_bodies_over_tls(start_tls, cert_pair):
    """Several requests in one TLS write, a body spanning many TLS records,
    and a response larger than one record: the gateway must drain what
    OpenSSL already holds, not wait for epoll."""
    cert, _ = cert_pair
    s = start_tls()
    token = jwt_for("pia")
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as raw:
        with client_context(cert).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            f = tls.makefile("rb")
            one = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            tls.sendall(one * 5)
            for _ in range(5):
                assert read_response(f)[0] == 200
            # 60 KB body (four TLS records): the question is too long, so 400, but it must be read whole
            body = json.dumps({"question": "x" * 60000}).encode()
            req = (b"POST /questions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token.encode() +
                   b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            tls.sendall(req + body + one)
            status, _, payload = read_response(f)
            assert status == 400, payload
            assert read_response(f)[0] == 200
            # a response of several records
            tls.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, headers, payload = read_response(f)
            assert status == 200 and len(payload) == int(headers["content-length"])
    r = requests.get(s.url("/"), verify=cert, timeout=5)
    assert r.status_code == 200 and len(r.content) == int(r.headers["Content-Length"])


def test_slow_reader_over_tls(start_tls, cert_pair):
    """Megabytes of pipelined responses to a client that does not read for a
    while: SSL_write hits WANT_WRITE, the gateway keeps queueing behind it
    (the write buffer grows and moves) and everything arrives intact."""
    cert, _ = cert_pair
    s = start_tls()
    n = 1000
    with socket.create_connection(("127.0.0.1", s.port), timeout=20) as raw:
        with client_context(cert).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * n)
            time.sleep(1.5)
            f = tls.makefile("rb")
            first = read_response(f)
            assert first[0] == 200 and first[2]
            for _ in range(n - 1):
                status, _, body = read_response(f)
                assert (status, body) == (200, first[2])
    assert requests.get(s.url("/healthz"), verify=cert, timeout=5).status_code == 200


def test_wss_receives_completed_update(start_tls, cert_pair):
    cert, _ = cert_pair
    s = start_tls()
    url = "wss://127.0.0.1:%d/ws?access_token=%s" % (s.port, jwt_for("wanda"))
    ws = websocket.create_connection(url, timeout=20, sslopt={"ca_certs": cert})
    try:
        msg = json.loads(ws.recv())
        assert msg["type"] == "registered" and msg["user_id"] == "wanda"
        q = requests.post(s.url("/questions"), json={"question": "Qual o limite de garantia do FGC?"},
                          headers=auth("wanda"), verify=cert, timeout=10)
        assert q.status_code == 202
        qid = q.json()["data"]["question_id"]
        got = recv_until(ws, lambda m: m.get("question_id") == qid and m.get("status") == "completed")
        assert got[-1]["answer"]
        # client messages over wss: the contract's ping
        ws.send(json.dumps({"action": "ping"}))
        assert any(m.get("type") == "pong" for m in recv_until(ws, lambda m: m.get("type") == "pong", timeout=10))
    finally:
        ws.close()
    # a plain ws:// client on the TLS port does not get a WebSocket
    with pytest.raises(Exception):
        websocket.create_connection("ws://127.0.0.1:%d/ws" % s.port, timeout=5).recv()


def test_plain_http_to_tls_port(start_tls, cert_pair):
    cert, _ = cert_pair
    s = start_tls()
    try:
        r = requests.get("http://127.0.0.1:%d/healthz" % s.port, timeout=5)
        # refused in plain HTTP, saying why
        assert r.status_code == 400 and "https" in r.json()["error"].lower()
    except requests.ConnectionError:
        pass  # or simply closed
    # bytes that are neither TLS nor HTTP: closed
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
        c.sendall(b"\x00\x01garbage\r\n\r\n" * 10)
        c.settimeout(5)
        try:
            while c.recv(4096):
                pass
        except ConnectionResetError:
            pass
    # the server is unharmed
    assert requests.get(s.url("/healthz"), verify=cert, timeout=5).status_code == 200
    assert s.proc.poll() is None


def test_stalled_handshake_is_cut_off(start_tls, cert_pair):
    cert, _ = cert_pair
    s = start_tls(extra_args=["--header-timeout-ms", "1000"])
    silent = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    partial = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello
    t0 = time.time()
    # meanwhile other clients are served
    for _ in range(3):
        assert requests.get(s.url("/healthz"), verify=cert, timeout=5).status_code == 200
    for sock in (silent, partial):
        try:
            assert sock.recv(4096) == b""  # closed by the server, nothing sent (no 408 before TLS)
        except ConnectionResetError:
            pass
        elapsed = time.time() - t0
        assert 0.9 <= elapsed <= 6, elapsed
        sock.close()
    assert requests.get(s.url("/healthz"), verify=cert, timeout=5).status_code == 200


def test_environment_fallback(start_tls, cert_pair):
    cert, key = cert_pair
    s = start_tls(files=False, env={"TORO_TLS_CERT": cert, "TORO_TLS_KEY": key})
    assert requests.get(s.url("/healthz"), verify=cert, timeout=5).status_code == 200


def test_bad_tls_files_refuse_to_start(tls_dir, cert_pair, kb_file, tmp_path):
    cert, key = cert_pair
    other_cert, other_key = make_cert(tls_dir, "other")
    env = dict(os.environ, TORO_JWT_SECRET=conftest.TEST_SECRET)
    env.pop("TORO_TLS_CERT", None)
    env.pop("TORO_TLS_KEY", None)

    def serve(*tls_args):
        return subprocess.run([BIN, "serve", "--port", "0", "--data", str(tmp_path / "d"), "--kb", kb_file]
                              + list(tls_args), capture_output=True, env=env, timeout=60)

    r = serve("--tls-cert", cert, "--tls-key", other_key)
    assert r.returncode != 0 and b"does not match" in r.stderr, r.stderr
    assert b"listening on" not in r.stdout
    r = serve("--tls-cert", cert)
    assert r.returncode == 2 and b"--tls-key" in r.stderr, r.stderr
    r = serve("--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", key)
    assert r.returncode != 0 and b"missing.crt" in r.stderr and b"No such file" in r.stderr, r.stderr
    r = serve("--tls-cert", key, "--tls-key", key)
    assert r.returncode != 0 and b"certificate" in r.stderr, r.stderr
    r = serve("--tls-cert", cert, "--tls-key", other_cert)
    assert r.returncode != 0 and b"key" in r.stderr, r.stderr
