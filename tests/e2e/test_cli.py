"""The command line as a newcomer meets it: every command and subcommand
answers --help and -h with its usage on stdout (exit 0); every wrong or
missing argument is named on stderr (exit 2); failures say things once and
name paths with the reason; the development-login warning appears only when
the server really serves; `kb info` prints what the snapshot holds."""
import json
import os
import socket
import subprocess

import pytest

from conftest import BIN, ROOT

HELP = [
    [], ["serve"], ["api"], ["worker"], ["worker", "process"], ["worker", "notify"], ["db"], ["db", "migrate"],
    ["kb"], ["kb", "build"], ["kb", "search"], ["kb", "eval"], ["kb", "info"], ["kb", "verify"], ["kb", "embed"], ["ask"],
]


def toro(*args, env=None, timeout=30):
    e = dict(os.environ)
    for k in ("TORO_KB", "TORO_STORE", "TORO_PORT", "TORO_LOG_LEVEL", "TORO_DATA"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=timeout, env=e)


@pytest.mark.parametrize("words", HELP, ids=lambda w: " ".join(w) or "toro")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_on_stdout(words, flag):
    r = toro(*words, flag)
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout.lower() and r.stderr == ""
    # the usage is this command's own: it names the command words
    own = ["toro"] + (words[:1] if words[:1] == ["worker"] else words)
    assert " ".join(own) in r.stdout


def test_toplevel_help_lists_every_command():
    out = toro("--help").stdout
    for words in ("toro serve", "toro api", "toro worker", "toro db migrate", "toro kb build", "toro kb search",
                  "toro kb eval", "toro kb info", "toro ask", "toro version"):
        assert words in out


@pytest.fixture
def kb(kb_file):
    return kb_file


# (arguments, text the message must contain); {kb} is a real snapshot
WRONG = [
    ([], "missing command"),
    (["bogus"], "'bogus'"),
    (["serve", "--kb"], "--kb needs a value"),
    (["serve", "--kb", "{kb}", "--sync", "fast"], "--sync must be one of normal|full"),
    (["serve", "--kb", "{kb}", "--process-workers", "0"], "--process-workers needs an integer from 1 to 64"),
    (["serve", "--kb", "{kb}", "--port", "70000"], "--port"),
    (["serve", "--kb", "{kb}", "--log-level", "loud"], "--log-level"),
    (["serve", "--kb", "{kb}", "--bogus"], "'--bogus'"),
    (["serve", "--kb", "{kb}", "stray"], "'stray'"),
    (["serve"], "missing --kb FILE"),
    (["api", "--store"], "--store needs a value"),
    (["api", "--store", "http://x"], "--store"),
    (["api", "--bogus"], "'--bogus'"),
    (["worker"], "missing stage"),
    (["worker", "bogus"], "'bogus'"),
    (["worker", "process", "--store", "postgres://127.0.0.1:1/x"], "missing --kb FILE"),
    (["worker", "notify", "--concurrency"], "--concurrency needs a value"),
    (["worker", "notify", "--concurrency", "x"], "--concurrency needs an integer"),
    (["worker", "notify", "--health-port", "-1"], "--health-port needs an integer"),
    (["db"], "missing subcommand"),
    (["db", "bogus"], "'bogus'"),
    (["db", "migrate"], "missing --store"),
    (["db", "migrate", "--store"], "--store needs a value"),
    (["db", "migrate", "--store", "mysql://x"], "--store must be a postgres:// URL"),
    (["kb"], "missing subcommand"),
    (["kb", "bogus"], "'bogus'"),
    (["kb", "build"], "missing SRC_DIR"),
    (["kb", "build", "kb/docs"], "missing -o FILE"),
    (["kb", "build", "kb/docs", "-o"], "-o needs a value"),
    (["kb", "build", "kb/docs", "-o", "x.toro", "--max-chars", "5"], "--max-chars needs an integer from 100"),
    (["kb", "build", "kb/docs", "-o", "x.toro", "--max-chars", "200", "--overlap", "300"], "--overlap"),
    (["kb", "build", "kb/docs", "more", "-o", "x.toro"], "'more'"),
    (["kb", "search"], "missing FILE"),
    (["kb", "search", "{kb}"], "missing the query"),
    (["kb", "search", "{kb}", "q", "-k", "0"], "-k needs an integer from 1 to 10000"),
    (["kb", "search", "{kb}", "q", "--bogus"], "'--bogus'"),
    (["kb", "eval"], "missing FILE"),
    (["kb", "eval", "{kb}"], "missing QUESTIONS"),
    (["kb", "eval", "--beir"], "--beir needs a value"),
    (["kb", "eval", "{kb}", "q.jsonl", "--keep", "x"], "--keep goes with --beir"),
    (["kb", "info"], "missing FILE"),
    (["kb", "info", "{kb}", "other"], "'other'"),
    (["kb", "verify"], "missing FILE"),
    (["kb", "verify", "{kb}", "other"], "'other'"),
    (["ask"], "missing --kb FILE"),
    (["ask", "--kb"], "--kb needs a value"),
    (["ask", "--kb", "--json", "q"], "--kb needs a value"),
    (["ask", "--kb", "{kb}"], "missing the question"),
    (["ask", "--kb", "{kb}", "   "], "the question must be"),
    (["ask", "--kb", "{kb}", "q", "--bogus"], "'--bogus'"),
]


