"""The web UI end to end: headless Chromium (driven by playwright-core from
tests/browser) against a real `toro serve`. Logs in, asks, watches the answer
arrive live, checks XSS attempts stay inert, reconnects, and saves a
screenshot to tests/artifacts/ui.png.

Chromium, Node.js and tests/browser/node_modules are installed by
scripts/test.sh; if any is missing this test fails (it is never skipped)."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
ARTIFACTS = os.environ.get("TORO_ARTIFACTS_DIR", os.path.join(ROOT, "tests", "artifacts"))
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def require_tools():
    missing = []
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append("Chromium at %s (apt-get install chromium chromium-driver)" % CHROMIUM)
    node = shutil.which("node")
    if not node:
        missing.append("node (apt-get install nodejs npm)")
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        missing.append("tests/browser/node_modules (run: cd tests/browser && npm ci)")
    if missing:
        pytest.fail("browser test prerequisites missing — scripts/test.sh installs them: " + "; ".join(missing),
                    pytrace=False)
    return node


def test_web_ui_in_headless_chromium(server_factory):
    node = require_tools()
    server = server_factory(extra_args=["--auth", "dev"])  # the page's simulated login
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "ui.png")
    if os.path.exists(shot):
        os.remove(shot)
    env = dict(os.environ, CHROMIUM_PATH=CHROMIUM)
    try:
        proc = subprocess.run([node, os.path.join(BROWSER_DIR, "ui.test.mjs"), server.url(""), ARTIFACTS],
                              cwd=BROWSER_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=240)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        raise AssertionError("browser test did not finish within 240 s\n%s\n--- server log ---\n%s"
                             % (out, server.log()))
    out = proc.stdout.decode("utf-8", "replace")
    print(out)
    assert proc.returncode == 0, "browser test failed (exit %d):\n%s\n--- server log ---\n%s" % (
        proc.returncode, out, server.log())
    assert os.path.isfile(shot) and os.path.getsize(shot) > 0, "screenshot %s was not written" % shot


def test_web_ui_with_issued_tokens(server_factory):
    """--auth jwt: the page asks for the token and uses it (no development login)."""
    from conftest import jwt_for
    node = require_tools()
    s = server_factory(extra_args=["--auth", "jwt"])
    env = dict(os.environ, CHROMIUM_PATH=CHROMIUM)
    proc = subprocess.run([node, os.path.join(BROWSER_DIR, "jwt.test.mjs"), s.url(""), "jaqueline",
                           jwt_for("jaqueline"), jwt_for("someone-else")],
                          cwd=BROWSER_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180)
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, "jwt browser test failed (exit %d):\n%s\n--- server log ---\n%s" % (
        proc.returncode, out, s.log())
