/* answer.c: helpers shared by every answerer (freeing an answer, ending a
 * call, the evaluation adapter). It does not produce answers; see
 * extractive.c, openai.c, bedrock.c. */
#include "answer/answer.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

void toro_answer_clear(toro_answer_t *a)
{
    if (!a)
        return;
    toro_sources_free(a->sources, a->n_sources);
    free(a->text);
    free(a->model);
    free(a->kb_version);
    memset(a, 0, sizeof(*a));
}

int toro_answer_finish(int rc, toro_answer_t *out, char *err, char **errmsg)
{
    if (rc) {
        toro_answer_clear(out);
        if (errmsg) {
            *errmsg = err ? err : strdup(toro_strerror(rc));
            return rc;
        }
    }
    free(err);
    return rc;
}

int toro_answerer_eval_fn(void *ud, const char *question, char **text, int *found)
{
    toro_answer_t a;
    char *err = NULL;
    int rc = toro_answerer_answer(ud, question, &a, &err);
    free(err);
    if (rc)
        return rc;
    *text = a.text;
    a.text = NULL;
    *found = a.found_relevant_docs;
    toro_answer_clear(&a);
    return 0;
}
