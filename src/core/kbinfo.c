/* kbinfo.c: the serving snapshot's version and reload counts (see kbinfo.h). */
#include "core/kbinfo.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char version[128]; /* guarded by mu; "" = none */
static atomic_long reloads[2]; /* [0] refused, [1] ok */

void toro_kbinfo_set(const char *v)
{
    pthread_mutex_lock(&mu);
    snprintf(version, sizeof version, "%s", v ? v : "");
    pthread_mutex_unlock(&mu);
}

bool toro_kbinfo_get(char *buf, size_t cap)
{
    if (cap == 0)
        return false;
    pthread_mutex_lock(&mu);
    snprintf(buf, cap, "%s", version);
    pthread_mutex_unlock(&mu);
    return buf[0] != '\0';
}

void toro_kbinfo_reload(bool ok) { atomic_fetch_add(&reloads[ok ? 1 : 0], 1); }

long toro_kbinfo_render(char *buf, size_t cap)
{
    char v[128];
    bool set = toro_kbinfo_get(v, sizeof v);
    for (char *p = v; *p; p++) /* a label value: no quote, backslash or newline to escape */
        if (*p == '"' || *p == '\\' || *p == '\n')
            *p = '_';
    int n = snprintf(buf, cap,
                     "# HELP toro_kb_info The knowledge-base snapshot this process serves.\n"
                     "# TYPE toro_kb_info gauge\n%s%s%s"
                     "# HELP toro_kb_reloads_total Knowledge-base reloads by outcome (refused: the old one kept serving).\n"
                     "# TYPE toro_kb_reloads_total counter\n"
                     "toro_kb_reloads_total{outcome=\"ok\"} %ld\ntoro_kb_reloads_total{outcome=\"refused\"} %ld\n",
                     set ? "toro_kb_info{version=\"" : "", set ? v : "", set ? "\"} 1\n" : "",
                     atomic_load(&reloads[1]), atomic_load(&reloads[0]));
    return n < 0 || (size_t)n >= cap ? -1 : n;
}
