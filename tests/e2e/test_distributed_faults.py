"""Fault test of the distributed mode: while questions are posted to two
`toro api` instances, kill -9 a process worker, a notify worker and an api
instance, restart nats-server and restart PostgreSQL. Afterwards every
question accepted with 202 must be completed or error (none lost), none may
have been answered with two different answers, the outbox must drain, and
every process still running must be healthy. The counts are printed and
written to $TORO_BUILD_DIR/distributed_faults.json.

Bounded: 127.0.0.1 only, about 25 s of load at ~25 questions/s, 120 s to
settle. The services are this machine's; they are left running."""
import json
import os
import subprocess
import threading
import time

import requests
import websocket

from cluster import ROOT, cluster_factory  # noqa: F401 (fixture)
from conftest import auth, jwt_for

LOAD_SECONDS = 25
RATE = 25  # questions per second, all users together
USERS = ["carga%d" % i for i in range(6)]
QUESTIONS = ["Qual o limite de garantia do FGC?", "O que é o Tesouro Selic?", "Como funciona o come-cotas?",
             "O que é CDB?", "Qual o horário do pregão da B3?", "O que é uma receita de bolo?"]


def services(action):
    subprocess.run([os.path.join(ROOT, "scripts", "services.sh"), action], check=True, timeout=120)


class Listener(threading.Thread):
    """One WebSocket of a user on one api; records every question_update."""

    def __init__(self, api, user):
        super().__init__(daemon=True)
        self.ws = websocket.create_connection(api.ws_url("?access_token=" + jwt_for(user)), timeout=10)
        assert json.loads(self.ws.recv())["type"] == "registered"
        self.updates = []
        self.stopping = False

    def run(self):
        self.ws.settimeout(0.5)
        while not self.stopping:
            try:
                m = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:
                return  # socket closed
            if m.get("type") == "question_update":
                self.updates.append(m)


def test_no_question_lost_under_faults(cluster_factory):  # noqa: F811
    c = cluster_factory(n_api=2, n_process=2, n_notify=2, ack_wait_ms=2000)
    listeners = [Listener(c.apis[0], u) for u in USERS]
    for li in listeners:
        li.start()
    accepted = {}  # question_id -> (user, accepted at)
    rejected = {"503": 0, "refused": 0, "other": 0}
    stop = threading.Event()
    nats_window = {}

    def load():
        n = 0
        while not stop.is_set():
            user = USERS[n % len(USERS)]
            api = c.apis[n % 2]
            body = {"user_id": user, "question": "%s (#%d)" % (QUESTIONS[n % len(QUESTIONS)], n)}
            try:
                r = requests.post(api.url("/questions"), json=body, headers=auth(user), timeout=5)
                if r.status_code == 202:
                    accepted[r.json()["data"]["question_id"]] = (user, time.time())
                elif r.status_code == 503:
                    rejected["503"] += 1
                else:
                    rejected["other"] += 1
            except requests.RequestException:
                rejected["refused"] += 1
            n += 1
            time.sleep(1.0 / RATE)

    t = threading.Thread(target=load, daemon=True)
    t0 = time.time()
    t.start()
    events = []

    def at(sec, what, fn):
        delay = t0 + sec - time.time()
        if delay > 0:
            time.sleep(delay)
        fn()
        events.append((round(time.time() - t0, 1), what))

    at(2, "kill -9 process worker", lambda: c.processors[0].kill9())
    at(3, "kill -9 notify worker", lambda: c.notifiers[0].kill9())
    at(4, "kill -9 api instance", lambda: c.apis[1].kill9())
    at(6, "restart killed processes", lambda: [c.restart(p) for p in (c.processors[0], c.notifiers[0], c.apis[1])])

    def restart_nats():
        nats_window["before"] = len(accepted)
        services("restart-nats")
        nats_window["after"] = len(accepted)

    at(9, "restart nats-server", restart_nats)
    at(15, "restart PostgreSQL", lambda: services("restart-postgres"))
    at(LOAD_SECONDS, "load stopped", stop.set)
    t.join(timeout=30)

    # settle: every accepted question reaches a terminal status
    deadline = time.time() + 120
    statuses = {}
    while time.time() < deadline:
        try:
            rows = c.sql("SELECT question_id, status, attempts FROM questions").split()
        except RuntimeError:
            time.sleep(0.5)
            continue
        statuses = {r.split("|")[0]: (r.split("|")[1], int(r.split("|")[2])) for r in rows}
        open_ = [q for q in accepted if statuses.get(q, ("missing",))[0] not in ("completed", "error")]
        if not open_:
            break
        time.sleep(0.5)
    time.sleep(2)  # let the last notifications arrive
    for li in listeners:
        li.stopping = True
    for li in listeners:
        li.join(timeout=5)
        li.ws.close()

    lost = [q for q in accepted if q not in statuses]
    unfinished = [q for q in accepted if q in statuses and statuses[q][0] not in ("completed", "error")]
    completed = sum(1 for q in accepted if statuses.get(q, ("",))[0] == "completed")
    errored = sum(1 for q in accepted if statuses.get(q, ("",))[0] == "error")
    # "answered twice": two different completed answers pushed for one question
    answers, dup_notifications = {}, 0
    for li in listeners:
        seen = set()
        for m in li.updates:
            if m["status"] != "completed":
                continue
            answers.setdefault(m["question_id"], set()).add(m["answer"])
            if m["question_id"] in seen:
                dup_notifications += 1
            seen.add(m["question_id"])
    answered_twice = [q for q, a in answers.items() if len(a) > 1]
    discarded = sum(p.log().count("answer discarded") for p in c.processors)
    outbox = int(c.sql("SELECT count(*) FROM outbox"))
    healthy = [requests.get(a.url("/healthz"), timeout=5).status_code for a in c.apis]
    alive = [p.name for p in c.procs() if not p.alive()]
    report = {
        "accepted": len(accepted), "completed": completed, "error": errored, "lost": len(lost),
        "unfinished": len(unfinished), "answered_twice": len(answered_twice),
        "duplicate_notifications": dup_notifications, "redelivered_answers_discarded": discarded,
        "completed_notifications_seen": len(answers), "rejected": rejected,
        "accepted_while_nats_restarted": nats_window.get("after", 0) - nats_window.get("before", 0),
        "outbox_left": outbox, "events": events,
    }
    print("\nfault test:", json.dumps(report))
    out = os.environ.get("TORO_BUILD_DIR")
    if out and os.path.isdir(out):
        with open(os.path.join(out, "distributed_faults.json"), "w") as f:
            json.dump(report, f, indent=1)
    assert len(accepted) > 100, report
    assert not lost, ("lost", lost[:5], report)
    assert not unfinished, ("unfinished", [(q, statuses[q]) for q in unfinished[:5]], report)
    assert completed + errored == len(accepted)
    assert not answered_twice, report
    assert healthy == [200, 200], report
    assert not alive, ("processes died", alive, c.log())
    deadline = time.time() + 20
    while int(c.sql("SELECT count(*) FROM outbox")) != 0:
        assert time.time() < deadline, "outbox not drained"
        time.sleep(0.2)
