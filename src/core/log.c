/* log.c: JSON-lines logger with key redaction. Each line is built in memory by
 * jansson and emitted with a single write(2) so lines from threads never mix. */
#include "core/log.h"

#include <assert.h>
#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = TORO_LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void toro_log_set_level(toro_log_level_t level) { atomic_store(&min_level, (int)level); }

int toro_log_level_parse(const char *name, toro_log_level_t *out)
{
    assert(name && out);
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (toro_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

int toro_log_key_is_sensitive(const char *key)
{
    static const char *words[] = {"password", "passwd", "secret", "token", "key", "credential", "authorization", NULL};
    char low[128];
    size_t n = 0;
    for (; key[n] && n < sizeof low - 1; n++)
        low[n] = (char)tolower((unsigned char)key[n]);
    low[n] = '\0';
    for (int i = 0; words[i]; i++)
        if (strstr(low, words[i]))
            return 1;
    return 0;
}

static void stamp(char *buf, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

static void emit(json_t *obj)
{
    char *line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (line) {
        size_t len = strlen(line);
        char *out = malloc(len + 2);
        if (out) {
            memcpy(out, line, len);
            out[len] = '\n';
            ssize_t w = write(STDERR_FILENO, out, len + 1);
            (void)w;
            free(out);
        }
        free(line);
    }
    json_decref(obj);
}

static json_t *base(toro_log_level_t level, const char *component, const char *message)
{
    char ts[40];
    stamp(ts, sizeof ts);
    json_t *o = json_object();
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "level", json_string(level_names[level]));
    json_object_set_new(o, "component", json_string(component ? component : "toro"));
    (void)message;
    return o;
}

void toro_log(toro_log_level_t level, const char *component, const char *question_id, const char *fmt, ...)
{
    if ((int)level < atomic_load(&min_level))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *o = base(level, component, msg);
    if (question_id)
        json_object_set_new(o, "question_id", json_string(question_id));
    json_t *m = json_string(msg);
    json_object_set_new(o, "message", m ? m : json_string("(message not valid UTF-8)"));
    emit(o);
}

void toro_log_kv(toro_log_level_t level, const char *component, const char *message, ...)
{
    if ((int)level < atomic_load(&min_level))
        return;
    json_t *o = base(level, component, message);
    json_object_set_new(o, "message", json_string(message));
    va_list ap;
    va_start(ap, message);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (toro_log_key_is_sensitive(k))
            json_object_set_new(o, k, json_string("[REDACTED]"));
        else
            json_object_set_new(o, k, v ? json_string(v) : json_null());
    }
    va_end(ap);
    emit(o);
}

void toro_log_fields(toro_log_level_t level, const char *component, const char *message, const toro_log_field_t *fields,
                     size_t n)
{
    if ((int)level < atomic_load(&min_level))
        return;
    json_t *o = base(level, component, message);
    json_t *m = json_string(message ? message : "");
    json_object_set_new(o, "message", m ? m : json_string("(message not valid UTF-8)"));
    for (size_t i = 0; i < n; i++) {
        const toro_log_field_t *f = &fields[i];
        json_t *v;
        if (toro_log_key_is_sensitive(f->key))
            v = json_string("[REDACTED]");
        else if (f->is_num)
            v = json_integer(f->num);
        else if (!f->str)
            v = json_null();
        else if (!(v = json_string(f->str)))
            v = json_string("(not valid UTF-8)");
        json_object_set_new(o, f->key, v);
    }
    emit(o);
}

typedef struct rate_slot {
    const char *key;    /* NULL = free */
    int64_t last_ms;    /* monotonic time of the last line written */
    long suppressed;    /* lines dropped since */
} rate_slot_t;

static rate_slot_t rate_slots[64];
static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void toro_log_ratelimited(toro_log_level_t level, const char *component, const char *key, const char *fmt, ...)
{
    if ((int)level < atomic_load(&min_level))
        return;
    long suppressed = 0;
    int64_t now = mono_ms();
    pthread_mutex_lock(&rate_lock);
    rate_slot_t *slot = NULL;
    for (size_t i = 0; i < sizeof rate_slots / sizeof *rate_slots; i++) {
        if (!rate_slots[i].key || strcmp(rate_slots[i].key, key) == 0) {
            slot = &rate_slots[i];
            break;
        }
    }
    if (slot && !slot->key) {
        slot->key = key;
        slot->last_ms = now - TORO_LOG_RATE_MS;
    }
    if (slot) {
        if (now - slot->last_ms < TORO_LOG_RATE_MS) {
            slot->suppressed++;
            pthread_mutex_unlock(&rate_lock);
            return;
        }
        suppressed = slot->suppressed;
        slot->suppressed = 0;
        slot->last_ms = now;
    }
    pthread_mutex_unlock(&rate_lock);
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (suppressed)
        toro_log(level, component, NULL, "%s (%ld similar lines suppressed)", msg, suppressed);
    else
        toro_log(level, component, NULL, "%s", msg);
}
