/* answer.h: the answerer interface (the "Nova Pro" box). An answerer turns a
 * question into an answer with sources; the process stage calls it and does
 * not know whether a model is behind it. Implementations: extractive.c (the
 * default, needs no model), openai.c and bedrock.c (model providers, which
 * can stream partial text). It does not store or publish anything. */
#ifndef TORO_ANSWER_ANSWER_H
#define TORO_ANSWER_ANSWER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/question.h" /* toro_source_t: one struct from the answer to the store and the wire */
#include "kb/kb.h"

typedef struct toro_answer {
    char *text;              /* the answer, Markdown-like (bold, lists) */
    toro_source_t *sources;  /* numbered citations [n] refer to sources[n-1] */
    size_t n_sources;
    bool found_relevant_docs;
    char *model;             /* who answered, e.g. "extractive" */
    char *kb_version;        /* snapshot version used */
} toro_answer_t;

/* Why: frees every field and zeroes the struct; safe on a zeroed struct. */
void toro_answer_clear(toro_answer_t *a);

/* Why: the end of every answerer call. On failure (rc != 0) clears *out and
 * hands err (a heap message, may be NULL) to *errmsg, or a generic message
 * for rc; on success frees err. errmsg may be NULL. Returns rc. */
int toro_answer_finish(int rc, toro_answer_t *out, char *err, char **errmsg);

/* Why: `toro kb eval` and its tests score an answerer through the
 * toro_eval_answer_fn shape (kb/eval.h): ud is a toro_answerer_t; *text
 * (caller frees) gets the answer text. */
int toro_answerer_eval_fn(void *ud, const char *question, char **text, int *found);

typedef struct toro_answerer toro_answerer_t;

/* Partial answer text as a provider streams it (the model's raw words, before
 * citations are renumbered): len bytes, not NUL-terminated, possibly cut in
 * the middle of a UTF-8 sequence. Called on the answering thread, in order;
 * best-effort: the answer returned at the end is the only result. */
typedef void (*toro_answer_delta_fn)(void *ud, const char *text, size_t len);

typedef struct toro_answerer_ops {
    const char *name;
    /* Answer `question` into *out (caller clears it). Returns 0, TORO_ERETRY
     * for a transient failure worth retrying with backoff, or another negative
     * code for a permanent failure; *errmsg (caller frees) says why. */
    int (*answer)(toro_answerer_t *self, const char *question, toro_answer_t *out, char **errmsg);
    void (*destroy)(toro_answerer_t *self);
    /* Optional (NULL: the answerer does not stream): answer, calling
     * on_delta(ud, ...) with partial text as it arrives. Same results. */
    int (*answer_stream)(toro_answerer_t *self, const char *question, toro_answer_delta_fn on_delta, void *ud,
                         toro_answer_t *out, char **errmsg);
} toro_answerer_ops_t;

struct toro_answerer {
    const toro_answerer_ops_t *ops; /* first field of every implementation */
};

static inline int toro_answerer_answer(toro_answerer_t *a, const char *q, toro_answer_t *out, char **errmsg)
{
    return a->ops->answer(a, q, out, errmsg);
}

/* Why: the process stage's call: streams through on_delta when the answerer
 * can, else a plain answer (on_delta never called). */
static inline int toro_answerer_answer_streamed(toro_answerer_t *a, const char *q, toro_answer_delta_fn on_delta,
                                                void *ud, toro_answer_t *out, char **errmsg)
{
    if (on_delta && a->ops->answer_stream)
        return a->ops->answer_stream(a, q, on_delta, ud, out, errmsg);
    return a->ops->answer(a, q, out, errmsg);
}

static inline void toro_answerer_free(toro_answerer_t *a)
{
    if (a)
        a->ops->destroy(a);
}

/* Why: the default answerer; borrows kb, which must outlive it. */
int toro_answerer_extractive_new(toro_kb_t *kb, toro_answerer_t **out);

/* Why: the extractive answerer's sentence-level lexical match, for tests
 * and diagnostics: how many of the question's words (stop words aside)
 * `sentence` holds, through the kb analyzer with accents, plurals and
 * acronyms folded; lang ("pt"/"en") picks the sentence's stemmer. */
int toro_answer_sentence_match(const char *question, const char *sentence, const char *lang, int *matched,
                               int *total);

/* The exact "no information" answers. */
#define TORO_NO_INFO_PT "Não tenho informações suficientes para responder a essa pergunta."
#define TORO_NO_INFO_EN "I don't have enough information to answer this question."

#endif