@pytest.mark.parametrize("args,needle", WRONG, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_wrong_invocation_names_the_argument(kb, args, needle):
    r = toro(*[a.replace("{kb}", kb) for a in args])
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert needle in r.stderr, r.stderr
    assert r.stdout == ""
    assert "DEVELOPMENT LOGIN" not in r.stderr


def test_missing_knowledge_base_said_once_and_no_dev_login_warning(tmp_path):
    r = toro("serve", "--port", "0", "--data", str(tmp_path / "d"), "--kb", "missing.toro")
    assert r.returncode == 1
    assert r.stderr.count("missing.toro") == 1, r.stderr
    assert "no such file" in r.stderr
    assert "DEVELOPMENT LOGIN" not in r.stderr


def test_port_in_use_fails_without_dev_login_warning(kb, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        r = toro("serve", "--port", str(s.getsockname()[1]), "--data", str(tmp_path / "d"), "--kb", kb)
    finally:
        s.close()
    assert r.returncode == 1
    assert "DEVELOPMENT LOGIN" not in r.stderr
    assert "listening on" not in r.stdout


def test_data_path_that_is_a_file(kb, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r = toro("serve", "--port", "0", "--data", str(f), "--kb", kb)
    assert r.returncode == 1
    assert "%s is not a directory" % f in r.stderr


def test_kb_build_names_missing_directories(tmp_path):
    r = toro("kb", "build", os.path.join(ROOT, "kb", "docs"), "-o", str(tmp_path / "nodir" / "kb.toro"))
    assert r.returncode == 1
    assert "directory %s does not exist" % (tmp_path / "nodir") in r.stderr, r.stderr
    r = toro("kb", "build", str(tmp_path / "nosrc"), "-o", str(tmp_path / "kb.toro"))
    assert r.returncode == 1
    assert "directory %s does not exist" % (tmp_path / "nosrc") in r.stderr, r.stderr


def test_kb_info_prints_what_the_snapshot_holds(kb):
    r = toro("kb", "info", kb, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    meta = info["meta"]
    assert info["bytes"] == os.path.getsize(kb)
    assert int(meta["n_docs"]) == sum(info["documents_by_language"].values()) > 0
    assert int(meta["n_chunks"]) >= int(meta["n_docs"])
    assert set(info["documents_by_language"]) <= {"pt", "en"}
    text = toro("kb", "info", kb).stdout
    for word in ("version", meta["version"], "documents", "chunks", "languages", "built", "size"):
        assert word in text
    missing = toro("kb", "info", "missing.toro")
    assert missing.returncode == 1 and missing.stderr.count("missing.toro") == 1
