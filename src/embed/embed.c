/* embed.c: the embedder front: --embedder SPEC parsing, the LRU cache of
 * query vectors, and the query/passage entry points over a backend's ops.
 * The cache is a fixed array scanned linearly (1024 entries cost about a
 * microsecond, against tens of milliseconds for one model call), guarded by
 * one mutex held only for the scan, never during a model call. It does not
 * know any model: backends are e5.c, openai.c, none.c. */
#include "embed/embed.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

typedef struct cache_entry {
    uint64_t hash;  /* FNV-1a of the text (0 = empty slot) */
    char *text;     /* owned copy, compared on a hash match */
    float *vec;     /* owned, dim floats */
    uint64_t used;  /* tick of the last use (LRU) */
} cache_entry_t;

struct toro_embed_cache {
    pthread_mutex_t mu;
    cache_entry_t *v;
    size_t cap, dim;
    uint64_t tick;
    size_t hits, misses;
};

#define QUERY_MAX_BYTES 8192 /* longer questions are embedded uncached */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ? h : 1;
}

static toro_embed_cache_t *cache_new(size_t cap, size_t dim)
{
    toro_embed_cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->v = calloc(cap, sizeof(cache_entry_t));
    if (!c->v) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->cap = cap;
    c->dim = dim;
    return c;
}

static void cache_free(toro_embed_cache_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->cap; i++) {
        free(c->v[i].text);
        free(c->v[i].vec);
    }
    free(c->v);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Copies the cached vector of text into out; 1 on a hit. */
static int cache_get(toro_embed_cache_t *c, const char *text, uint64_t h, float *out)
{
    int hit = 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->cap; i++)
        if (c->v[i].hash == h && strcmp(c->v[i].text, text) == 0) {
            memcpy(out, c->v[i].vec, c->dim * sizeof(float));
            c->v[i].used = ++c->tick;
            hit = 1;
            break;
        }
    if (hit)
        c->hits++;
    else
        c->misses++;
    pthread_mutex_unlock(&c->mu);
    return hit;
}

/* Stores a copy of (text, vec), evicting the least recently used entry.
 * Allocation failure only means the vector is not cached. */
static void cache_put(toro_embed_cache_t *c, const char *text, uint64_t h, const float *vec)
{
    char *t = strdup(text);
    float *v = malloc(c->dim * sizeof(float));
    if (!t || !v) {
        free(t);
        free(v);
        return;
    }
    memcpy(v, vec, c->dim * sizeof(float));
    pthread_mutex_lock(&c->mu);
    size_t victim = 0;
    for (size_t i = 0; i < c->cap; i++) {
        if (c->v[i].hash == h && strcmp(c->v[i].text, text) == 0) { /* another thread was first */
            victim = c->cap;
            break;
        }
        if (c->v[i].used < c->v[victim].used)
            victim = i;
    }
    if (victim < c->cap) {
        cache_entry_t *e = &c->v[victim];
        free(e->text);
        free(e->vec);
        e->hash = h;
        e->text = t;
        e->vec = v;
        e->used = ++c->tick;
        t = NULL;
        v = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    free(t);
    free(v);
}

void toro_embed_normalize(float *v, size_t dim)
{
    double s = 0;
    for (size_t i = 0; i < dim; i++)
        s += (double)v[i] * v[i];
    if (s <= 0)
        return;
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < dim; i++)
        v[i] *= inv;
}

int toro_embedder_open(const char *spec, toro_embedder_t **out, char **err)
{
    *out = NULL;
    int rc;
    if (!spec || !*spec || strcmp(spec, "none") == 0)
        rc = toro_embedder_none_new(out);
    else if (strcmp(spec, "e5") == 0)
        rc = toro_embedder_e5_new(NULL, out, err);
    else if (strncmp(spec, "e5:", 3) == 0)
        rc = toro_embedder_e5_new(spec + 3, out, err);
    else if (strncmp(spec, "openai+http://", 14) == 0 || strncmp(spec, "openai+https://", 15) == 0)
        rc = toro_embedder_openai_new(spec + 7, out, err);
    else {
        toro_set_err(err,
                     "unknown embedder '%s' (use e5, e5:/path/model.bin, "
                     "openai+http://host:port/v1?model=NAME or none)",
                     spec);
        return TORO_EINVAL;
    }
    if (rc)
        return rc;
    toro_embedder_t *e = *out;
    if (e->dim && (rc = toro_embedder_cache_init(e, TORO_EMBED_CACHE_DEFAULT)) != 0) {
        toro_embedder_free(e);
        *out = NULL;
    }
    return rc;
}

int toro_embedder_cache_init(toro_embedder_t *e, size_t cap)
{
    cache_free(e->cache);
    e->cache = NULL;
    if (cap == 0 || e->dim == 0)
        return 0;
    e->cache = cache_new(cap, e->dim);
    return e->cache ? 0 : TORO_ENOMEM;
}

void toro_embedder_free(toro_embedder_t *e)
{
    if (!e)
        return;
    cache_free(e->cache);
    e->ops->destroy(e);
}

int toro_embedder_is_none(const toro_embedder_t *e)
{
    return !e || e->dim == 0;
}

int toro_embedder_query(toro_embedder_t *e, const char *text, float *out, char **err)
{
    if (toro_embedder_is_none(e)) {
        toro_set_err(err, "no embedder configured");
        return TORO_EINVAL;
    }
    size_t len = strlen(text);
    uint64_t h = fnv1a(text);
    int cacheable = e->cache && len <= QUERY_MAX_BYTES;
    if (cacheable && cache_get(e->cache, text, h, out))
        return 0;
    const char *one[1] = {text};
    int rc = e->ops->embed(e, one, 1, 1, out, err);
    if (rc == 0 && cacheable)
        cache_put(e->cache, text, h, out);
    return rc;
}

int toro_embedder_passages(toro_embedder_t *e, const char *const *texts, size_t n, float *out, char **err)
{
    if (toro_embedder_is_none(e)) {
        toro_set_err(err, "no embedder configured");
        return TORO_EINVAL;
    }
    return n ? e->ops->embed(e, texts, n, 0, out, err) : 0;
}

void toro_embedder_cache_stats(const toro_embedder_t *e, size_t *hits, size_t *misses)
{
    *hits = *misses = 0;
    if (!e || !e->cache)
        return;
    pthread_mutex_lock(&e->cache->mu);
    *hits = e->cache->hits;
    *misses = e->cache->misses;
    pthread_mutex_unlock(&e->cache->mu);
}

void toro_embedder_set_concurrency(toro_embedder_t *e, int lanes)
{
    if (e && e->ops->set_concurrency)
        e->ops->set_concurrency(e, lanes);
}

void toro_embedder_engine_stats(const toro_embedder_t *e, size_t *calls, size_t *texts)
{
    *calls = *texts = 0;
    if (e && e->ops->engine_stats)
        e->ops->engine_stats(e, calls, texts);
}
