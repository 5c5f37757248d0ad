/* live.c: reference-counted knowledge-base generations (see live.h). The
 * current pointer is read and its count raised under one mutex (held for a
 * few instructions, never during an answer), which keeps "read the pointer,
 * then take a reference" atomic without hazard pointers; the count itself
 * is atomic so a release needs no lock. */
#include "answer/live.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"

struct toro_kbgen {
    atomic_long refs;        /* the live answerer's (while current) + calls in flight */
    toro_kb_t *kb;           /* owned */
    toro_embedder_t *emb;    /* owned; attached to kb, freed after it */
    toro_answerer_t *answerer; /* owned; borrows kb */
};

typedef struct live {
    toro_answerer_t base;    /* first: the process stage's answerer */
    toro_answerer_ops_t ops; /* per instance: the first answerer's name and streaming */
    pthread_mutex_t mu;      /* guards cur */
    toro_kbgen_t *cur;
    atomic_long alive;       /* generations not freed */
} live_t;

static void gen_free(live_t *l, toro_kbgen_t *g)
{
    toro_answerer_free(g->answerer);
    toro_kb_close(g->kb);
    toro_embedder_free(g->emb);
    free(g);
    atomic_fetch_sub(&l->alive, 1);
}

toro_kbgen_t *toro_live_acquire(toro_answerer_t *self)
{
    live_t *l = (live_t *)self;
    pthread_mutex_lock(&l->mu);
    toro_kbgen_t *g = l->cur;
    long before = atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&l->mu);
    assert(before >= 1); /* the current generation always holds the live answerer's reference */
    return g;
}

void toro_live_release(toro_answerer_t *self, toro_kbgen_t *g)
{
    long before = atomic_fetch_sub(&g->refs, 1);
    assert(before >= 1);
    if (before == 1)
        gen_free((live_t *)self, g);
}

toro_answerer_t *toro_kbgen_answerer(const toro_kbgen_t *g) { return g->answerer; }

static int live_answer(toro_answerer_t *self, const char *q, toro_answer_t *out, char **errmsg)
{
    toro_kbgen_t *g = toro_live_acquire(self);
    int rc = toro_answerer_answer(g->answerer, q, out, errmsg);
    toro_live_release(self, g);
    return rc;
}

static int live_stream(toro_answerer_t *self, const char *q, toro_answer_delta_fn on_delta, void *ud,
                       toro_answer_t *out, char **errmsg)
{
    toro_kbgen_t *g = toro_live_acquire(self);
    int rc = toro_answerer_answer_streamed(g->answerer, q, on_delta, ud, out, errmsg);
    toro_live_release(self, g);
    return rc;
}

static void live_destroy(toro_answerer_t *self)
{
    live_t *l = (live_t *)self;
    toro_live_release(self, l->cur); /* the last reference: no call may run any more */
    assert(atomic_load(&l->alive) == 0);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static toro_kbgen_t *gen_new(toro_kb_t *kb, toro_embedder_t *emb, toro_answerer_t *a)
{
    toro_kbgen_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    atomic_init(&g->refs, 1);
    g->kb = kb;
    g->emb = emb;
    g->answerer = a;
    return g;
}

int toro_live_new(toro_kb_t *kb, toro_embedder_t *emb, toro_answerer_t *a, toro_answerer_t **out)
{
    assert(a && out);
    live_t *l = calloc(1, sizeof *l);
    toro_kbgen_t *g = l ? gen_new(kb, emb, a) : NULL;
    if (!g) {
        free(l);
        return TORO_ENOMEM;
    }
    l->ops = (toro_answerer_ops_t){.name = a->ops->name, .answer = live_answer, .destroy = live_destroy,
                                   .answer_stream = a->ops->answer_stream ? live_stream : NULL};
    l->base.ops = &l->ops;
    pthread_mutex_init(&l->mu, NULL);
    l->cur = g;
    atomic_init(&l->alive, 1);
    *out = &l->base;
    return 0;
}

int toro_live_swap(toro_answerer_t *self, toro_kb_t *kb, toro_embedder_t *emb, toro_answerer_t *a)
{
    live_t *l = (live_t *)self;
    assert(self->ops->destroy == live_destroy && a);
    toro_kbgen_t *g = gen_new(kb, emb, a);
    if (!g)
        return TORO_ENOMEM;
    atomic_fetch_add(&l->alive, 1);
    pthread_mutex_lock(&l->mu);
    toro_kbgen_t *old = l->cur;
    l->cur = g;
    pthread_mutex_unlock(&l->mu);
    toro_live_release(self, old); /* freed now, or by the last call still on it */
    return 0;
}

void toro_live_version(toro_answerer_t *self, char *buf, size_t cap)
{
    assert(cap > 0);
    toro_kbgen_t *g = toro_live_acquire(self);
    snprintf(buf, cap, "%s", g->kb ? toro_kb_version(g->kb) : "");
    toro_live_release(self, g);
}

long toro_live_generations(toro_answerer_t *self) { return atomic_load(&((live_t *)self)->alive); }
