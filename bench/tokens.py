"""HS256 bearer tokens for bench users, signed with TORO_JWT_SECRET (the
secret the benchmarked toro is started with, which puts it in jwt mode; issuer
toro-bench, as jwt mode refuses the development issuer toro-dev).
usage: tokens.py N [PREFIX]  -> N comma-separated tokens for PREFIX0..PREFIX{N-1}"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time


def _b64(d):
    return base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def jwt_for(user, secret=None, ttl=7200):
    secret = secret or os.environ["TORO_JWT_SECRET"]
    now = int(time.time())
    h = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = _b64(json.dumps({"sub": user, "iss": "toro-bench", "iat": now, "exp": now + ttl}).encode())
    sig = hmac.new(secret.encode(), ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (h, p, _b64(sig))


if __name__ == "__main__":
    n = int(sys.argv[1])
    prefix = sys.argv[2] if len(sys.argv) > 2 else "bench"
    print(",".join(jwt_for("%s%d" % (prefix, i)) for i in range(n)))
