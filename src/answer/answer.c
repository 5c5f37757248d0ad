/* answer.c: helpers shared by every answerer (freeing an answer). It does
 * not produce answers; see extractive.c. */
#include "answer/answer.h"

#include <stdlib.h>
#include <string.h>

void toro_answer_clear(toro_answer_t *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_sources; i++) {
        free(a->sources[i].doc_id);
        free(a->sources[i].title);
        free(a->sources[i].section);
        free(a->sources[i].chunk_id);
        free(a->sources[i].snippet);
    }
    free(a->sources);
    free(a->text);
    free(a->model);
    free(a->kb_version);
    memset(a, 0, sizeof(*a));
}
