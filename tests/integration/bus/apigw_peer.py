"""apigw_peer.py: a stand-in for the API Gateway Management API, for
test_apigw_post.c. moto's server mode accepts a post to any connection id
(it creates the connection), so it can never answer 410 Gone; this peer can.

POST /<stage>/@connections/<id> is checked for a complete SigV4 signature,
recomputed here independently of toro's signer (service execute-api, the
fake test credentials, session token signed and sent). Answers: 403 on any
signature fault (the reason in the body), 410 for id "gone", 429 for id
"busy", otherwise 200; every accepted post appends "id<TAB>body" to LOG.

usage: apigw_peer.py PORT LOG
"""
import hashlib
import hmac
import re
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

ACCESS_KEY, SECRET = "AKIDTOROTEST", "toro-test-secret"
TOKEN, REGION, SERVICE = "toro-test-session-token", "us-east-1", "execute-api"
AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                     r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


def hm(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def expected_signature(method, path, headers, signed, body, date):
    canon_uri = urllib.parse.quote(path, safe="/~")  # encoded once more, as AWS does (not S3)
    canon_headers = "".join("%s:%s\n" % (h, " ".join(headers.get(h, "").split())) for h in signed)
    creq = "\n".join([method, canon_uri, "", canon_headers, ";".join(signed),
                      hashlib.sha256(body).hexdigest()])
    scope = "%s/%s/%s/aws4_request" % (date[:8], REGION, SERVICE)
    sts = "\n".join(["AWS4-HMAC-SHA256", date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = hm(hm(hm(hm(("AWS4" + SECRET).encode(), date[:8]), REGION), SERVICE), "aws4_request")
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def fault(handler, body):
    m = AUTH_RE.match(handler.headers.get("Authorization", ""))
    if not m:
        return "Authorization header shape"
    akid, day, region, service, signed, sig = m.groups()
    if (akid, region, service) != (ACCESS_KEY, REGION, SERVICE):
        return "credential scope %s/%s/%s" % (akid, region, service)
    signed = signed.split(";")
    for need in ("host", "x-amz-date", "x-amz-security-token"):
        if need not in signed:
            return "%s not signed" % need
    if handler.headers.get("x-amz-security-token") != TOKEN:
        return "session token not sent"
    date = handler.headers.get("x-amz-date", "")
    if not date.startswith(day):
        return "x-amz-date does not match the scope"
    headers = {k.lower(): v for k, v in handler.headers.items()}
    if sig != expected_signature("POST", handler.path, headers, signed, body, date):
        return "signature mismatch"
    return None


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        m = re.match(r"^/[^/]+/@connections/([^/?]+)$", self.path)
        why = fault(self, body) if m else "path %s" % self.path
        if why:
            return self.reply(403, why)
        conn = urllib.parse.unquote(m.group(1))
        if conn == "gone":
            return self.reply(410, '{"message":"GoneException"}')
        if conn == "busy":
            return self.reply(429, '{"message":"LimitExceededException"}')
        with open(sys.argv[2], "a") as log:
            log.write("%s\t%s\n" % (conn, body.decode()))
        return self.reply(200, "")

    def reply(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
