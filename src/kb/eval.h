/* eval.h: retrieval (and answer) quality of a snapshot: the project's labeled
 * questions (JSONL with relevant doc_ids and key facts) and BEIR data sets
 * (corpus.jsonl, queries.jsonl, qrels/test.tsv). Ranking is per document: the
 * chunk hits are collapsed to their doc_ids in order. It prints nothing
 * unless given a FILE for per-question details. */
#ifndef TORO_KB_EVAL_H
#define TORO_KB_EVAL_H

#include <stddef.h>
#include <stdio.h>

#include "kb/index.h"
#include "kb/kb.h"

typedef struct toro_eval_metrics {
    size_t n_questions;      /* questions with relevant docs (retrieval scored) */
    double recall1, recall5, recall10, recall100;
    double mrr;              /* mean reciprocal rank of the first relevant doc (cut at 100) */
    double ndcg10;
    size_t n_answered;       /* answers checked for key facts */
    size_t n_all_facts;      /* answers containing every key fact */
    double fact_rate;        /* n_all_facts / n_answered */
    double fact_item_rate;   /* key facts found / key facts asked */
    size_t n_false_noinfo;   /* answerable questions answered "no information" */
    size_t n_offtopic;       /* questions with no relevant docs */
    size_t n_offtopic_ok;    /* ... that were answered "no information" */
    double mean_ms;          /* mean search latency */
    size_t n_inscope;        /* questions with relevant docs (refusal checked) */
    size_t n_inscope_refused; /* ... whose top hit was below the relevance threshold (or answered "no info") */
    double offtopic_refusal_rate;  /* n_offtopic_ok / n_offtopic */
    double false_refusal_rate;     /* n_inscope_refused / n_inscope */
} toro_eval_metrics_t;

/* Answers a question for key-fact scoring: *text caller-frees, *found is
 * found_relevant_docs. Supplied by the caller so kb/ does not depend on answer/. */
typedef int (*toro_eval_answer_fn)(void *ud, const char *question, char **text, int *found);

/* Why: `toro kb eval FILE QUESTIONS`. answer may be NULL (retrieval only).
 * detail, when not NULL, gets one line per question that missed. On failure
 * (TORO_EIO: the file cannot be opened; TORO_EFORMAT: a line that is not a
 * question, or no questions; a search error) *err says why (caller frees)
 * and *m holds the questions scored before it, rates computed. */
int toro_kb_eval_questions(toro_kb_t *kb, const char *path, toro_eval_answer_fn answer, void *ud, FILE *detail,
                           toro_eval_metrics_t *m, char **err);

/* Why: `toro kb eval` reports each retrieval mode: the same as
 * toro_kb_eval_questions with the mode given (TORO_KB_MODE_DEFAULT = the kb's). */
int toro_kb_eval_questions_mode(toro_kb_t *kb, const char *path, toro_kb_mode_t mode, toro_eval_answer_fn answer,
                                void *ud, FILE *detail, toro_eval_metrics_t *m, char **err);

/* Why: BEIR snapshots with vectors take minutes to embed, so building is
 * separate from scoring: builds DIR/corpus.jsonl into snapshot_path with
 * embedder e (borrowed, NULL = none) and its progress callback. On failure
 * *err says why (when it can name it) and snapshot_path is not written. */
int toro_kb_beir_build(const char *dir, const char *snapshot_path, toro_embedder_t *e,
                       toro_kb_embed_progress_cb progress, char **err);

/* Why: scores an open BEIR snapshot in one mode on DIR/qrels/test.tsv, on
 * the full set (all), and on a deterministic split by query id (dev = FNV-1a
 * hash of the id % 5 == 0, about 20%; test = the rest). Fusion is chosen on
 * dev and reported on test. Any of the outputs may be NULL. When a file
 * cannot be read (TORO_EIO, TORO_ENOMEM) the outputs are untouched; when a
 * search fails they hold the queries scored before it. *err says why. */
int toro_kb_beir_score(toro_kb_t *kb, const char *dir, toro_kb_mode_t mode, toro_eval_metrics_t *all,
                       toro_eval_metrics_t *dev, toro_eval_metrics_t *test, char **err);

/* Why: `toro kb eval --beir DIR`: builds a snapshot of DIR/corpus.jsonl at
 * snapshot_path (kept for reuse by the caller or removed), then scores
 * nDCG@10 and Recall@100 on DIR/qrels/test.tsv. */
int toro_kb_eval_beir(const char *dir, const char *snapshot_path, toro_eval_metrics_t *m, char **err);

/* Why: key facts are compared case- and accent-insensitively. */
int toro_eval_contains_folded(const char *haystack, const char *needle);

#endif
