"""Checks the labeled questions in kb/eval/questions.jsonl against kb/docs.

Every line is one JSON object {"id", "lang", "question", "relevant", "key_facts",
"tags"?}. An in-scope question names 1-3 relevant documents (file names without
extension) and 1-3 key facts; each key fact must occur, case- and accent-folded
and whitespace-normalized, in at least one of its relevant documents, and must
not simply repeat the question. An off-topic question has "relevant": [] and no
key facts and is tagged "offtopic" (near misses also "nearmiss"). The set must
keep its minimum size: 200 in-scope, 60 off-topic, 20 near misses, at least 10%
English in-scope questions, and every document asked about at least once.

Runs under pytest (ctest e2e.test_eval_data) or as a script:
    python3 tests/e2e/test_eval_data.py [QUESTIONS.jsonl [DOCS_DIR]]
"""
import json
import os
import re
import sys
import unicodedata

import pytest

ROOT = os.environ.get("TORO_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
QUESTIONS = os.path.join(ROOT, "kb", "eval", "questions.jsonl")
DOCS = os.path.join(ROOT, "kb", "docs")

MIN_INSCOPE = 200
MIN_OFFTOPIC = 60
MIN_NEARMISS = 20
MIN_EN_SHARE = 0.10
MAX_QUESTION_CHARS = 2000  # the API's limit on a question
TAGS = {"colloquial", "noaccent", "typo", "abbrev", "en", "multi", "definition", "amount", "time", "howto",
        "yesno", "comparison", "offtopic", "nearmiss"}


def fold(s):
    """Case- and accent-folded, compatibility-normalized, whitespace collapsed
    (as src/kb/analyzer.c toro_fold, plus the whitespace rule)."""
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c))
    s = unicodedata.normalize("NFKC", s.casefold())
    return re.sub(r"\s+", " ", s).strip()


def load_docs(docs_dir):
    """doc_id -> folded text (front matter dropped)."""
    docs = {}
    for name in sorted(os.listdir(docs_dir)):
        base, ext = os.path.splitext(name)
        if ext not in (".md", ".txt", ".html", ".htm"):
            continue
        with open(os.path.join(docs_dir, name), encoding="utf-8") as f:
            text = f.read()
        if text.startswith("---\n"):
            end = text.find("\n---\n", 4)
            if end > 0:
                text = text[end + 5:]
        docs[base] = fold(text)
    return docs


def _strings(v):
    return isinstance(v, list) and all(isinstance(x, str) and x.strip() for x in v)


