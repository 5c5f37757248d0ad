/* faulty.h: fault injection around an answerer (see faulty.c). */
#ifndef TORO_ANSWER_FAULTY_H
#define TORO_ANSWER_FAULTY_H

#include "answer/answer.h"

/* The longest injected delay a "delay" rule may ask for, in ms. */
#define TORO_FAULT_MAX_DELAY_MS 60000

/* Why: tests of retries and errors through the real binary drive failures
 * with TORO_FAULT_ANSWERER (spec "KIND:N:MARKER;...", KIND transient or
 * permanent: fail the first N calls; KIND delay: sleep N ms before every
 * answer, which benchmarks use as a slow provider; MARKER "*" matches every
 * question; at most 8 rules). On success (0) takes ownership of inner and sets *out; on
 * failure (TORO_EINVAL for a malformed spec, TORO_ENOMEM) *out is untouched
 * and the caller still owns inner. */
int toro_answerer_faulty_new(toro_answerer_t *inner, const char *spec, toro_answerer_t **out);

#endif
