/* prompt.h: what the model-backed answerers (openai.c, bedrock.c) share:
 * retrieval of the passages for a question, the grounded prompt built from
 * them (system rules + numbered context), turning the model's text into a
 * toro_answer_t (citations renumbered to the sources actually cited), and the
 * one HTTP POST exchange with bounded retries that both providers use.
 * It does not know any provider's request or response format, and it does
 * not retry across attempts (the process stage does that through the bus
 * when an answerer returns TORO_ERETRY). */
#ifndef TORO_ANSWER_PROMPT_H
#define TORO_ANSWER_PROMPT_H

#include <stddef.h>

#include "answer/answer.h"
#include "kb/kb.h"

#define TORO_PROMPT_TOP_K 5 /* chunks retrieved for a model prompt */

/* ---- retrieval and prompt ------------------------------------------------ */

typedef struct toro_prompt_ctx {
    const char *lang;    /* "pt" or "en" (static string), the question's language */
    toro_kb_hit_t *hits; /* owned; the relevant ones first: passages [1]..[n_passages] */
    size_t n_hits;
    size_t n_passages;   /* relevant hits given to the model (0 = answer "no information") */
} toro_prompt_ctx_t;

/* Why: the one retrieval step of every answerer (extractive, openai,
 * bedrock): the top k chunks (model answerers pass TORO_PROMPT_TOP_K, the
 * extractive one more, to find the question's language), the relevant ones
 * (toro_kb_hit_is_relevant) moved to the front in rank order, and the
 * question's language. Clear ctx with toro_prompt_ctx_clear. *errmsg
 * (caller frees) on failure. */
int toro_prompt_retrieve(toro_kb_t *kb, const char *question, size_t k, toro_prompt_ctx_t *ctx, char **errmsg);
void toro_prompt_ctx_clear(toro_prompt_ctx_t *ctx);

/* Why: the grounding rules of the reference system (answer only from the
 * context, otherwise the exact no-information sentence; cite [n]; lists and
 * bold titles), written in Portuguese, asking for an answer in `lang`. Caller frees. */
char *toro_prompt_system(const char *lang);

/* Why: the user turn: numbered passages [1]..[n] with title and section,
 * then (inside a conversation, see toro_prompt_set_turns) the earlier turns
 * and the question as the user wrote it, then the question. Caller frees;
 * NULL when out of memory. */
char *toro_prompt_user(const char *question, const toro_kb_hit_t *passages, size_t n);

/* One earlier turn of a conversation (borrowed strings; answer may be NULL). */
typedef struct toro_prompt_turn {
    const char *question;
    const char *answer;
} toro_prompt_turn_t;

/* Why: a follow-up is answered with the conversation behind it: the process
 * stage sets the earlier turns (oldest first) and the question as asked
 * around one answerer call on its thread; toro_prompt_user of that thread
 * writes them before the question (the standalone retrieval query). Borrowed
 * until reset with (NULL, 0, NULL); answerers need no change. */
void toro_prompt_set_turns(const toro_prompt_turn_t *turns, size_t n, const char *asked);

/* Why: the exact "no information" answer (found_relevant_docs=false, no
 * sources) for `lang`; used when retrieval finds nothing relevant (no
 * provider call) and when the model itself says so. 0 or TORO_ENOMEM. */
int toro_prompt_no_info(const char *lang, const char *model, const char *kb_version, toro_answer_t *out);

/* Why: citation mapping. Rewrites every [k] / [k, j] marker of text whose
 * numbers refer to passages 1..n into [a][b] with sources renumbered 1..m in
 * order of first appearance; markers with no valid number are dropped.
 * order[i] (capacity n) receives the 0-based passage index of new source i+1
 * and *n_order the count m. *out is caller-freed. */
int toro_prompt_renumber(const char *text, size_t n, char **out, size_t *order, size_t *n_order);

/* Why: turns the model's text into the answer: citations renumbered, sources
 * = the passages cited (all passages when none is cited), the no-information
 * sentence recognized. Fills *out (caller clears); model and kb_version are copied. */
