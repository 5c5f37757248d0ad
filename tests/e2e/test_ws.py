"""WebSocket contract: registration, every status change pushed to every
connection of the asker and to nobody else, dead connections removed."""
import json
import sqlite3
import time

import websocket

from conftest import jwt_for, post_question, recv_until, ws_connect


def test_updates_pushed_to_every_connection_of_the_user(server):
    a1 = ws_connect(server, "carla")
    a2 = ws_connect(server, "carla")
    other = ws_connect(server, "diego")
    qid = post_question(server, "carla", "Como funciona a isenção de R$ 20 mil em ações?").json()["data"]["question_id"]
    for ws in (a1, a2):
        got = recv_until(ws, lambda m: m.get("question_id") == qid and m["status"] == "completed")
        statuses = [m["status"] for m in got if m.get("question_id") == qid]
        # "processing" is pushed by the process stage before it answers (best-effort), "completed"
        # after the commit: in that order in every mode
        assert statuses == ["processing", "completed"], statuses
        done = got[-1]
        assert done["type"] == "question_update"
        assert done["question"] == "Como funciona a isenção de R$ 20 mil em ações?"
        assert done["answer"]
        assert done["sources"] and all(s["doc_id"] for s in done["sources"])
    other.settimeout(1.0)
    try:
        leaked = other.recv()
        raise AssertionError("diego received carla's update: %s" % leaked)
    except websocket.WebSocketTimeoutException:
        pass
    for ws in (a1, a2, other):
        ws.close()


def test_register_action_and_errors(server):
    ws = ws_connect(server)
    ws.send(json.dumps({"action": "ping"}))
    assert json.loads(ws.recv())["type"] == "pong"
    ws.send("not json")
    assert json.loads(ws.recv())["type"] == "error"
    ws.send(json.dumps({"action": "register", "user_id": "bad user!"}))
    assert json.loads(ws.recv())["type"] == "error"
    # without a token, or with another user's token, registration is refused
    ws.send(json.dumps({"action": "register", "user_id": "elisa"}))
    assert json.loads(ws.recv())["type"] == "error"
    ws.send(json.dumps({"action": "register", "user_id": "elisa", "token": jwt_for("mallory")}))
    assert "differs" in json.loads(ws.recv())["error"]
    ws.send(json.dumps({"action": "register", "user_id": "elisa", "token": jwt_for("elisa")}))
    reg = json.loads(ws.recv())
    assert reg["type"] == "registered" and reg["user_id"] == "elisa" and len(reg["connection_id"]) == 36
    ws.send(json.dumps({"action": "register", "token": jwt_for("other")}))
    assert json.loads(ws.recv())["type"] == "error"
    qid = post_question(server, "elisa", "O que é o Tesouro IPCA+?").json()["data"]["question_id"]
    recv_until(ws, lambda m: m.get("question_id") == qid and m["status"] == "completed")
    ws.close()


def connections_rows(server):
    db = sqlite3.connect("file:%s/toro.db?mode=ro" % server.data_dir, uri=True, timeout=10)
    try:
        return db.execute("SELECT connection_id, user_id FROM connections").fetchall()
    finally:
        db.close()


def test_closed_connections_are_removed(server):
    ws1 = ws_connect(server, "fabio")
    ws2 = ws_connect(server, "fabio")
    assert len([r for r in connections_rows(server) if r[1] == "fabio"]) == 2
    ws1.close()
    # an abrupt drop without a close frame
    ws2.sock.close()
    deadline = time.time() + 10
    while time.time() < deadline and [r for r in connections_rows(server) if r[1] == "fabio"]:
        time.sleep(0.05)
    assert [r for r in connections_rows(server) if r[1] == "fabio"] == []
    # and a question of fabio still completes with nobody to notify
    qid = post_question(server, "fabio", "O que é LCI?").json()["data"]["question_id"]
    from conftest import wait_terminal
    assert wait_terminal(server, qid)["status"] == "completed"


def test_bad_upgrade_is_rejected(server):
    import requests
    r = requests.get(server.url("/ws"), timeout=5)
    assert r.status_code == 400
    assert r.json()["success"] is False
    try:
        websocket.create_connection(server.ws_url("?user_id=a%20b"), timeout=5)
        raise AssertionError("invalid user_id accepted")
    except websocket.WebSocketBadStatusException as e:
        assert e.status_code == 400
    for query, status in (("?user_id=ana", 401), ("?access_token=garbage", 401),
                          ("?user_id=ana&access_token=" + jwt_for("bob"), 403)):
        try:
            websocket.create_connection(server.ws_url(query), timeout=5)
            raise AssertionError("accepted " + query)
        except websocket.WebSocketBadStatusException as e:
            assert e.status_code == status, (query, e.status_code)
