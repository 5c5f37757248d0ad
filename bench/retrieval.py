"""Retrieval figures for three engines on the same chunks and queries:
toro (bench/kb_search_bench.c: toro_kb_search in-process, one thread), bm25s
(Portuguese stop words + Snowball stemmer, numpy backend, one thread) and SQLite
FTS5 (default unicode61 tokenizer, bm25 rank, OR of the query's tokens).
The corpus is the chunk table of the toro snapshot (title + section + text of
each chunk, exactly what toro indexes), so all engines index the same units.
nDCG@10 is computed here, by the same code for all engines, over the distinct
documents of each engine's top 50 chunks (binary/graded doc-level qrels).
Throughput: every query list is searched once (warm-up, results), then REPS
times timed one query at a time (k=10); bm25s also gets its batch mode (all
queries in one call), its fastest path, which is the one used for its qps.
CPU time per query (toro: getrusage around its timed loop; bm25s: process_time around
its batch) is reported beside wall-clock figures: it depends much less on other load
on a shared machine.
usage: retrieval.py prep-sample QUESTIONS.jsonl OUT | prep-beir DIR OUT | prep-synth OUT
       retrieval.py run SNAPSHOT OUT --bench BIN [--reps 3] [--source-bytes N] [--fts-queries N]
                    [--engines toro,bm25s,fts5] [--check 1]
(--fts-queries: FTS5 runs only the first N queries, for corpora where it is very slow;
--check 1: toro also compares its pruned top 10 with exhaustive scoring on every query)
Prints one JSON line per engine."""
import json
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import time

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(v, "1")

K, EVAL_K = 10, 50


def prep_sample(path, out):
    qs, qrels = [], {}
    for line in open(path):
        if line.strip():
            o = json.loads(line)
            qrels[str(len(qs))] = {d: 1 for d in o.get("relevant", [])}
            qs.append(o["question"])
    write_prep(out, qs, qrels)


def prep_beir(d, out):
    rel = {}
    with open(os.path.join(d, "qrels", "test.tsv")) as f:
        next(f)
        for line in f:
            q, doc, s = line.rstrip("\n").split("\t")
            rel.setdefault(q, {})[doc] = int(s)
    qs, qrels = [], {}
    for line in open(os.path.join(d, "queries.jsonl")):
        o = json.loads(line)
        if o["_id"] in rel:
            qrels[str(len(qs))] = rel[o["_id"]]
            qs.append(o["text"].replace("\n", " "))
    write_prep(out, qs, qrels)


def prep_synth(out):
    w = ("cdb fgc garantia tesouro selic imposto renda liquidez prazo dividendos previdência pgbl taxa juros ipca "
         "termo15 termo300 termo5000 fundo ações").split()
    r = random.Random(7)
    write_prep(out, [" ".join(r.sample(w, r.randint(2, 5))) for _ in range(200)], None)


def write_prep(out, qs, qrels):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "queries.txt"), "w") as f:
        f.write("\n".join(qs) + "\n")
    if qrels is not None:
        json.dump(qrels, open(os.path.join(out, "qrels.json"), "w"))


def ndcg10(results, qrels):
    if qrels is None:
        return None
    tot, n = 0.0, 0
    for i, docs in enumerate(results):
        rel = qrels.get(str(i), {})
        if not any(g > 0 for g in rel.values()):
            continue
        seen, ranked = set(), []
        for d in docs:
            if d not in seen:
                seen.add(d)
                ranked.append(d)
        dcg = sum((2 ** rel.get(d, 0) - 1) / __import__("math").log2(r + 2) for r, d in enumerate(ranked[:10]))
        ideal = sorted((g for g in rel.values() if g > 0), reverse=True)[:10]
        idcg = sum((2 ** g - 1) / __import__("math").log2(r + 2) for r, g in enumerate(ideal))
        tot += dcg / idcg
        n += 1
    return round(tot / n, 4) if n else None


