/* log.h: structured logs, one JSON object per line on stderr:
 * {"time","level","component","question_id"?,"request_id"?,"message", extra...}.
 * Values of sensitive keys (password, secret, token, key, credential,
 * authorization) are replaced by "[REDACTED]". Thread-safe: a line is written
 * with one write(2). It does not rotate files or ship logs anywhere. */
#ifndef TORO_CORE_LOG_H
#define TORO_CORE_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum { TORO_LOG_DEBUG, TORO_LOG_INFO, TORO_LOG_WARN, TORO_LOG_ERROR } toro_log_level_t;

/* Why: verbosity is chosen once at start (--log-level or TORO_LOG_LEVEL).
 * parse: 0 with *out set for debug|info|warn|error, or TORO_EINVAL with *out
 * untouched. */
void toro_log_set_level(toro_log_level_t level);
int toro_log_level_parse(const char *name, toro_log_level_t *out);

/* Why: the common call; id may be NULL (it is logged as question_id). */
void toro_log(toro_log_level_t level, const char *component, const char *question_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Why: attaches extra key/value string pairs (NULL-terminated list) and
 * applies redaction to each key, so secrets in configuration never reach a log. */
void toro_log_kv(toro_log_level_t level, const char *component, const char *message, ...);

/* A typed field of a log line: a string (NULL = JSON null) or a number. */
typedef struct toro_log_field {
    const char *key;
    const char *str; /* used when !is_num */
    long long num;   /* used when is_num */
    int is_num;
} toro_log_field_t;

#define TORO_LOG_STR(k, v) ((toro_log_field_t){.key = (k), .str = (v)})
#define TORO_LOG_NUM(k, v) ((toro_log_field_t){.key = (k), .num = (long long)(v), .is_num = 1})

/* Why: identifiers and figures (user_id, request_id, status, duration_ms...)
 * belong in fields a log pipeline can filter on, not inside the message text.
 * Sensitive keys are redacted as in toro_log_kv. fields is borrowed. */
void toro_log_fields(toro_log_level_t level, const char *component, const char *message, const toro_log_field_t *fields,
                     size_t n);

/* Why: a condition that repeats fast (accept failing with EMFILE, a store
 * that keeps failing, slow clients) must not flood the log: at most one line
 * per key every TORO_LOG_RATE_MS; the next line that is written says how many
 * were suppressed meanwhile ("... (N similar lines suppressed)"). key is a
 * static string naming the condition; at most 64 distinct keys are tracked
 * (others are logged without limit). Thread-safe. */
#define TORO_LOG_RATE_MS 5000
void toro_log_ratelimited(toro_log_level_t level, const char *component, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Why: exposed for tests and for any code that prints configuration. 1 when
 * the key's value must be redacted, else 0. Logging never fails visibly: a
 * line that cannot be formatted is cut, never a reason to stop. */
int toro_log_key_is_sensitive(const char *key);

#define toro_log_info(comp, qid, ...) toro_log(TORO_LOG_INFO, comp, qid, __VA_ARGS__)
#define toro_log_warn(comp, qid, ...) toro_log(TORO_LOG_WARN, comp, qid, __VA_ARGS__)
#define toro_log_error(comp, qid, ...) toro_log(TORO_LOG_ERROR, comp, qid, __VA_ARGS__)
#define toro_log_debug(comp, qid, ...) toro_log(TORO_LOG_DEBUG, comp, qid, __VA_ARGS__)

#endif
