"""Cost of the distributed mode per question (issue 15), driven by
bench/dist_cost.sh. In one run:

1. embedded (`toro serve`: SQLite + local bus, 2 process + 2 notify threads)
   and distributed (`toro api` + 2 `toro worker process` + 2 `toro worker
   notify` processes, --concurrency 1 each, on PostgreSQL + NATS JetStream)
   get the same ladder of offered loads (open loop, bench/e2e_latency.py:
   latency from the scheduled send time to the `completed` update on the
   asker's WebSocket). Per step: throughput, p50/p99/p99.9, and the CPU
   seconds per 1,000 completed questions of every process involved, from
   /proc/PID/stat (utime+stime) before and after the step; the load
   generator's own CPU (getrusage of the child) separately.
2. The issue's ratios, distributed (2 per stage) / embedded: throughput held
   at p99 <= 100 ms, and CPU per question.
3. Scaling: the answerer slowed by TORO_FAULT_ANSWERER=delay:MS:* (a slow
   provider), 1 -> 2 -> 4 process workers (--concurrency 1) with 2 notify
   workers; a burst offered faster than 4 workers can serve; the service
   rate (completions per second between first and last update) and its
   ratio to one worker.

What is counted for the distributed mode: the toro processes; the PostgreSQL
backends of the bench database (pg_stat_activity.datname = it: client
backends and any autovacuum worker there); nats-server as a whole process.
nats-server and the PostgreSQL auxiliary processes (postmaster, walwriter,
checkpointer, background writer, autovacuum launcher, ...) are shared with
every other user of this machine: nats-server is included in the total (an
upper bound of our share: whatever others make it do in the window counts
too); the auxiliary processes are shown apart and not in the total (they are
mostly others' work; a total with them is printed too).

Talks only to 127.0.0.1 (and to the PostgreSQL/NATS URLs given); uses its own
database and NATS prefix, removed at the end; stops only the processes it
started, by pid. Prints tables, and one JSON document with --json FILE.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """utime+stime of a process (all its threads) in seconds, or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(rest[11]) + int(rest[12])) / TICK  # fields 14 and 15 of stat