def check_line(lineno, line, docs, seen_ids, seen_questions):
    """Errors of one line (a list of strings) and the parsed object or None."""
    errs = []
    where = "line %d" % lineno
    try:
        o = json.loads(line)
    except ValueError as e:
        return ["%s: not JSON (%s)" % (where, e)], None
    if not isinstance(o, dict):
        return ["%s: not a JSON object" % where], None
    qid = o.get("id")
    if not isinstance(qid, str) or not qid:
        errs.append("%s: missing id" % where)
    else:
        where = "line %d (%s)" % (lineno, qid)
        if qid in seen_ids:
            errs.append("%s: duplicate id" % where)
        seen_ids.add(qid)
    extra = set(o) - {"id", "lang", "question", "relevant", "key_facts", "tags"}
    if extra:
        errs.append("%s: unknown fields %s" % (where, sorted(extra)))
    if o.get("lang") not in ("pt", "en"):
        errs.append("%s: lang must be pt or en" % where)
    q = o.get("question")
    if not isinstance(q, str) or not q.strip() or q != q.strip() or len(q) > MAX_QUESTION_CHARS:
        errs.append("%s: question must be a trimmed, non-empty string of at most %d characters" %
                    (where, MAX_QUESTION_CHARS))
        q = ""
    elif fold(q) in seen_questions:
        errs.append("%s: duplicate question" % where)
    seen_questions.add(fold(q))
    rel = o.get("relevant")
    facts = o.get("key_facts", [])
    tags = o.get("tags", [])
    if not _strings(tags):
        errs.append("%s: tags must be a list of strings" % where)
        tags = []
    unknown = set(tags) - TAGS
    if unknown:
        errs.append("%s: unknown tags %s" % (where, sorted(unknown)))
    if len(set(tags)) != len(tags):
        errs.append("%s: repeated tag" % where)
    if "tags" in o and (o.get("lang") == "en") != ("en" in tags):
        errs.append("%s: tag en must match lang" % where)
    if not isinstance(rel, list) or not all(isinstance(d, str) for d in rel):
        return errs + ["%s: relevant must be a list of doc ids" % where], o
    if not _strings(facts) and facts != []:
        return errs + ["%s: key_facts must be a list of non-empty strings" % where], o
    if not rel:  # off-topic
        if facts:
            errs.append("%s: an off-topic question has no key facts" % where)
        if "offtopic" not in tags:
            errs.append("%s: an off-topic question is tagged offtopic" % where)
        return errs, o
    if "offtopic" in tags or "nearmiss" in tags:
        errs.append("%s: offtopic/nearmiss tags on a question with relevant documents" % where)
    if len(rel) > 3 or len(set(rel)) != len(rel):
        errs.append("%s: relevant must list 1 to 3 distinct documents" % where)
    missing = [d for d in rel if d not in docs]
    if missing:
        errs.append("%s: unknown documents %s" % (where, missing))
    if not 1 <= len(facts) <= 3:
        errs.append("%s: an in-scope question has 1 to 3 key facts" % where)
    fq = fold(q)
    for k in facts:
        fk = fold(k)
        if k != " ".join(k.split()):  # kb eval matches the answer without normalizing whitespace
            errs.append("%s: key fact %r has extra whitespace" % (where, k))
        if not any(fk in docs[d] for d in rel if d in docs):
            errs.append("%s: key fact %r is in none of %s" % (where, k, rel))
        if fk in fq:
            errs.append("%s: key fact %r only repeats the question" % (where, k))
    return errs, o


def check_file(path, docs_dir):
    """(errors, stats) for a questions file."""
    docs = load_docs(docs_dir)
    errs, seen_ids, seen_q = [], set(), set()
    stats = {"inscope": 0, "offtopic": 0, "nearmiss": 0, "en": 0, "asked": set(), "docs": set(docs)}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            e, o = check_line(lineno, line, docs, seen_ids, seen_q)
            errs += e
            if e or o is None:
                continue
            if o["relevant"]:
                stats["inscope"] += 1
                stats["en"] += o["lang"] == "en"
                stats["asked"].update(o["relevant"])
            else:
                stats["offtopic"] += 1
                stats["nearmiss"] += "nearmiss" in o.get("tags", [])
    return errs, stats


def check_counts(stats):
    errs = []
    if stats["inscope"] < MIN_INSCOPE:
        errs.append("%d in-scope questions, want at least %d" % (stats["inscope"], MIN_INSCOPE))
    if stats["offtopic"] < MIN_OFFTOPIC:
        errs.append("%d off-topic questions, want at least %d" % (stats["offtopic"], MIN_OFFTOPIC))
    if stats["nearmiss"] < MIN_NEARMISS:
        errs.append("%d near misses, want at least %d" % (stats["nearmiss"], MIN_NEARMISS))
    if stats["inscope"] and stats["en"] < MIN_EN_SHARE * stats["inscope"]:
        errs.append("%d English in-scope questions, want at least %.0f%%" % (stats["en"], MIN_EN_SHARE * 100))
    never = sorted(stats["docs"] - stats["asked"])
    if never:
        errs.append("documents no question is about: %s" % never)
    return errs


# ---- tests ------------------------------------------------------------------


def test_questions_file_is_valid():
    errs, stats = check_file(QUESTIONS, DOCS)
    assert errs == [], "\n".join(errs)
    assert check_counts(stats) == []


