/* faulty.c: a fault-injecting wrapper around another answerer, for tests of
 * the retry and error paths through the real binary (the provider failures
 * of the reference, without a provider). Enabled only by the environment
 * variable TORO_FAULT_ANSWERER; `toro serve` logs a warning when it is set.
 * Spec: rules separated by ';', each KIND:N:MARKER — questions containing
 * MARKER fail their first N calls (KIND transient: TORO_ERETRY; permanent:
 * a permanent error), or with KIND delay every call on them first sleeps N
 * milliseconds (0..TORO_FAULT_MAX_DELAY_MS) and then answers normally: a
 * slow provider, for benchmarks of how workers scale (bench/dist_cost.sh).
 * MARKER '*' matches every question. Delay rules all apply; of the failing
 * rules, the first that matches decides. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "answer/answer.h"
#include "answer/faulty.h"
#include "core/error.h"

#define MAX_RULES 8
#define MAX_SEEN 4096

typedef enum { RULE_TRANSIENT, RULE_PERMANENT, RULE_DELAY } rule_kind_t;

typedef struct rule {
    rule_kind_t kind;
    int n;           /* failing calls, or the delay in ms */
    char marker[64]; /* substring of the question; "*" matches every question */
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

static int matches(const rule_t *r, const char *question)
{
    return strcmp(r->marker, "*") == 0 || strstr(question, r->marker) != NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) /* EINTR: sleep the rest */
        ;
}

static int f_answer(toro_answerer_t *self, const char *question, toro_answer_t *out, char **errmsg)
{
    faulty_t *f = (faulty_t *)self;
    for (int i = 0; i < f->n_rules; i++)
        if (f->rules[i].kind == RULE_DELAY && matches(&f->rules[i], question))
            sleep_ms(f->rules[i].n);
    for (int i = 0; i < f->n_rules; i++) {
        const rule_t *r = &f->rules[i];
        if (r->kind == RULE_DELAY || !matches(r, question))
            continue;
        int calls = calls_for(f, question);
        if (calls <= r->n) {
            int permanent = r->kind == RULE_PERMANENT;
            *errmsg = strdup(permanent ? "provider rejected the request (injected fault)"
                                       : "provider unavailable (injected fault)");
            return permanent ? TORO_EIO : TORO_ERETRY;
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

/* One rule "KIND:N:MARKER" (len bytes at text) into *r. 0 or TORO_EINVAL. */
static int parse_rule(const char *text, size_t len, rule_t *r)
{
    char kind[16], marker[64], rule_text[128];
    int n;
    if (len >= sizeof rule_text || len == 0)
        return TORO_EINVAL;
    memcpy(rule_text, text, len);
    rule_text[len] = '\0';
    if (sscanf(rule_text, "%15[^:]:%d:%63s", kind, &n, marker) != 3 || n < 0)
        return TORO_EINVAL;
    if (strcmp(kind, "transient") == 0)
        r->kind = RULE_TRANSIENT;
    else if (strcmp(kind, "permanent") == 0)
        r->kind = RULE_PERMANENT;
    else if (strcmp(kind, "delay") == 0 && n <= TORO_FAULT_MAX_DELAY_MS)
        r->kind = RULE_DELAY;
    else
        return TORO_EINVAL;
    r->n = n;
    snprintf(r->marker, sizeof r->marker, "%s", marker);
    return 0;
}

int toro_answerer_faulty_new(toro_answerer_t *inner, const char *spec, toro_answerer_t **out)
{
    faulty_t *f = calloc(1, sizeof *f);
    if (!f)
        return TORO_ENOMEM;
    for (const char *tok = spec; tok && *tok;) {
        const char *semi = strchr(tok, ';');
        size_t len = semi ? (size_t)(semi - tok) : strlen(tok);
        if (f->n_rules == MAX_RULES || parse_rule(tok, len, &f->rules[f->n_rules]) != 0) {
            free(f);
            return TORO_EINVAL;
        }
        f->n_rules++;
        tok = semi ? semi + 1 : NULL;
    }
    pthread_mutex_init(&f->lock, NULL);
    f->super.ops = &faulty_ops;
    f->inner = inner;
    *out = &f->super;
    return 0;
}