def machine_cpu():
    """(busy, total) jiffies of all CPUs from /proc/stat (idle and iowait are not busy)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def ppid_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def psql(url, sql):
    r = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("psql: %s" % r.stderr.strip())
    return r.stdout


def nats_pid(port):
    """The nats-server listening on 127.0.0.1:port (by its socket inode), or None."""
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            for line in open(path).readlines()[1:]:
                f = line.split()
                if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f[9])
        except OSError:
            pass
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if open("/proc/%s/comm" % d).read().strip() != "nats-server":
                continue
            for fd in os.listdir("/proc/%s/fd" % d):
                link = os.readlink("/proc/%s/fd/%s" % (d, fd))
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(d)
        except OSError:
            continue
    return None


def nats_delete_streams(port, prefix):
    """Deletes the streams <prefix>_process/_notify/_dead (JetStream API over
    the NATS text protocol, as tests/e2e/cluster.py does); a missing one is fine."""
    for topic in ("process", "notify", "dead"):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            f = s.makefile("rb")
            f.readline()  # INFO
            inbox = "_INBOX.distcost_%s" % uuid.uuid4().hex
            subj = "$JS.API.STREAM.DELETE.%s_%s" % (prefix, topic)
            s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB %s 1\r\nPUB %s %s 0\r\n\r\n'
                      % (inbox.encode(), subj.encode(), inbox.encode()))
            while True:
                line = f.readline()
                if not line or line.startswith(b"MSG ") or line.startswith(b"-ERR"):
                    break
        finally:
            s.close()


class Cluster:
    """The processes of one configuration, started by us, stopped by pid."""

    def __init__(self, a, tmp, name):
        self.a, self.tmp, self.name = a, tmp, name
        self.procs = []  # (label, Popen)
        self.port = None

    def start(self, label, args, ready, env=None):
        out = open(os.path.join(self.tmp, "%s-%s.out" % (self.name, label)), "w+")
        err = open(os.path.join(self.tmp, "%s-%s.err" % (self.name, label)), "w")
        p = subprocess.Popen([self.a.bin] + args, stdout=out, stderr=err, env=dict(os.environ, **(env or {})))
        self.procs.append((label, p))
        deadline = time.time() + 60
        while time.time() < deadline:
            out.seek(0)
            text = out.read()
            if ready in text:
                if text.startswith("listening on") or "\nlistening on" in text:
                    self.port = int(text.split("listening on", 1)[1].split("\n")[0].rsplit(":", 1)[1])
                return p
            if p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("%s did not start: %s" % (label, open(err.name).read()[-2000:]))

    def stop(self):
        for _, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for label, p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print("  %s (pid %d) ignored SIGTERM for 20 s: SIGKILL" % (label, p.pid), file=sys.stderr)
                p.kill()
                p.wait()
        self.procs = []


class Meter:
    """CPU of every process of a configuration over a window."""

    def __init__(self, a, cluster, db):
        self.a, self.cluster, self.db = a, cluster, db
        self.nats = nats_pid(a.nats_port) if db else None

    def pg_pids(self):
        """{pid: backend_type} of the bench database's backends, and of the shared auxiliary processes."""
        own, aux = {}, {}
        rows = psql(self.a.pg_admin, "SELECT pid, coalesce(datname, ''), backend_type FROM pg_stat_activity")
        for line in rows.splitlines():
            pid, dat, kind = line.split("|", 2)
            if dat == self.db:
                own[int(pid)] = kind
            elif dat == "" and kind not in ("client backend",):
                aux[int(pid)] = kind
        if aux:
            pm = ppid_of(next(iter(aux)))
            if pm:
                aux[pm] = "postmaster"
        return own, aux

    def sample(self):
        s = {"toro": {label: cpu_s(p.pid) for label, p in self.cluster.procs}, "own": {}, "aux": {}, "nats": None}
        if self.db:
            own, aux = self.pg_pids()
            s["own"] = {pid: (kind, cpu_s(pid)) for pid, kind in own.items()}
            s["aux"] = {pid: (kind, cpu_s(pid)) for pid, kind in aux.items()}
            s["nats"] = cpu_s(self.nats) if self.nats else None
        return s

    @staticmethod
    def diff(b, e):
        """CPU seconds per process between samples b and e."""
        d = {}
        for label, v in e["toro"].items():
            if v is not None and b["toro"].get(label) is not None:
                d[label] = v - b["toro"][label]
        own, gone = 0.0, 0
        for pid, (kind, v) in e["own"].items():
            if v is None:
                continue
            own += v - (b["own"][pid][1] or 0) if pid in b["own"] else v  # a backend born in the window counts whole
        gone = sum(1 for pid in b["own"] if pid not in e["own"])
        aux = sum(v - b["aux"][pid][1] for pid, (_, v) in e["aux"].items()
                  if v is not None and pid in b["aux"] and b["aux"][pid][1] is not None)
        if e["own"] or b["own"]:
            d["pg-backends(%d)" % len(e["own"])] = own
            d["_pg_gone"] = gone
        if e["nats"] is not None and b["nats"] is not None:
            d["nats-server*"] = e["nats"] - b["nats"]
        if e["aux"]:
            d["_pg_aux"] = aux
        return d


