/* limits.c: bounded open-addressing table of token buckets and counters. */
#include "gateway/limits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char key[132];   /* "" = free slot */
    double tokens;
    int64_t last_ms; /* last refill */
    int count;
} entry_t;

struct toro_limits {
    double rate, burst;
    size_t cap;      /* slots (power of two, twice max_keys) */
    size_t used;
    size_t max_keys;
    entry_t *slots;
};

toro_limits_t *toro_limits_new(double rate, double burst, size_t max_keys)
{
    toro_limits_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->rate = rate;
    l->burst = burst < 1 ? 1 : burst;
    l->max_keys = max_keys ? max_keys : 1;
    l->cap = 16;
    while (l->cap < l->max_keys * 2)
        l->cap *= 2;
    l->slots = calloc(l->cap, sizeof *l->slots);
    if (!l->slots) {
        free(l);
        return NULL;
    }
    return l;
}

void toro_limits_free(toro_limits_t *l)
{
    if (!l)
        return;
    free(l->slots);
    free(l);
}

static size_t hash_key(const char *s)
{
    size_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static void refill(toro_limits_t *l, entry_t *e, int64_t now_ms)
{
    if (now_ms > e->last_ms) {
        e->tokens = fmin(l->burst, e->tokens + l->rate * (double)(now_ms - e->last_ms) / 1000.0);
        e->last_ms = now_ms;
    }
}

/* Rebuilds the table without idle entries (full buckets, no count). */
static void purge(toro_limits_t *l, int64_t now_ms)
{
    entry_t *old = l->slots;
    entry_t *fresh = calloc(l->cap, sizeof *fresh);
    if (!fresh)
        return;
    l->slots = fresh;
    l->used = 0;
    for (size_t i = 0; i < l->cap; i++) {
        entry_t *e = &old[i];
        if (!e->key[0])
            continue;
        if (now_ms >= 0)
            refill(l, e, now_ms);
        if (e->count == 0 && e->tokens >= l->burst)
            continue;
        size_t j = hash_key(e->key) & (l->cap - 1);
        while (fresh[j].key[0])
            j = (j + 1) & (l->cap - 1);
        fresh[j] = *e;
        l->used++;
    }
    free(old);
}

static entry_t *find(toro_limits_t *l, const char *key, int64_t now_ms)
{
    size_t i = hash_key(key) & (l->cap - 1);
    for (;;) {
        entry_t *e = &l->slots[i];
        if (!e->key[0])
            break;
        if (strcmp(e->key, key) == 0)
            return e;
        i = (i + 1) & (l->cap - 1);
    }
    if (l->used >= l->max_keys) {
        purge(l, now_ms);
        if (l->used >= l->max_keys)
            return NULL; /* every tracked key is busy: refuse to grow */
        return find(l, key, now_ms);
    }
    entry_t *e = &l->slots[i];
    snprintf(e->key, sizeof e->key, "%s", key);
    e->tokens = l->burst;
    e->last_ms = now_ms;
    e->count = 0;
    l->used++;
    return e;
}

int toro_limits_take(toro_limits_t *l, const char *key, int64_t now_ms)
{
    if (l->rate <= 0)
        return 0;
    entry_t *e = find(l, key, now_ms);
    if (!e)
        return 1;
    refill(l, e, now_ms);
    if (e->tokens >= 1.0) {
        e->tokens -= 1.0;
        return 0;
    }
    int wait = (int)ceil((1.0 - e->tokens) / l->rate);
    return wait < 1 ? 1 : wait;
}

int toro_limits_count(toro_limits_t *l, const char *key, int delta)
{
    entry_t *e = find(l, key, -1);
    if (!e)
        return delta > 0 ? 1 << 30 : 0;
    e->count += delta;
    if (e->count < 0)
        e->count = 0;
    return e->count;
}

int toro_limits_take_kind(toro_limits_t *l, const char *kind, const char *key, int64_t now_ms)
{
    char k[sizeof(((entry_t *)0)->key)];
    int n = snprintf(k, sizeof k, "%s:%s", kind, key);
    if (n < 0 || (size_t)n >= sizeof k)
        return 1; /* cannot be tracked: refuse rather than share a bucket */
    return toro_limits_take(l, k, now_ms);
}
