#!/usr/bin/env python3
"""answer_lengths.py SNAPSHOT [toro ask options...]: answers every question of
kb/eval/questions.jsonl with `toro ask --json` (TORO_BIN, default build/toro)
and prints what `toro kb eval` prints for the answers (key facts, off-topic
refused, in-scope falsely refused) plus the answers' length in characters
(median, p90, max over in-scope answers that found documents). --out FILE
writes one JSON line per question (answer, missing facts) for reading failures.
A measuring aid for the extractive answerer; not run by ctest."""
import json, os, statistics, subprocess, sys, unicodedata
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TORO = os.environ.get("TORO_BIN", os.path.join(ROOT, "build", "toro"))


def fold(s):
    s = unicodedata.normalize("NFD", s.lower())
    return "".join(c for c in s if unicodedata.category(c) != "Mn")


def main():
    args = sys.argv[1:]
    out = None
    if "--out" in args:
        i = args.index("--out")
        out = args[i + 1]
        del args[i:i + 2]
    if not args:
        sys.exit(__doc__)
    snap, extra = args[0], args[1:]
    with open(os.path.join(ROOT, "kb", "eval", "questions.jsonl")) as f:
        qs = [json.loads(l) for l in f if l.strip() and not l.startswith("#")]
    env = dict(os.environ, OMP_WAIT_POLICY="passive")

    def run(q):
        r = subprocess.run([TORO, "ask", "--kb", snap, q["question"], "--json"] + extra, capture_output=True,
                           text=True, env=env, check=True)
        a = json.loads(r.stdout)
        miss = [k for k in q.get("key_facts", []) if fold(k) not in fold(a["answer"])]
        return dict(id=q["id"], question=q["question"], inscope=bool(q.get("relevant")), miss=miss,
                    found=a["found_relevant_docs"], len=len(a["answer"]), answer=a["answer"])

    with ThreadPoolExecutor(2) as ex:
        res = list(ex.map(run, qs))
    if out:
        with open(out, "w") as f:
            for r in res:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    ins = [r for r in res if r["inscope"]]
    off = [r for r in res if not r["inscope"]]
    allf = sum(1 for r in ins if not r["miss"])
    refused = sum(1 for r in ins if not r["found"])
    lens = sorted(r["len"] for r in ins if r["found"])
    print(f"in-scope answers with every key fact {allf / len(ins):.3f} ({allf}/{len(ins)})")
    print(f"off-topic refused {sum(1 for r in off if not r['found']) / max(1, len(off)):.3f}")
    print(f"in-scope falsely refused {refused / len(ins):.3f} ({refused}/{len(ins)})")
    print(f"answer characters: median {statistics.median(lens):.0f}, p90 {lens[int(0.9 * (len(lens) - 1))]}, "
          f"max {lens[-1]}")


if __name__ == "__main__":
    main()