def run_load(a, port, rate, seconds):
    """One e2e_latency.py run: (its JSON result, its own CPU seconds from wait4)."""
    cmd = [sys.executable, os.path.join(HERE, "e2e_latency.py"), str(port), "--users", str(a.users),
           "--rate", str(rate), "--seconds", str(seconds), "--conns", "32", "--drain", str(a.drain)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        deadline = time.time() + seconds + a.drain + 60
        try:
            while time.time() < deadline:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    p.returncode = os.waitstatus_to_exitcode(status)
                    out.seek(0)
                    err.seek(0)
                    text = out.read().decode().strip()
                    if p.returncode != 0 or not text:
                        raise RuntimeError("load generator failed: %s" % err.read().decode()[-2000:])
                    return json.loads(text.splitlines()[-1]), ru.ru_utime + ru.ru_stime
                time.sleep(0.05)
        finally:
            if p.returncode is None:  # timed out, or we are unwinding (SIGTERM, Ctrl-C): stop it by pid
                p.kill()
                p.wait()
    raise RuntimeError("load generator did not finish in time")


def per_k(cpu, n):
    return cpu / n * 1000 if n else float("nan")


def step(a, cluster, meter, rate, seconds):
    b = meter.sample()
    mb, t0 = machine_cpu(), time.time()
    r, gen_cpu = run_load(a, cluster.port, rate, seconds)
    wall, me = time.time() - t0, machine_cpu()
    e = meter.sample()
    d = meter.diff(b, e)
    n = r["completed"]
    procs = {k: v for k, v in d.items() if not k.startswith("_")}
    r.update(wall_s=round(wall, 2), cpu_s={k: round(v, 3) for k, v in procs.items()},
             cpu_per_1k={k: round(per_k(v, n), 3) for k, v in procs.items()},
             total_per_1k=round(per_k(sum(procs.values()), n), 3),
             loadgen_per_1k=round(per_k(gen_cpu, n), 3),
             # cores kept busy in the window by what we measured, and by everything on the machine
             ours_cores=round((sum(procs.values()) + gen_cpu) / wall, 2),
             machine_busy=round((me[0] - mb[0]) / max(1, me[1] - mb[1]), 2))
    if "_pg_aux" in d:
        r["pg_aux_per_1k"] = round(per_k(d["_pg_aux"], n), 3)
        r["pg_backends_gone"] = d["_pg_gone"]
    return r


def show_step(mode, r):
    print("%-13s %7.0f %9.1f %9s %9s %9s %7d %6d" % (
        mode, r["offered_qps"], r["completed_qps"], r["p50_ms"], r["p99_ms"], r["p999_ms"],
        r["missing"], r["errors"]))
    parts = ["%s %.2f" % (k, v) for k, v in r["cpu_per_1k"].items()]
    line = "    cpu s/1000q: " + ", ".join(parts) + " | total %.2f" % r["total_per_1k"]
    if "pg_aux_per_1k" in r:
        line += " | pg aux (shared, not in total) %.2f" % r["pg_aux_per_1k"]
    line += " | load generator %.2f" % r["loadgen_per_1k"]
    line += " | window %.1f s: ours %.2f cores, machine %d%% busy" % (r["wall_s"], r["ours_cores"],
                                                                     100 * r["machine_busy"])
    if r.get("pg_backends_gone"):
        line += " | %d backend(s) exited in the window (their CPU is lost)" % r["pg_backends_gone"]
    print(line, flush=True)


def held(r, p99_max):
    return (r["p99_ms"] is not None and r["p99_ms"] <= p99_max and r["missing"] == 0 and r["errors"] == 0
            and r["completed_qps"] >= 0.9 * r["offered_qps"])


def saturated(r):
    return r["missing"] > 0 or r["p99_ms"] is None or r["p99_ms"] > 2000 or r["completed_qps"] < 0.7 * r["offered_qps"]


def fresh_db(a):
    psql(a.pg_admin, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % a.db)
    psql(a.pg_admin, 'CREATE DATABASE "%s"' % a.db)
    nats_delete_streams(a.nats_port, a.prefix)
    subprocess.run([a.bin, "db", "migrate", "--store", a.store], check=True, stdout=subprocess.DEVNULL, timeout=120)


def start_embedded(a, tmp, name, workers):
    c = Cluster(a, tmp, name)
    c.start("serve", ["serve", "--port", "0", "--data", os.path.join(tmp, "data-" + name), "--kb", a.kb,
                      "--process-workers", str(workers), "--notify-workers", str(workers), "--rate-limit", "0",
                      "--log-level", "warn"], "listening on")
    return c, Meter(a, c, None)


def start_distributed(a, tmp, name, n_process, n_notify, env=None):
    fresh_db(a)
    c = Cluster(a, tmp, name)
    common = ["--store", a.store, "--bus", a.bus, "--concurrency", "1", "--log-level", "warn"]
    try:
        for i in range(n_process):
            c.start("worker-process%d" % (i + 1), ["worker", "process", "--kb", a.kb] + common, "ready", env)
        for i in range(n_notify):
            c.start("worker-notify%d" % (i + 1), ["worker", "notify"] + common, "ready", env)
        c.start("api", ["api", "--port", "0", "--store", a.store, "--bus", a.bus, "--rate-limit", "0",
                        "--log-level", "warn"], "listening on", env)
    except Exception:
        c.stop()
        raise
    time.sleep(0.5)  # consumers declared before the first question
    return c, Meter(a, c, a.db)


def ladder(a, tmp, mode, starter):
    c, m = starter()
    rows = []
    try:
        run_load(a, c.port, 20, 1)  # warm-up: connections, caches, streams
        for rate in a.rates:
            r = step(a, c, m, rate, a.seconds)
            r["mode"] = mode
            rows.append(r)
            show_step(mode, r)
            if saturated(r):
                print("    (saturated: the ladder stops here for %s)" % mode, flush=True)
                break
    finally:
        c.stop()
    return rows


def scaling(a, tmp):
    env = {"TORO_FAULT_ANSWERER": "delay:%d:*" % a.delay_ms}
    out = []
    for k in a.scale:
        c, m = start_distributed(a, tmp, "scale%d" % k, k, 2, env)
        try:
            run_load(a, c.port, 10, 1)
            n_s = a.burst / a.burst_rate
            drain, a.drain = a.drain, max(a.drain, 45.0)  # one worker may serve the burst at ~15-50 q/s
            try:
                r = step(a, c, m, a.burst_rate, n_s)
            finally:
                a.drain = drain
        finally:
            c.stop()
        r["process_workers"] = k
        out.append(r)
        print("process workers %d: %d questions offered at %d q/s, %d completed, service rate %s q/s "
              "(ceiling %d q/s from the delay), p50 %s ms, cpu total %.2f s/1000q; window %.1f s: ours %.2f cores, "
              "machine %d%% busy" % (k, r["accepted"], a.burst_rate, r["completed"], r["drain_qps"],
                                     k * 1000 // a.delay_ms, r["p50_ms"], r["total_per_1k"], r["wall_s"],
                                     r["ours_cores"], 100 * r["machine_busy"]), flush=True)
    return out


def best_held(rows, p99_max):
    ok = [r for r in rows if held(r, p99_max)]
    return max(ok, key=lambda r: r["offered_qps"]) if ok else None


def summary(emb, dist, scale, a):
    print("\n== issue 15 ratios (distributed with 2 process + 2 notify workers / embedded with 2+2 threads)")
    be, bd = best_held(emb, a.p99_max), best_held(dist, a.p99_max)
    res = {}
    if be and bd:
        res["throughput_ratio"] = round(bd["completed_qps"] / be["completed_qps"], 3)
        print("throughput held at p99 <= %d ms: embedded %.1f q/s (offered %d), distributed %.1f q/s (offered %d): "
              "ratio %.2f (target >= 0.7)%s" % (a.p99_max, be["completed_qps"], be["offered_qps"], bd["completed_qps"],
                                                bd["offered_qps"], res["throughput_ratio"],
                                                "; embedded held the top of the ladder: the ratio is an upper bound"
                                                if be is emb[-1] and len(emb) == len(a.rates) else ""))
    else:
        print("throughput held at p99 <= %d ms: embedded %s, distributed %s (none: no ratio)" % (
            a.p99_max, be and be["completed_qps"], bd and bd["completed_qps"]))
    pe = max(emb, key=lambda r: r["completed_qps"], default=None)
    pd = max(dist, key=lambda r: r["completed_qps"], default=None)
    if pe and pd:
        print("peak completed throughput on the ladder (any latency): embedded %.1f, distributed %.1f: ratio %.2f" % (
            pe["completed_qps"], pd["completed_qps"], pd["completed_qps"] / pe["completed_qps"]))
    common = [(e, d) for e in emb for d in dist if e["offered_qps"] == d["offered_qps"]]
    for e, d in common:
        print("cpu per question at %d q/s offered: embedded %.2f, distributed %.2f s/1000q (pg aux +%.2f): "
              "ratio %.2f (with pg aux %.2f; target <= 3)%s" % (
                  e["offered_qps"], e["total_per_1k"], d["total_per_1k"], d.get("pg_aux_per_1k", 0),
                  d["total_per_1k"] / e["total_per_1k"],
                  (d["total_per_1k"] + d.get("pg_aux_per_1k", 0)) / e["total_per_1k"],
                  "" if held(e, 1e9) and held(d, 1e9) else " (not both held: one was saturated)"))
    if common:  # the headline: the highest rate both held, else the lowest both ran
        both = [(e, d) for e, d in common if held(e, 1e9) and held(d, 1e9)]
        e, d = both[-1] if both else common[0]
        res["cpu_ratio"] = round(d["total_per_1k"] / e["total_per_1k"], 3)
        res["cpu_ratio_at_qps"] = e["offered_qps"]
        res["cpu_ratio_both_held"] = bool(both)
    if scale:
        base = scale[0]["drain_qps"]
        for r in scale[1:]:
            if base and r["drain_qps"]:
                key = "scale_%d_over_%d" % (r["process_workers"], scale[0]["process_workers"])
                res[key] = round(r["drain_qps"] / base, 3)
                print("scaling %d -> %d process workers (answerer +%d ms): %.2fx (target %s)" % (
                    scale[0]["process_workers"], r["process_workers"], a.delay_ms, res[key],
                    {2: ">= 1.8x", 4: ">= 3.2x"}.get(r["process_workers"], "-")))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "toro"))
    ap.add_argument("--kb", required=True, help="knowledge-base snapshot (toro kb build kb/docs)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rates", help="offered loads, q/s, comma-separated")
    ap.add_argument("--seconds", type=float, help="seconds per ladder step")
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--drain", type=float, default=15.0, help="seconds to wait for updates after a step's last send")
    ap.add_argument("--p99-max", type=float, default=100.0)
    ap.add_argument("--delay-ms", type=int, default=20)
    ap.add_argument("--scale", default="1,2,4")
    ap.add_argument("--burst", type=int, help="questions per scaling run")
    ap.add_argument("--burst-rate", type=int, default=400)
    ap.add_argument("--skip", default="", help="comma-separated: embedded,distributed,scaling")
    ap.add_argument("--pg-admin", default="postgres://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--nats-port", type=int, default=4222)
    ap.add_argument("--json", help="write all results here")
    a = ap.parse_args()
    # SIGTERM (timeout, bench/run.sh) unwinds like Ctrl-C: processes stopped, database and streams removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    a.rates = [int(x) for x in (a.rates or ("100,200,400" if a.quick else "50,100,200,300,400,600,800")).split(",")]
    a.seconds = a.seconds or (3.0 if a.quick else 8.0)
    a.burst = a.burst or (200 if a.quick else 400)
    a.scale = [int(x) for x in a.scale.split(",")]
    tag = "distcost_%s" % uuid.uuid4().hex[:8]
    a.db, a.prefix = tag, tag
    a.store = a.pg_admin.rsplit("/", 1)[0] + "/" + tag
    a.bus = "nats://127.0.0.1:%d?prefix=%s" % (a.nats_port, tag)
    skip = set(a.skip.split(","))
    load = lambda: " ".join(open("/proc/loadavg").read().split()[:3])
    print("machine: %d cores, load average %s; rates %s q/s, %.0f s per step; database %s, NATS prefix %s" % (
        os.cpu_count(), load(), a.rates, a.seconds, a.db, a.prefix))
    print("%-13s %7s %9s %9s %9s %9s %7s %6s" % ("mode", "offered", "done q/s", "p50 ms", "p99 ms", "p99.9 ms",
                                                 "missing", "errors"))
    tmp = tempfile.mkdtemp(prefix="dist-cost.")
    res = {"rates": a.rates, "seconds": a.seconds, "load_start": load()}
    emb, dist, scale = [], [], []
    try:
        if "embedded" not in skip:
            emb = ladder(a, tmp, "embedded", lambda: start_embedded(a, tmp, "emb", 2))
        if "distributed" not in skip:
            dist = ladder(a, tmp, "distributed-2", lambda: start_distributed(a, tmp, "dist", 2, 2))
        if "scaling" not in skip:
            print("\n== scaling: answerer slowed by TORO_FAULT_ANSWERER=delay:%d:*, 2 notify workers, burst of %d "
                  "questions offered at %d q/s (load average %s)" % (a.delay_ms, a.burst, a.burst_rate, load()))
            scale = scaling(a, tmp)
        res.update(embedded=emb, distributed=dist, scaling=scale, ratios=summary(emb, dist, scale, a))
    finally:
        try:
            psql(a.pg_admin, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % a.db)
            nats_delete_streams(a.nats_port, a.prefix)
        except Exception as e:  # report, do not hide the run's own error
            print("cleanup of %s failed: %s" % (a.db, e), file=sys.stderr)
        subprocess.run(["rm", "-rf", tmp])
    res["load_end"] = load()
    print("load average at the end: %s. * nats-server is shared with every user of this machine (its whole CPU "
          "in the window is counted); pg aux = postmaster, walwriter, checkpointer, bgwriter, autovacuum launcher, "
          "... of the shared cluster (shown, not in the total)." % res["load_end"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
