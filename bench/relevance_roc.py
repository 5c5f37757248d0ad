"""How far can the relevance decision ("found relevant documents") separate
kb/eval's off-topic questions from its in-scope ones, with the scores
retrieval already has? It asks `toro kb search - --json` for every question
of a question file (all chunks, so corpus-level features can be computed),
then for each score prints the off-topic questions refused when at most
N in-scope questions are refused (N = 1%, 1.5%, 2% of them), and fits a
logistic model over several features on one half of the questions (id
parity) and reports it on the other half, both ways. The decision the
answerer makes is "any of the top 16 hits is relevant", so per-query
features take the best of the top 16.

Features (all corpus-independent in meaning):
  ev16      the shipped evidence: max over the top 16 of cosine + 0.08 coverage
  c1        the best cosine over all chunks
  covmax    the best coverage in the top 10
  m10       c1 minus the 10th best cosine (how much the best stands out)
  dm        c1 minus the mean cosine over the corpus (distance to the KB's centroid direction)
  cov_c3    the best coverage among the 3 chunks closest by cosine

usage: relevance_roc.py TORO SNAPSHOT QUESTIONS.jsonl [--embedder SPEC]
Prints a table; needs numpy. Re-derives the figures in the report of the
answers branch (issue 13): on kb/eval none of these combinations refuses
more off-topic questions than ev16 at the same false-refusal budget."""
import json
import subprocess
import sys

import numpy as np

FEATURES = ["ev16", "c1", "covmax", "m10", "dm", "cov_c3"]
MODELS = [["ev16"], ["c1", "covmax"], ["c1", "covmax", "m10"], ["c1", "covmax", "dm"], ["c1", "cov_c3"],
          ["c1", "covmax", "m10", "dm", "cov_c3"]]


def features(hits):
    cos = np.array([h["cosine"] for h in hits])
    top = hits[:16]
    c_sorted = np.sort(cos)[::-1]
    by_cos = sorted(hits, key=lambda h: -h["cosine"])
    return {
        "ev16": max(h["cosine"] + 0.08 * h["coverage"] for h in top),
        "c1": c_sorted[0],
        "covmax": max(h["coverage"] for h in top[:10]),
        "m10": c_sorted[0] - c_sorted[min(9, len(c_sorted) - 1)],
        "dm": c_sorted[0] - cos.mean(),
        "cov_c3": max(h["coverage"] for h in by_cos[:3]),
    }


def collect(toro, snap, qfile, extra):
    qs = [json.loads(line) for line in open(qfile, encoding="utf-8") if line.strip()]
    inp = "".join(q["question"].replace("\n", " ") + "\n" for q in qs)
    out = subprocess.run([toro, "kb", "search", snap, "-", "-k", "10000", "--json"] + extra, input=inp,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    rows = []
    for q, line in zip(qs, out):
        r = features(json.loads(line)["hits"])
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
