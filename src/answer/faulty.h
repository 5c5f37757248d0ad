/* faulty.h: fault injection around an answerer (see faulty.c). */
#ifndef TORO_ANSWER_FAULTY_H
#define TORO_ANSWER_FAULTY_H

#include "answer/answer.h"

/* Why: tests of retries and errors through the real binary. Takes ownership
 * of inner (also on failure? no: on failure the caller still owns inner). */
int toro_answerer_faulty_new(toro_answerer_t *inner, const char *spec, toro_answerer_t **out);

#endif