GOOD = {"id": "t1", "lang": "pt", "question": "qual o limite do fgc?", "relevant": ["fgc"],
        "key_facts": ["R$ 250.000"], "tags": ["amount"]}


def _with(**kw):
    o = dict(GOOD)
    o.update(kw)
    return json.dumps(o, ensure_ascii=False)


@pytest.mark.parametrize("line,expect", [
    ('{"id": "t9", "question": ', "not JSON"),
    ("[1, 2]", "not a JSON object"),
    (_with(id="t0"), "duplicate id"),
    (_with(id="t2"), "duplicate question"),
    (_with(id="t2", question="fgc cobre quanto?", relevant=["no-such-doc"]), "unknown documents"),
    (_with(id="t2", question="fgc cobre quanto?", key_facts=["R$ 999.999"]), "is in none of"),
    (_with(id="t2", question="fgc cobre R$ 250 mil?", relevant=["fgc"], key_facts=["r$ 250 MIL"]),
     "only repeats the question"),
    (_with(id="t2", question="fgc cobre quanto?", key_facts=[]), "1 to 3 key facts"),
    (_with(id="t2", question="fgc cobre quanto?", tags=["amout"]), "unknown tags"),
    (_with(id="t2", question="fgc cobre quanto?", lang="en"), "tag en must match lang"),
    (_with(id="t2", question="fgc cobre quanto?", lang="es"), "lang must be pt or en"),
    (_with(id="t2", question="quem ganhou o jogo?", relevant=[], key_facts=["x"], tags=["offtopic"]),
     "off-topic question has no key facts"),
    (_with(id="t2", question="quem ganhou o jogo?", relevant=[], key_facts=[], tags=["nearmiss"]),
     "tagged offtopic"),
    (_with(id="t2", question=" "), "question must be"),
    (_with(id="t2", question="fgc cobre quanto?", key_facts=["R$  250.000"]), "extra whitespace"),
])
def test_checker_rejects_bad_lines(tmp_path, line, expect):
    path = tmp_path / "q.jsonl"
    path.write_text(_with(id="t0") + "\n" + line + "\n", encoding="utf-8")
    errs, _ = check_file(str(path), DOCS)
    assert any(expect in e for e in errs), errs


def test_checker_accepts_folded_facts_and_counts_minimums(tmp_path):
    # Accents and case do not matter in a key fact.
    path = tmp_path / "q.jsonl"
    path.write_text(_with(question="o fgc cobre ate quanto?", key_facts=["r$ 250.000", "CONGLOMERADO"]) + "\n" +
                    _with(id="t2", question="debenture tem fgc?", relevant=["debentures"],
                          key_facts=["sem fgc"]) + "\n", encoding="utf-8")
    errs, stats = check_file(str(path), DOCS)
    assert errs == []
    counts = check_counts(stats)
    assert any("in-scope questions, want" in e for e in counts)
    assert any("off-topic questions, want" in e for e in counts)
    assert any("near misses" in e for e in counts)
    assert any("documents no question is about" in e for e in counts)


def test_fold_matches_the_analyzer():
    assert fold("Aliquota  de\tIR: 22,5%\n") == "aliquota de ir: 22,5%"
    assert fold("Não há come-cotas") == "nao ha come-cotas"
    assert fold("30º DIA") == "30o dia"


if __name__ == "__main__":
    q = sys.argv[1] if len(sys.argv) > 1 else QUESTIONS
    d = sys.argv[2] if len(sys.argv) > 2 else DOCS
    errors, st = check_file(q, d)
    errors += check_counts(st)
    for e in errors:
        print(e)
    print("%d in-scope (%d en), %d off-topic (%d near misses), %d/%d documents asked about: %s" %
          (st["inscope"], st["en"], st["offtopic"], st["nearmiss"], len(st["asked"] & st["docs"]), len(st["docs"]),
           "FAIL" if errors else "ok"))
    sys.exit(1 if errors else 0)
