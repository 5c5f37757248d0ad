"""The web UI's wording and states in headless Chromium (tests/browser/
ux.test.mjs) against a `toro serve --rate-limit 3`: the first question after
login and history is accepted, validation clears as the user types, API
errors are shown in Portuguese from their code, empty and failed history are
distinct, notifications never cover an answer."""
import os
import subprocess

from test_browser import ARTIFACTS, BROWSER_DIR, CHROMIUM, require_tools


def test_web_ui_wording_and_states(server_factory):
    node = require_tools()
    server = server_factory(["--auth", "dev", "--rate-limit", "3", "--read-rate-limit", "600"])
    os.makedirs(ARTIFACTS, exist_ok=True)
    env = dict(os.environ, CHROMIUM_PATH=CHROMIUM)
    try:
        proc = subprocess.run([node, os.path.join(BROWSER_DIR, "ux.test.mjs"), server.url(""), ARTIFACTS],
                              cwd=BROWSER_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=200)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        raise AssertionError("browser test did not finish within 200 s\n%s\n--- server log ---\n%s"
                             % (out, server.log()))
    out = proc.stdout.decode("utf-8", "replace")
    print(out)
    assert proc.returncode == 0, "browser test failed (exit %d):\n%s\n--- server log ---\n%s" % (
        proc.returncode, out, server.log()[-3000:])
