"""How far can the relevance decision ("found relevant documents") separate
kb/eval's off-topic questions from its in-scope ones, with the scores
retrieval already has? It asks `toro kb search - --json` for every question
of a question file (all chunks, so corpus-level features can be computed),
then for each score prints the off-topic questions refused when at most
N in-scope questions are refused (N = 1%, 1.5%, 2% of them), and fits a
logistic model over several features on one half of the questions (id
parity) and reports it on the other half, both ways. The answerer answers
when any of its top 16 hits is relevant; with vectors a lower hit is no more
relevant than the best one unless it matches much more of the question
(ev1r below), so the best hit decides.

Features (all corpus-independent in meaning):
  ev16      the rule before issue 13's cap: max over the top 16 of cosine + 0.08 coverage
  rel16     the shipped decision: the best relevance `kb search` reports in the top 16
            (cosine + 0.08 coverage + 0.03 phrase evidence, best hit deciding; kb.c)
  ev1r      the shipped rule without its phrase evidence (kb.c cap_below_top): the best
            hit's cosine + 0.08 coverage, or a lower hit's with at least 0.5 more coverage
  c1        the best cosine over all chunks
  covmax    the best coverage in the top 10
  covall    the best coverage over all chunks (do the question's words co-occur anywhere?)
  m10       c1 minus the 10th best cosine (how much the best stands out)
  dm        c1 minus the mean cosine over the corpus (distance to the KB's centroid direction)
  cov_c3    the best coverage among the 3 chunks closest by cosine
  agree     1 when the BM25 top chunk and the dense top chunk come from one document
  ent       entropy of softmax(cosine / 0.01) over all chunks (spread of the top cosines)
  hub       the best of cosine - (the chunk's mean cosine to its 10 nearest chunks - the
            corpus mean of that) + 0.08 coverage (a per-chunk hubness correction; the
            chunk statistic is the per-snapshot calibration one could store at build)

usage: relevance_roc.py TORO SNAPSHOT QUESTIONS.jsonl [--embedder SPEC]
Prints a table; needs numpy. On kb/eval's 341 + 71 questions (issue 13) ev1r
refuses 2 more off-topic questions than ev16 (66 against 64 of 71 at 5 of
341 in-scope refused) and rel16 one more (67); adding covall, agree, ent or
hub to ev1r refuses no more at that budget (a held-out half gains at most
one or two at 1%).
The idf mass of query words the corpus lacks was measured the same way with
the query's term groups printed from kb.c (not exposed by `kb search`): it
adds nothing beside coverage, which already gives those words their weight."""
import json
import sqlite3
import subprocess
import sys

import numpy as np

FEATURES = ["rel16", "ev16", "ev1r", "c1", "covmax", "covall", "m10", "dm", "cov_c3", "agree", "ent", "hub"]
MODELS = [["rel16"], ["ev16"], ["ev1r"], ["c1", "covmax"], ["c1", "covmax", "m10"], ["c1", "covmax", "dm"], ["c1", "cov_c3"],
          ["c1", "covmax", "m10", "dm", "cov_c3"], ["ev1r", "covall"], ["ev1r", "agree"], ["ev1r", "ent"],
          ["ev1r", "hub"], ["ev1r", "covall", "agree", "ent", "hub"]]
RESCUE_COV = 0.5  # kb.c REL_RESCUE_COV


def hubness(snap):
    """Per chunk id: its mean cosine to its 10 nearest other chunks, minus the corpus mean of that."""
    db = sqlite3.connect(snap)
    row = db.execute("SELECT data FROM blobs WHERE name='vectors'").fetchone()
    dim = int(db.execute("SELECT value FROM meta WHERE key='embed_dim'").fetchone()[0])
    ids = [r[0] for r in db.execute("SELECT chunk_id FROM chunks ORDER BY id")]
    v = np.frombuffer(row[0], dtype="<f4").reshape(-1, dim)
    sim = v @ v.T
    np.fill_diagonal(sim, -1)
    r = np.sort(sim, 1)[:, -10:].mean(1)
    return dict(zip(ids, r - r.mean()))


