/* live.h: a knowledge base swapped while serving. A generation is one
 * snapshot with its embedder and the answerer built on it. The live
 * answerer forwards every call to the current generation and holds a
 * reference on it for the whole call, so a swap never changes the snapshot
 * under a question in flight: the old generation is freed when its last
 * call returns (or at once when none runs). The process stage sees an
 * ordinary answerer (same name, same streaming ability as the first
 * generation's answerer). */
#ifndef TORO_ANSWER_LIVE_H
#define TORO_ANSWER_LIVE_H

#include <stddef.h>

#include "answer/answer.h"
#include "embed/embed.h"
#include "kb/kb.h"

typedef struct toro_kbgen toro_kbgen_t;

/* Why: wraps the first generation. On 0 takes ownership of kb, emb (may be
 * NULL) and a (which borrows kb) and sets *out; on TORO_ENOMEM the caller
 * still owns all three and *out is untouched. */
int toro_live_new(toro_kb_t *kb, toro_embedder_t *emb, toro_answerer_t *a, toro_answerer_t **out);

/* Why: SIGHUP and POST /admin/kb/reload install a new snapshot. On 0 takes
 * ownership of kb, emb and a; new calls use them from now on, calls in
 * flight finish on the old generation. On TORO_ENOMEM nothing changes and
 * the caller still owns all three. live must come from toro_live_new. */
int toro_live_swap(toro_answerer_t *live, toro_kb_t *kb, toro_embedder_t *emb, toro_answerer_t *a);

/* Why: /healthz and the reload log: the current generation's kb version
 * ("" when its kb is NULL) copied into buf (always NUL-terminated). */
void toro_live_version(toro_answerer_t *live, char *buf, size_t cap);

/* Why: tests and diagnostics: generations not yet freed (the current one
 * plus old ones still referenced by calls in flight). */
long toro_live_generations(toro_answerer_t *live);

/* A reference on the current generation (never NULL); release it with
 * toro_live_release. Between the two the generation's answerer and kb stay
 * valid whatever swaps happen. */
toro_kbgen_t *toro_live_acquire(toro_answerer_t *live);
void toro_live_release(toro_answerer_t *live, toro_kbgen_t *g);
toro_answerer_t *toro_kbgen_answerer(const toro_kbgen_t *g);

#endif
