"""Crash test: questions keep arriving while the server is killed with
SIGKILL several times and restarted on the same data directory. At the end
every question that got 202 is completed or error, none is lost, and no
question was answered twice (one completed transition, one answer). Also:
a burst of concurrent POSTs (group commits of many questions) killed right
after its 202s loses nothing, and the answering threads run niced."""
import json
import os
import random
import threading
import time

import requests
import websocket

from conftest import Server, auth, jwt_for, wait_terminal

USERS = ["u%d" % i for i in range(4)]
QUESTIONS = [
    "Qual o limite do FGC?", "Como funciona o Tesouro Selic?", "O que é come-cotas?",
    "Quanto rende a poupança?", "Qual a alíquota de IR para 200 dias?", "O que é PGBL?",
    "How are Brazilian stocks taxed?", "Qual o horário do pregão?", "O que é uma debênture incentivada?",
]


class Loader(threading.Thread):
    """Posts questions until stopped; keeps the ids that got 202."""

    def __init__(self, holder, stop):
        super().__init__(daemon=True)
        self.holder, self.stop_evt = holder, stop
        self.accepted = []
        self.owner = {}
        self.failed = 0

    def run(self):
        sess = requests.Session()
        i = 0
        while not self.stop_evt.is_set():
            port = self.holder["port"]
            user = random.choice(USERS)
            text = "%s (#%d)" % (random.choice(QUESTIONS), i)
            i += 1
            try:
                r = sess.post("http://127.0.0.1:%d/questions" % port, json={"question": text}, headers=auth(user),
                              timeout=5)
                if r.status_code == 202:
                    self.accepted.append(r.json()["data"]["question_id"])
                    self.owner[r.json()["data"]["question_id"]] = user
                else:
                    self.failed += 1
            except requests.RequestException:
                self.failed += 1
                sess = requests.Session()
                time.sleep(0.02)


class Listener(threading.Thread):
    """Holds a WebSocket per user across restarts and records every completed
    update: a question answered twice would show two different answers."""

    def __init__(self, holder, stop):
        super().__init__(daemon=True)
        self.holder, self.stop_evt = holder, stop
        self.completed = {}
        self.lock = threading.Lock()

    def run(self):
        while not self.stop_evt.is_set():
            try:
                ws = websocket.create_connection("ws://127.0.0.1:%d/ws?access_token=%s"
                                                 % (self.holder["port"], jwt_for(self.user)), timeout=1)
            except Exception:
                time.sleep(0.05)
                continue
            try:
                while not self.stop_evt.is_set():
                    try:
                        m = json.loads(ws.recv())
                    except websocket.WebSocketTimeoutException:
                        continue
                    if m.get("type") == "question_update" and m["status"] == "completed":
                        with self.lock:
                            self.completed.setdefault(m["question_id"], set()).add((m["answer"], m["processed_at"]))
            except Exception:
                pass
            finally:
                try:
                    ws.close()
                except Exception:
                    pass


def test_sigkill_during_load_loses_nothing(kb_file, tmp_path):
    random.seed(7)
    data = str(tmp_path / "crash-data")
    server = Server(data, kb_file, ["--process-workers", "2", "--rate-limit", "0"]).start()
    holder = {"port": server.port}
    stop = threading.Event()
    loaders = [Loader(holder, stop) for _ in range(4)]
    listeners = []
    for u in USERS:
        l = Listener(holder, stop)
        l.user = u
        listeners.append(l)
    for t in loaders + listeners:
        t.start()
    kills = 0
    try:
        for _ in range(4):
            time.sleep(random.uniform(1.0, 2.0))
            server.kill9()
            kills += 1
            server = Server(data, kb_file, ["--process-workers", "2", "--rate-limit", "0"]).start(port=holder["port"])
            holder["port"] = server.port
        time.sleep(1.0)
    finally:
        stop.set()
        for t in loaders:
            t.join(10)
    accepted = [qid for l in loaders for qid in l.accepted]
    assert kills == 4
    assert len(accepted) > 50, "load too small to mean anything: %d" % len(accepted)
    assert len(set(accepted)) == len(accepted)
    for l in loaders:
        server.owner.update(l.owner)
    statuses = {}
    final = {}
    for qid in accepted:
        q = wait_terminal(server, qid, timeout=120)
        final[qid] = (q["answer"], q["processed_at"])
        statuses[q["status"]] = statuses.get(q["status"], 0) + 1
        assert q["status"] in ("completed", "error")
        if q["status"] == "completed":
            assert q["answer"]
    for l in listeners:
        l.join(10)
    for l in listeners:
        for qid, answers in l.completed.items():
            if qid not in final:
                continue  # accepted while its 202 was lost to a kill: not in our list
            # one completion: every update carries the stored answer and completion time
            assert answers == {final[qid]}, "question %s answered twice: %r vs %r" % (qid, answers, final[qid])
    # history agrees with what was accepted: every id is listed exactly once
    listed = []
    for u in USERS:
        token = None
        while True:
            params = {"user_id": u, "limit": 100}
            if token:
                params["next_token"] = token
            d = requests.get(server.url("/questions"), params=params, headers=auth(u), timeout=10).json()["data"]
            listed += [it["question_id"] for it in d["items"]]
            token = d["next_token"]
            if not token:
                break
    assert len(listed) == len(set(listed))
    assert set(accepted) <= set(listed)
    print("crash test: %d accepted, %s, %d kills, %d requests failed while down"
          % (len(accepted), statuses, kills, sum(l.failed for l in loaders)))
    assert server.stop() == 0


