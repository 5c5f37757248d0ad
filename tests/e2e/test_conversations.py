"""Conversations through the real binary: POST /questions with and without
conversation_id, the follow-up rewrite recorded in the answer, isolation
between users, GET /conversations and GET /conversations/{id} with
pagination, the column added to a data file made before conversations, and
the distributed mode (PostgreSQL store, follow-up on another API node)."""
import json
import os
import sqlite3
import subprocess
import time

import requests

from cluster import cluster_factory  # noqa: F401 (fixture)
from conftest import auth, wait_terminal
from test_providers import chat_reply, openai_env, provider, start  # noqa: F401 (fixture)


NONE = object()


def ask(server, user, question, conversation_id=NONE):
    body = {"question": question}
    if conversation_id is not NONE:
        body["conversation_id"] = conversation_id
    r = requests.post(server.url("/questions"), json=body, headers=auth(user), timeout=10)
    if r.status_code == 202:
        server.owner[r.json()["data"]["question_id"]] = user
    return r


def ask_ok(server, user, question, conversation_id=NONE):
    r = ask(server, user, question, conversation_id)
    assert r.status_code == 202, r.text
    return r.json()["data"]


def test_first_question_starts_a_conversation_and_a_follow_up_is_rewritten(server):
    first = ask_ok(server, "ana", "Quanto rende o CDB?")
    cid = first["conversation_id"]
    assert len(cid) == 36
    q1 = wait_terminal(server, first["question_id"])
    assert q1["conversation_id"] == cid
    assert q1["retrieval_query"] is None  # a first question is asked as written

    follow = ask_ok(server, "ana", "E a LCA?", cid)
    assert follow["conversation_id"] == cid
    q2 = wait_terminal(server, follow["question_id"])
    assert q2["status"] == "completed", q2
    assert q2["conversation_id"] == cid
    rq = q2["retrieval_query"]
    assert rq and "LCA" in rq and "rende" in rq.lower() and "CDB" not in rq, rq
    assert q2["found_relevant_docs"] is True
    assert q2["sources"], q2
    assert any("lca" in (s["doc_id"] + " " + s["title"] + " " + s["snippet"]).lower() for s in q2["sources"]), \
        q2["sources"]
    assert "LCA" in q2["answer"], q2["answer"]

    # the same follow-up outside the conversation stands alone: no rewrite
    alone = wait_terminal(server, ask_ok(server, "ana", "E a LCA?")["question_id"])
    assert alone["retrieval_query"] is None
    assert alone["conversation_id"] != cid


def test_a_predicate_follow_up_carries_the_previous_subject(server):
    first = ask_ok(server, "bia", "O que é LCI?")
    wait_terminal(server, first["question_id"])
    q = wait_terminal(server, ask_ok(server, "bia", "e quanto rende?", first["conversation_id"])["question_id"])
    assert q["retrieval_query"] and "LCI" in q["retrieval_query"], q
    assert q["found_relevant_docs"] is True