def features(hits, hub):
    cos = np.array([h["cosine"] for h in hits])
    top = hits[:16]
    c_sorted = np.sort(cos)[::-1]
    by_cos = sorted(hits, key=lambda h: -h["cosine"])
    by_bm = max(hits, key=lambda h: h["bm25"])
    ev = [h["cosine"] + 0.08 * h["coverage"] for h in top]
    p = np.exp((cos - cos.max()) / 0.01)
    p /= p.sum()
    return {
        "rel16": max(h["relevance"] for h in top),
        "ev16": max(ev),
        "ev1r": max([ev[0]] + [e for e, h in zip(ev, top) if h["coverage"] >= top[0]["coverage"] + RESCUE_COV]),
        "c1": c_sorted[0],
        "covmax": max(h["coverage"] for h in top[:10]),
        "covall": max(h["coverage"] for h in hits),
        "m10": c_sorted[0] - c_sorted[min(9, len(c_sorted) - 1)],
        "dm": c_sorted[0] - cos.mean(),
        "cov_c3": max(h["coverage"] for h in by_cos[:3]),
        "agree": float(by_bm["bm25"] > 0 and by_bm["doc_id"] == by_cos[0]["doc_id"]),
        "ent": float(-(p * np.log(p + 1e-12)).sum()),
        "hub": max(h["cosine"] - hub[h["chunk_id"]] + 0.08 * h["coverage"] for h in hits),
    }


def collect(toro, snap, qfile, extra):
    qs = [json.loads(line) for line in open(qfile, encoding="utf-8") if line.strip()]
    inp = "".join(q["question"].replace("\n", " ") + "\n" for q in qs)
    out = subprocess.run([toro, "kb", "search", snap, "-", "-k", "10000", "--json"] + extra, input=inp,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    rows = []
    hub = hubness(snap)
    for q, line in zip(qs, out):
        r = features(json.loads(line)["hits"], hub)
        r["y"] = 0 if not q.get("relevant") else 1
        r["half"] = int("".join(c for c in q["id"] if c.isdigit()) or 0) % 2
        rows.append(r)
    return rows


def fit(X, y, l2=1e-2, steps=3000, lr=0.5):
    """Class-balanced L2 logistic regression by gradient descent on standardized X."""
    mu, sd = X.mean(0), X.std(0) + 1e-9
    Z = (X - mu) / sd
    w, b = np.zeros(Z.shape[1]), 0.0
    cw = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(Z @ w + b)))
        g = (p - y) * cw
        w -= lr * (Z.T @ g / len(y) + l2 * w)
        b -= lr * g.mean()
    return w / sd, b - (w / sd) @ mu


def refused_at(s_in, s_off, budget):
    """Off-topic refused when the threshold refuses `budget` in-scope questions."""
    t = np.sort(s_in)[budget]
    return int((s_off < t).sum())


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rows = collect(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
    y = np.array([r["y"] for r in rows])
    n_in, n_off = int(y.sum()), int((1 - y).sum())
    budgets = [max(1, round(f * n_in)) for f in (0.01, 0.015, 0.02)]
    print(f"{n_in} in-scope, {n_off} off-topic; off-topic refused at in-scope false refusals {budgets}")
    for f in FEATURES:
        s = np.array([r[f] for r in rows])
        print(f"  {f:8s} " + "  ".join(f"{refused_at(s[y == 1], s[y == 0], b)}/{n_off}" for b in budgets))
    print("logistic models, fitted on one half (id parity), threshold at 1% false refusal on it, "
          "reported on the other half:")
    for feats in MODELS:
        res = []
        for half in (0, 1):
            tr = [r for r in rows if r["half"] == half]
            te = [r for r in rows if r["half"] != half]
            Xtr = np.array([[r[f] for f in feats] for r in tr])
            ytr = np.array([r["y"] for r in tr])
            w, b = fit(Xtr, ytr)
            s = Xtr @ w + b
            t = np.sort(s[ytr == 1])[max(0, int(0.01 * ytr.sum()))] - 1e-9
            Xte = np.array([[r[f] for f in feats] for r in te])
            yte = np.array([r["y"] for r in te])
            st = Xte @ w + b
            res.append(f"fit {half}: test off-topic refused {int(((st < t) & (yte == 0)).sum())}/{int((yte == 0).sum())}"
                       f", in-scope refused {int(((st < t) & (yte == 1)).sum())}/{int(yte.sum())}")
        print(f"  {'+'.join(feats):28s} " + " | ".join(res))


if __name__ == "__main__":
    main()