def assert_stored(server, accepted):
    """Every (user, question_id, text) accepted with a 202 is stored, for its own user."""
    sess = requests.Session()
    for user, qid, text in accepted:
        r = sess.get(server.url("/questions/" + qid), headers=auth(user), timeout=10)
        assert r.status_code == 200, (qid, r.status_code)
        d = r.json()["data"]
        assert (d["user_id"], d["question"]) == (user, text)

def test_concurrent_burst_all_durable_after_sigkill(kb_file, tmp_path):
    """Many keep-alive sockets POST at once, so the gateway commits many
    questions per event-loop round (group commit) while the workers answer
    and checkpoint the WAL; the server is killed with SIGKILL right after the
    last 202. After a restart every accepted question is there with its own
    text and user, and every one of them is answered."""
    data = str(tmp_path / "burst-data")
    server = Server(data, kb_file, ["--process-workers", "2"]).start()
    users = ["burst%d" % i for i in range(32)]
    results, errors = {}, []

    def post_many(user):
        sess = requests.Session()
        headers = auth(user)
        out = []
        try:
            for i in range(25):
                text = "Pergunta %d de %s sobre o Tesouro Selic?" % (i, user)
                r = sess.post(server.url("/questions"), json={"question": text}, headers=headers, timeout=30)
                if r.status_code != 202:
                    errors.append((r.status_code, r.text))
                    continue
                out.append((r.json()["data"]["question_id"], text))
        except requests.RequestException as e:
            errors.append(repr(e))
        results[user] = out

    threads = [threading.Thread(target=post_many, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    server.kill9()  # right after the last 202: what was acknowledged must be on disk
    assert not errors, errors[:5]
    accepted = [(u, qid, text) for u, items in results.items() for qid, text in items]
    assert len(accepted) == 32 * 25
    assert len({qid for _, qid, _ in accepted}) == len(accepted)
    server = Server(data, kb_file, ["--process-workers", "2"]).start()
    try:
        assert_stored(server, accepted)
        for user, qid, _ in accepted:
            assert wait_terminal(server, qid, timeout=120, user=user)["status"] in ("completed", "error")
    finally:
        assert server.stop() == 0



def test_sigterm_during_burst_commits_and_exits_cleanly(kb_file, tmp_path):
    """SIGTERM arrives while many sockets are POSTing: the questions the
    gateway has validated but not yet committed are committed and answered
    202 during shutdown (after the workers have stopped, before the bus and
    the store close), the process exits 0, and after a restart every question
    that got a 202 is there."""
    data = str(tmp_path / "term-data")
    server = Server(data, kb_file, ["--process-workers", "1"]).start()
    accepted, done = [], threading.Event()

    def post_until_stopped(user):
        sess = requests.Session()
        headers = auth(user)
        i = 0
        while not done.is_set():
            text = "Pergunta %d de %s sobre CDB?" % (i, user)
            i += 1
            try:
                r = sess.post(server.url("/questions"), json={"question": text}, headers=headers, timeout=10)
            except requests.RequestException:
                return  # the server has gone
            if r.status_code == 202:
                accepted.append((user, r.json()["data"]["question_id"], text))

    threads = [threading.Thread(target=post_until_stopped, args=("term%d" % i,)) for i in range(24)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    rc = server.stop()
    done.set()
    for t in threads:
        t.join(30)
    assert rc == 0
    assert len(accepted) > 50
    server = Server(data, kb_file, ["--process-workers", "1"]).start()
    try:
        assert_stored(server, accepted)
    finally:
        assert server.stop() == 0

def thread_nices(pid):
    """The nice value of each thread of pid (Linux: nice is per thread)."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out.append(int(fields[16]))  # field 19 of stat(5); fields[0] is field 3
    return sorted(out)


def test_serve_process_workers_yield_cpu_to_the_gateway(kb_file, tmp_path):
    """The process stage threads of `toro serve` run at a lower priority (nice
    +10 by default, --worker-nice N), the gateway's loop and the notify
    worker at the process's own; --worker-nice 0 leaves them all equal."""
    server = Server(str(tmp_path / "nice-default"), kb_file, ["--process-workers", "3"]).start()
    try:
        nices = thread_nices(server.proc.pid)
        base = min(nices)  # the test runner may itself run niced
        assert nices.count(min(base + 10, 19)) == 3 and nices.count(base) == len(nices) - 3, nices
    finally:
        assert server.stop() == 0
    server = Server(str(tmp_path / "nice-0"), kb_file, ["--process-workers", "2", "--worker-nice", "0"]).start()
    try:
        assert len(set(thread_nices(server.proc.pid))) == 1
    finally:
        assert server.stop() == 0