def test_conversation_ids_are_validated_and_owned(server):
    theirs = ask_ok(server, "ana", "Quanto rende o CDB?")["conversation_id"]
    # another user's conversation is not found, exactly like an unknown one
    r = ask(server, "eve", "E a LCA?", theirs)
    assert r.status_code == 404, r.text
    assert r.json()["code"] == "not_found"
    unknown = ask(server, "eve", "E a LCA?", "00000000-0000-4000-8000-000000000000")
    assert unknown.status_code == 404
    assert unknown.json() == r.json()
    for bad in ("nope", 42, None, "", "0" * 36):
        r = ask(server, "eve", "Quanto rende o CDB?", bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["code"] == "invalid_conversation_id", r.text
    g = requests.get(server.url("/conversations/" + theirs), headers=auth("eve"), timeout=5)
    assert g.status_code == 404
    g = requests.get(server.url("/conversations/" + theirs), headers=auth("ana"), timeout=5)
    assert g.status_code == 200
    lst = requests.get(server.url("/conversations"), headers=auth("eve"), timeout=5)
    assert lst.status_code == 200 and lst.json()["data"]["items"] == []
    r = requests.get(server.url("/conversations?user_id=ana"), headers=auth("eve"), timeout=5)
    assert r.status_code == 403


def test_listing_and_pagination(server):
    user = "carla"
    convs = []
    for i in range(3):
        d = ask_ok(server, user, "Quanto rende o CDB? (%d)" % i)
        convs.append(d["conversation_id"])
        time.sleep(0.01)
    # the first conversation gets two more turns: it becomes the most recent
    last = None
    for text in ("E a LCA?", "e quanto rende a poupança?"):
        last = ask_ok(server, user, text, convs[0])["question_id"]
        time.sleep(0.01)
    wait_terminal(server, last)

    r = requests.get(server.url("/conversations?limit=2"), headers=auth(user), timeout=5)
    assert r.status_code == 200, r.text
    page = r.json()["data"]
    ids = [c["conversation_id"] for c in page["items"]]
    assert ids == [convs[0], convs[2]], page
    top = page["items"][0]
    assert top["title"] == "Quanto rende o CDB? (0)"
    assert top["question_count"] == 3
    assert top["last_activity_at"] >= top["created_at"]
    assert page["next_token"]
    r = requests.get(server.url("/conversations?limit=2&next_token=" + page["next_token"]), headers=auth(user),
                     timeout=5)
    page2 = r.json()["data"]
    assert [c["conversation_id"] for c in page2["items"]] == [convs[1]]
    assert page2["next_token"] is None
    bad = requests.get(server.url("/conversations?next_token=garbage"), headers=auth(user), timeout=5)
    assert bad.status_code == 400

    # one conversation's questions, oldest first, paginated
    r = requests.get(server.url("/conversations/%s?limit=2" % convs[0]), headers=auth(user), timeout=5)
    body = r.json()["data"]
    assert body["conversation_id"] == convs[0]
    assert [q["question"] for q in body["items"]] == ["Quanto rende o CDB? (0)", "E a LCA?"]
    assert body["items"][0]["answer"]
    r = requests.get(server.url("/conversations/%s?limit=2&next_token=%s" % (convs[0], body["next_token"])),
                     headers=auth(user), timeout=5)
    rest = r.json()["data"]
    assert [q["question"] for q in rest["items"]] == ["e quanto rende a poupança?"]
    assert rest["next_token"] is None
    # the history keeps working and carries conversation_id
    h = requests.get(server.url("/questions?limit=100"), headers=auth(user), timeout=5).json()["data"]["items"]
    assert len(h) == 5 and {q["conversation_id"] for q in h} == set(convs)
    r = requests.post(server.url("/conversations"), headers=auth(user), timeout=5)
    assert r.status_code == 405


def test_a_data_file_from_before_conversations_keeps_opening(server_factory, tmp_path):
    data = tmp_path / "old"
    data.mkdir()
    db = sqlite3.connect(str(data / "toro.db"))
    db.executescript(
        "CREATE TABLE questions(user_id TEXT NOT NULL, question_id TEXT NOT NULL, question TEXT NOT NULL,"
        " status TEXT NOT NULL, answer TEXT, sources TEXT, found_relevant_docs INTEGER, model TEXT, kb_version TEXT,"
        " error_message TEXT, attempts INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
        " updated_at INTEGER NOT NULL, processing_started_at INTEGER, processed_at INTEGER,"
        " PRIMARY KEY (user_id, question_id)) WITHOUT ROWID;"
        "INSERT INTO questions VALUES('ana','11111111-1111-4111-8111-111111111111','Antiga?','completed','ok','[]',"
        "1,'extractive','v',NULL,1,1000,1000,1000,1000);")
    db.commit()
    db.close()
    server = server_factory(data_dir=str(data))
    h = requests.get(server.url("/questions"), headers=auth("ana"), timeout=5).json()["data"]["items"]
    assert [q["question"] for q in h] == ["Antiga?"] and h[0]["conversation_id"] is None
    assert requests.get(server.url("/conversations"), headers=auth("ana"), timeout=5).json()["data"]["items"] == []
    # the counts per status start from the old file's rows, then follow every change
    assert 'toro_questions{status="completed"} 1\n' in requests.get(server.url("/metrics"), timeout=5).text
    d = ask_ok(server, "ana", "Quanto rende o CDB?")
    assert wait_terminal(server, d["question_id"])["conversation_id"] == d["conversation_id"]
    m = requests.get(server.url("/metrics"), timeout=5).text
    assert 'toro_questions{status="completed"} 2\n' in m and 'toro_questions{status="pending"} 0\n' in m


def test_distributed_follow_up_on_another_api_node(cluster_factory):  # noqa: F811
    c = cluster_factory(n_api=2)
    a, b = c.apis
    first = ask_ok(a, "dora", "Quanto rende o CDB?")
    wait_terminal(a, first["question_id"])
    follow = ask_ok(b, "dora", "E a LCA?", first["conversation_id"])
    assert follow["conversation_id"] == first["conversation_id"]
    q = wait_terminal(b, follow["question_id"])
    assert q["retrieval_query"] and "LCA" in q["retrieval_query"] and "CDB" not in q["retrieval_query"], q
    assert any("lca" in (s["doc_id"] + " " + s["title"]).lower() for s in q["sources"]), q["sources"]
    r = ask(b, "eve", "E a LCA?", first["conversation_id"])
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    lst = requests.get(a.url("/conversations"), headers=auth("dora"), timeout=5).json()["data"]["items"]
    assert [(x["conversation_id"], x["question_count"], x["title"]) for x in lst] == \
        [(first["conversation_id"], 2, "Quanto rende o CDB?")]
    turns = requests.get(b.url("/conversations/" + first["conversation_id"]), headers=auth("dora"),
                         timeout=5).json()["data"]["items"]
    assert [t["question"] for t in turns] == ["Quanto rende o CDB?", "E a LCA?"]


def test_web_ui_groups_questions_by_conversation(server_factory):
    from test_browser import ARTIFACTS, BROWSER_DIR, CHROMIUM, require_tools
    node = require_tools()
    server = server_factory(extra_args=["--auth", "dev"])
    os.makedirs(ARTIFACTS, exist_ok=True)
    proc = subprocess.run([node, os.path.join(BROWSER_DIR, "conv.test.mjs"), server.url(""), ARTIFACTS],
                          cwd=BROWSER_DIR, env=dict(os.environ, CHROMIUM_PATH=CHROMIUM), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=180)
    out = proc.stdout.decode("utf-8", "replace")
    print(out)
    assert proc.returncode == 0, "browser test failed (exit %d):\n%s\n--- server log ---\n%s" % (
        proc.returncode, out, server.log()[-3000:])


def test_a_model_answerer_reads_the_earlier_turns(server_factory, provider):  # noqa: F811
    provider.script = [chat_reply("O CDB rende um percentual do CDI [1]."),
                       chat_reply("A LCA rende um percentual do CDI, isenta de IR [1].")]
    s = start(server_factory, "openai", **openai_env(provider))
    first = ask_ok(s, "pia", "Quanto rende o CDB?")
    wait_terminal(s, first["question_id"], timeout=60)
    q = wait_terminal(s, ask_ok(s, "pia", "E a LCA?", first["conversation_id"])["question_id"], timeout=60)
    assert q["status"] == "completed", q
    assert q["retrieval_query"] == "Quanto rende o LCA?"
    assert len(provider.requests) == 2
    prompts = [json.loads(r["body"])["messages"][-1]["content"] for r in provider.requests]
    assert "Conversa anterior" not in prompts[0]
    turns = prompts[1][prompts[1].index("Conversa anterior"):]
    assert "Usuário: Quanto rende o CDB?\nAssistente: O CDB rende um percentual do CDI [1].\n" in turns
    assert "Pergunta como o usuário a escreveu: E a LCA?" in turns
    assert prompts[1].rstrip().endswith("Pergunta: Quanto rende o LCA?")
    assert "LCI e LCA" in prompts[1]  # passages retrieved with the standalone query