int toro_prompt_finish(const char *text, const char *lang, const toro_kb_hit_t *passages, size_t n,
                       const char *model, const char *kb_version, toro_answer_t *out);

/* Why: a source entry (snippet included) from a retrieved chunk. */
int toro_prompt_source_from_hit(const toro_kb_hit_t *h, toro_source_t *s);
/* Short one-line excerpt (≤ ~240 bytes, UTF-8 safe, "…" when cut). Caller frees. */
char *toro_prompt_snippet(const char *text, size_t len);

/* ---- HTTP exchange with bounded retries ---------------------------------- */

typedef struct toro_provider_http {
    long timeout_ms;         /* whole request (connect + response), TORO_PROVIDER_TIMEOUT_MS, default 30000 */
    int max_retries;         /* in-call retries on 408/429/5xx, TORO_PROVIDER_RETRIES, default 2 */
    long retry_after_max_ms; /* cap on one wait (Retry-After included), TORO_PROVIDER_RETRY_AFTER_MAX_MS, 10000 */
    long backoff_base_ms;    /* wait without Retry-After: base * 2^i, TORO_PROVIDER_BACKOFF_MS, default 500 */
    long max_tokens;         /* TORO_PROVIDER_MAX_TOKENS, default 1024 */
    double temperature;      /* TORO_PROVIDER_TEMPERATURE, default 0.1 */
    int stream;              /* TORO_PROVIDER_STREAM (0/1, default 1): stream when the caller takes deltas */
} toro_provider_http_t;

/* Why: the same knobs for every provider, read once when it is created. */
void toro_provider_http_from_env(toro_provider_http_t *cfg);

struct curl_slist;
/* Builds the request headers for one attempt (SigV4 signs each attempt with
 * its own x-amz-date). Returns a list the caller frees, or NULL with *err set. */
typedef struct curl_slist *(*toro_provider_headers_fn)(void *ud, const char *body, size_t len, char **err);

/* Why: the single HTTP POST both providers make. Returns 0 with the 2xx
 * response body in *resp (caller frees); TORO_ERETRY after the in-call retries
 * are spent on 408/429/5xx (Retry-After / retry-after-ms honored up to the
 * cap) or at once on a timeout or connection failure; TORO_EIO for any other
 * status (a permanent refusal: bad key, bad request, unknown model).
 * *errmsg (caller frees) explains failures without secrets. */
int toro_provider_post(const toro_provider_http_t *cfg, const char *component, const char *url, const char *body,
                       toro_provider_headers_fn headers, void *ud, char **resp, char **errmsg);

/* A streamed 2xx body: when the reply's Content-Type starts with
 * content_type, its bytes go to on_data as they arrive instead of being
 * kept. on_data returns 0, or a negative code that aborts the transfer. */
typedef struct toro_provider_stream {
    const char *content_type; /* "text/event-stream", "application/vnd.amazon.eventstream" */
    int (*on_data)(void *ud, const char *p, size_t n);
    void *ud;
} toro_provider_stream_t;

/* Why: toro_provider_post for a streamed reply. On 0, *resp is NULL when the
 * body went to stream->on_data (the caller checks that its parser saw the
 * end of the stream), or the body when the provider answered with another
 * media type (a server that ignores the stream request). A transfer cut
 * short is TORO_ERETRY; on_data's refusal is its code, with a generic
 * *errmsg the caller may replace. No in-call retry happens once a 2xx body
 * has started (its deltas are out already). stream NULL: toro_provider_post. */
int toro_provider_post_stream(const toro_provider_http_t *cfg, const char *component, const char *url,
                              const char *body, toro_provider_headers_fn headers, void *ud,
                              const toro_provider_stream_t *stream, char **resp, char **errmsg);

/* Why: "<prefix><a><b>" on the heap, for errors and ids. NULL when out of memory. */
char *toro_prompt_strcat3(const char *a, const char *b, const char *c);

#endif
