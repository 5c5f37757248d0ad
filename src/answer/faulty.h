/* faulty.h: fault injection around an answerer (see faulty.c). */
#ifndef TORO_ANSWER_FAULTY_H
#define TORO_ANSWER_FAULTY_H

#include "answer/answer.h"

/* Why: tests of retries and errors through the real binary drive failures
 * with TORO_FAULT_ANSWERER (spec "KIND:N:MARKER;...", KIND transient or
 * permanent). On success (0) takes ownership of inner and sets *out; on
 * failure (TORO_EINVAL for a malformed spec, TORO_ENOMEM) *out is untouched
 * and the caller still owns inner. */
int toro_answerer_faulty_new(toro_answerer_t *inner, const char *spec, toro_answerer_t **out);

#endif
