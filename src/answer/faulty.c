/* faulty.c: a fault-injecting wrapper around another answerer, for tests of
 * the retry and error paths through the real binary (the provider failures
 * of the reference, without a provider). Enabled only by the environment
 * variable TORO_FAULT_ANSWERER; `toro serve` logs a warning when it is set.
 * Spec: rules separated by ';', each KIND:N:MARKER — questions containing
 * MARKER fail their first N calls (KIND transient: TORO_ERETRY; permanent:
 * a permanent error). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer/answer.h"
#include "answer/faulty.h"
#include "core/error.h"

#define MAX_RULES 8
#define MAX_SEEN 4096

typedef struct rule {
    int permanent;
    int n;
    char marker[64];
} rule_t;

typedef struct seen {
    unsigned long hash;
    int calls;
} seen_t;

typedef struct faulty {
    toro_answerer_t super;
    toro_answerer_t *inner; /* owned */
    rule_t rules[MAX_RULES];
    int n_rules;
    pthread_mutex_t lock;
    seen_t seen[MAX_SEEN]; /* calls per question text (open addressing) */
} faulty_t;

static unsigned long hash_str(const char *s)
{
    unsigned long h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h ? h : 1;
}

static int calls_for(faulty_t *f, const char *question)
{
    unsigned long h = hash_str(question);
    pthread_mutex_lock(&f->lock);
    size_t i = h % MAX_SEEN;
    int calls = 0;
    for (size_t probe = 0; probe < MAX_SEEN; probe++, i = (i + 1) % MAX_SEEN) {
        if (f->seen[i].hash == h || f->seen[i].hash == 0) {
            f->seen[i].hash = h;
            calls = ++f->seen[i].calls;
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return calls;
}

static int f_answer(toro_answerer_t *self, const char *question, toro_answer_t *out, char **errmsg)
{
    faulty_t *f = (faulty_t *)self;
    for (int i = 0; i < f->n_rules; i++) {
        if (!strstr(question, f->rules[i].marker))
            continue;
        int calls = calls_for(f, question);
        if (calls <= f->rules[i].n) {
            *errmsg = strdup(f->rules[i].permanent ? "provider rejected the request (injected fault)"
                                                   : "provider unavailable (injected fault)");
            return f->rules[i].permanent ? TORO_EIO : TORO_ERETRY;
        }
        break;
    }
    return toro_answerer_answer(f->inner, question, out, errmsg);
}

static void f_destroy(toro_answerer_t *self)
{
    faulty_t *f = (faulty_t *)self;
    toro_answerer_free(f->inner);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static const toro_answerer_ops_t faulty_ops = {.name = "faulty", .answer = f_answer, .destroy = f_destroy};

int toro_answerer_faulty_new(toro_answerer_t *inner, const char *spec, toro_answerer_t **out)
{
    faulty_t *f = calloc(1, sizeof *f);
    if (!f)
        return TORO_ENOMEM;
    for (const char *tok = spec; tok && *tok && f->n_rules < MAX_RULES;) {
        const char *semi = strchr(tok, ';');
        char kind[16], marker[64], rule_text[128];
        int n;
        size_t len = semi ? (size_t)(semi - tok) : strlen(tok);
        if (len >= sizeof rule_text || len == 0 ||
            (memcpy(rule_text, tok, len), rule_text[len] = '\0',
             sscanf(rule_text, "%15[^:]:%d:%63s", kind, &n, marker) != 3) ||
            n < 0 || (strcmp(kind, "transient") != 0 && strcmp(kind, "permanent") != 0)) {
            free(f);
            return TORO_EINVAL;
        }
        rule_t *r = &f->rules[f->n_rules++];
        r->permanent = strcmp(kind, "permanent") == 0;
        r->n = n;
        snprintf(r->marker, sizeof r->marker, "%s", marker);
        tok = semi ? semi + 1 : NULL;
    }
    pthread_mutex_init(&f->lock, NULL);
    f->super.ops = &faulty_ops;
    f->inner = inner;
    *out = &f->super;
    return 0;
}