def pcts(lat):
    lat = sorted(lat)
    return round(lat[len(lat) // 2], 4), round(lat[int(0.99 * (len(lat) - 1))], 4)


def timed(queries, fn, reps):
    lat = []
    t0 = time.perf_counter()
    for _ in range(reps):
        for q in queries:
            a = time.perf_counter()
            fn(q)
            lat.append((time.perf_counter() - a) * 1000)
    total = time.perf_counter() - t0
    return len(lat) / total, lat


def run(snap, out, bench, reps, source_bytes, fts_queries=0, engines=("toro", "bm25s", "fts5"), check=0):
    queries = [l.rstrip("\n") for l in open(os.path.join(out, "queries.txt"))]
    qp = os.path.join(out, "qrels.json")
    qrels = json.load(open(qp)) if os.path.exists(qp) else None
    db = sqlite3.connect(snap)
    rows = db.execute("SELECT doc_id, title, section, text FROM chunks ORDER BY id").fetchall()
    db.close()
    docids = [r[0] for r in rows]
    texts = [("%s\n%s\n%s" % (r[1] or "", r[2] or "", r[3] or "")) for r in rows]
    del rows
    nbytes = source_bytes or sum(len(t.encode()) for t in texts)
    base = {"chunks": len(texts), "queries": len(queries)}

    if "toro" in engines:
        run_toro(snap, out, bench, reps, qrels, base, check)
    if "bm25s" in engines:
        run_bm25s(texts, docids, queries, reps, qrels, base, nbytes)
    if "fts5" in engines:
        run_fts5(texts, docids, queries, reps, qrels, base, nbytes, out, fts_queries)


def run_toro(snap, out, bench, reps, qrels, base, check):
    res_path = os.path.join(out, "toro.results.jsonl")
    o = json.loads(subprocess.run([bench, snap, os.path.join(out, "queries.txt"), "-k", str(K), "--reps", str(reps),
                                   "--eval-k", str(EVAL_K), "--out", res_path, "--check", str(check)],
                                  check=True, capture_output=True, text=True).stdout)
    res = [json.loads(l) for l in open(res_path)]
    extra = {f: o[f] for f in ("cpu_ms_per_query", "rss_open_mb", "postings_mb", "open_s", "identical_topk",
                               "checked") if f in o}
    print(json.dumps(dict(base, engine="toro", qps=o["qps"], p50_ms=o["p50_ms"], p99_ms=o["p99_ms"],
                          ndcg10=ndcg10(res, qrels), **extra)), flush=True)


def run_bm25s(texts, docids, queries, reps, qrels, base, nbytes):
    import bm25s
    import Stemmer
    stem = Stemmer.Stemmer("portuguese")
    t0 = time.perf_counter()
    ctok = bm25s.tokenize(texts, stopwords="pt", stemmer=stem, show_progress=False)
    retr = bm25s.BM25()
    retr.index(ctok, show_progress=False)
    build_s = time.perf_counter() - t0
    del ctok
    vocab = retr.vocab_dict

    def bm_search(q, k):
        toks = [t for t in bm25s.tokenize([q], stopwords="pt", stemmer=stem, return_ids=False,
                                          show_progress=False)[0] if t in vocab]
        if not toks:
            return []
        ids, _ = retr.retrieve([toks], k=min(k, len(texts)), n_threads=1, show_progress=False)
        return ids[0]

    res = [[docids[i] for i in bm_search(q, EVAL_K)] for q in queries]
    qps_loop, lat = timed(queries, lambda q: bm_search(q, K), reps)
    p50, p99 = pcts(lat)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(reps):
        toks = bm25s.tokenize(queries, stopwords="pt", stemmer=stem, return_ids=False, show_progress=False)
        toks = [[t for t in ts if t in vocab] or [next(iter(vocab))] for ts in toks]
        retr.retrieve(toks, k=K, n_threads=1, show_progress=False)
    qps_batch = reps * len(queries) / (time.perf_counter() - t0)
    cpu_batch = 1000 * (time.process_time() - c0) / (reps * len(queries))
    print(json.dumps(dict(base, engine="bm25s", qps=round(qps_batch, 1), qps_one_by_one=round(qps_loop, 1),
                          cpu_ms_per_query=round(cpu_batch, 4), p50_ms=p50, p99_ms=p99, ndcg10=ndcg10(res, qrels), build_s=round(build_s, 3),
                          build_chunks_s=round(len(texts) / build_s, 1), build_mb_s=round(nbytes / 1e6 / build_s, 2))),
          flush=True)
    del retr


def run_fts5(texts, docids, queries, reps, qrels, base, nbytes, out, fts_queries):
    fp = os.path.join(out, "fts5.db")
    for suffix in ("", "-wal", "-journal"):
        if os.path.exists(fp + suffix):
            os.remove(fp + suffix)
    t0 = time.perf_counter()
    con = sqlite3.connect(fp)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("CREATE VIRTUAL TABLE fts USING fts5(body)")
    con.executemany("INSERT INTO fts(rowid, body) VALUES(?, ?)", enumerate(texts))
    con.commit()
    con.execute("INSERT INTO fts(fts) VALUES('optimize')")
    con.commit()
    build_s = time.perf_counter() - t0
    tokre = re.compile(r"\w+")

    def fts_search(q, k):
        toks = tokre.findall(q.lower())
        if not toks:
            return []
        expr = " OR ".join('"%s"' % t for t in toks)
        return [r[0] for r in con.execute("SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY rank LIMIT ?", (expr, k))]

    fq = queries[:fts_queries] if fts_queries else queries
    res = [[docids[i] for i in fts_search(q, EVAL_K)] for q in fq]
    qps, lat = timed(fq, lambda q: fts_search(q, K), reps)
    p50, p99 = pcts(lat)
    print(json.dumps(dict(base, engine="fts5", queries=len(fq), qps=round(qps, 1), p50_ms=p50, p99_ms=p99, ndcg10=ndcg10(res, qrels),
                          build_s=round(build_s, 3), build_chunks_s=round(len(texts) / build_s, 1),
                          build_mb_s=round(nbytes / 1e6 / build_s, 2))), flush=True)
    con.close()
    os.remove(fp)


def main():
    a = sys.argv[1:]
    if a[0] == "prep-sample":
        prep_sample(a[1], a[2])
    elif a[0] == "prep-beir":
        prep_beir(a[1], a[2])
    elif a[0] == "prep-synth":
        prep_synth(a[1])
    elif a[0] == "run":
        opts = dict(zip(a[3::2], a[4::2]))
        run(a[1], a[2], opts["--bench"], int(opts.get("--reps", 3)), int(opts.get("--source-bytes", 0)),
            int(opts.get("--fts-queries", 0)), tuple(opts.get("--engines", "toro,bm25s,fts5").split(",")),
            int(opts.get("--check", 0)))


if __name__ == "__main__":
    main()
