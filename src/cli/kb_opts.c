/* kb_opts.c: --embedder, --min-relevance, --mode, --fusion for every command
 * that opens a knowledge base (see kb_opts.h). */
#include "cli/kb_opts.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"

/* The embedder per the default rule, or NULL for none. */
static int choose_embedder(const toro_kb_opts_t *o, toro_kb_t *kb, toro_embedder_t **emb, char **err)
{
    *emb = NULL;
    if (o->embedder) {
        int rc = toro_embedder_open(o->embedder, emb, err);
        if (rc == 0 && toro_embedder_is_none(*emb)) {
            toro_embedder_free(*emb);
            *emb = NULL;
        }
        return rc;
    }
    const char *id = toro_kb_embedder_identity(kb);
    if (!toro_kb_has_vectors(kb)) {
        toro_log_info("kb", NULL, "embedder: none (snapshot %s has no vectors): BM25 retrieval", toro_kb_version(kb));
        return 0;
    }
    if (strncmp(id, "e5:", 3) != 0 || !toro_embedder_e5_available()) {
        toro_log_warn("kb", NULL,
                      "embedder: none (snapshot vectors are from '%s'; pass --embedder to use them): BM25 retrieval",
                      id);
        return 0;
    }
    int rc = toro_embedder_open("e5", emb, err);
    if (rc == 0 && strcmp((*emb)->identity, id) != 0) {
        toro_log_warn("kb", NULL, "embedder: none (snapshot vectors are from '%s', the installed e5 is '%s')", id,
                      (*emb)->identity);
        toro_embedder_free(*emb);
        *emb = NULL;
    }
    return rc;
}

int toro_kb_opts_fusion(toro_kb_t *kb, const char *spec, char **err)
{
    char *end = NULL;
    if (strcmp(spec, "rrf") == 0) {
        toro_kb_set_fusion(kb, TORO_KB_FUSION_RRF, 0);
        return 0;
    }
    if (strncmp(spec, "convex", 6) == 0 && !spec[6]) {
        toro_kb_set_fusion(kb, TORO_KB_FUSION_CONVEX, 0.5);
        return 0;
    }
    if (strncmp(spec, "convex:", 7) == 0) {
        double w = strtod(spec + 7, &end);
        if (end && end != spec + 7 && (*end == 0 || *end == ',') && w >= 0 && w <= 1) {
            toro_kb_set_fusion(kb, TORO_KB_FUSION_CONVEX, w);
            return 0;
        }
    }
    toro_set_err(err, "--fusion must be rrf or convex[:W] (W = cosine weight 0..1), got '%s'", spec);
    return TORO_EINVAL;
}

int toro_kb_opts_apply(const toro_kb_opts_t *o, toro_kb_t *kb, toro_embedder_t **emb, char **err)
{
    int rc = choose_embedder(o, kb, emb, err);
    if (rc)
        return rc;
    if ((rc = toro_kb_attach_embedder(kb, *emb, err)) != 0)
        goto fail;
    if (o->min_relevance) {
        char *end = NULL;
        double v = strtod(o->min_relevance, &end);
        if (!end || *end || end == o->min_relevance || !(v >= 0 && v <= 1)) {
            toro_set_err(err, "--min-relevance must be a number from 0 to 1");
            rc = TORO_EINVAL;
            goto fail;
        }
        toro_kb_set_min_relevance(kb, v);
    }
    if (o->fusion && !strchr(o->fusion, ',') && (rc = toro_kb_opts_fusion(kb, o->fusion, err)) != 0)
        goto fail;
    if (o->mode) {
        int m = toro_kb_mode_parse(o->mode);
        if (m < 0) {
            toro_set_err(err, "--mode must be bm25, dense or hybrid");
            rc = TORO_EINVAL;
            goto fail;
        }
        if (toro_kb_set_mode(kb, (toro_kb_mode_t)m) != 0) {
            toro_set_err(err, "--mode %s needs a snapshot built with an embedder and that embedder (--embedder)",
                         o->mode);
            rc = TORO_EINVAL;
            goto fail;
        }
    }
    toro_log_info("kb", NULL, "retrieval: %s, embedder %s, min relevance %.2f", toro_kb_mode_name(toro_kb_mode(kb)),
                  *emb ? (*emb)->identity : "none", toro_kb_min_relevance(kb));
    return 0;
fail:
    toro_kb_attach_embedder(kb, NULL, NULL);
    toro_embedder_free(*emb);
    *emb = NULL;
    return rc;
}

int toro_kb_opts_open(const char *path, const toro_kb_opts_t *o, toro_kb_t **kb, toro_embedder_t **emb, char **err)
{
    *kb = NULL;
    *emb = NULL;
    int rc = toro_kb_open(path, kb, err);
    if (rc == 0 && (rc = toro_kb_opts_apply(o, *kb, emb, err)) != 0) { /* it left *emb NULL */
        toro_kb_close(*kb);
        *kb = NULL;
    }
    return rc;
}
