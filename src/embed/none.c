/* none.c: the "none" embedder: no vectors, BM25 only. Its dim is 0, which is
 * how callers recognize it (toro_embedder_is_none); embedding through it is
 * an error, never an empty or made-up vector. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "embed/embed.h"

static int none_embed(toro_embedder_t *e, const char *const *texts, size_t n, int is_query, float *out, char **err)
{
    (void)e;
    (void)texts;
    (void)n;
    (void)is_query;
    (void)out;
    toro_set_err(err, "the 'none' embedder computes no vectors");
    return TORO_EINVAL;
}

static void none_destroy(toro_embedder_t *e)
{
    free(e);
}

static const toro_embedder_ops_t none_ops = {"none", none_embed, none_destroy, NULL, NULL};

int toro_embedder_none_new(toro_embedder_t **out)
{
    toro_embedder_t *e = calloc(1, sizeof(*e));
    if (!e)
        return TORO_ENOMEM;
    e->ops = &none_ops;
    memcpy(e->identity, "none", 5);
    *out = e;
    return 0;
}
