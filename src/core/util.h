/* util.h: small leaf helpers every layer uses: clocks, ids, UTF-8 checks,
 * trimming, base64url, integer parsing, secret wiping. No allocation policy
 * beyond "caller frees" results. */
#ifndef TORO_CORE_UTIL_H
#define TORO_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why: stored timestamps are wall-clock milliseconds since the epoch. */
int64_t toro_now_ms(void);
/* Why: latencies and timeouts use a clock that never jumps. */
int64_t toro_mono_ms(void);
/* Why: sleeps that a shutdown should not have to wait out are short loops of this. */
void toro_sleep_ms(int64_t ms);

/* Why: connection and request ids are random UUIDv4 strings (37 bytes with NUL). */
void toro_uuid4(char out[37]);
/* Why: question and conversation ids are UUIDv7 (RFC 9562: 48 bits of Unix
 * milliseconds, then 74 random bits): ids made later sort later, so the
 * store's indexes on them grow at their end (one page written per group
 * commit, not one random page per question). They reveal the creation
 * millisecond, which the API returns as created_at anyway. */
void toro_uuid7(char out[37]);

/* Why: API timestamps are ISO 8601 UTC with milliseconds (25 bytes with NUL).
 * Cannot fail: out is always written. */
void toro_iso8601(int64_t ms, char out[32]);

/* Why: inputs must be valid UTF-8 and their length is counted in characters.
 * Returns the number of code points, or -1 when the bytes are not valid UTF-8
 * (overlong forms, surrogates, truncated sequences included). s may be NULL
 * when len is 0. */
long toro_utf8_count(const char *s, size_t len);

/* Why: user_id and question are trimmed of Unicode-agnostic ASCII/Latin
 * whitespace before validation. Returns a new string (caller frees), or NULL
 * when out of memory. */
char *toro_trim_dup(const char *s);

/* Why: pagination tokens are opaque base64url strings (no padding). Caller
 * frees; NULL when out of memory. */
char *toro_b64url_encode(const unsigned char *data, size_t len);
/* Returns decoded bytes with a NUL appended (caller frees) and their count in
 * *len, or NULL for input that is not base64url (or out of memory) with *len
 * untouched. */
unsigned char *toro_b64url_decode(const char *s, size_t *len);

/* Why: bounded, checked integer parsing instead of atoi: the whole string in
 * base 10, within [min, max]. 0 with *out set, or TORO_EINVAL (empty, NULL,
 * trailing characters, out of range) with *out untouched. */
int toro_parse_long(const char *s, long min, long max, long *out);

/* Why: keys, tokens and signing material are wiped before their memory is
 * reused, in one way the compiler may not drop as a dead store
 * (OPENSSL_cleanse), instead of a memset each module remembers or forgets.
 * p may be NULL when len is 0. */
void toro_secret_wipe(void *p, size_t len);
/* Why: most secrets are NUL-terminated strings owned by one struct (an API
 * key, an "Authorization: Bearer ..." header): wipes s's bytes and frees it.
 * Takes ownership; toro_secret_free(NULL) is a no-op. */
void toro_secret_free(char *s);

/* Why: appending to a growable array is the same few lines everywhere.
 * Returns arr with room for one more element (n used of *cap, each elem
 * bytes; the capacity doubles, first when it is 0), or NULL when out of
 * memory or when the doubled size would overflow, with arr and *cap unchanged (the array still valid and owned by
 * the caller). Usage: p = toro_grow(a, &cap, n, sizeof *a, 16); if (p) a = p; */
void *toro_grow(void *arr, size_t *cap, size_t n, size_t elem, size_t first);

/* Why: the small JSON objects of the question accept path (its bus event,
 * its 202 body) built without a JSON library's tree and dump, a fifth of
 * the cost of accepting a question. Returns prefix {"k":"v",...} suffix
 * (compact, in the given order; kv holds n key/value pairs, a NULL value
 * leaves its pair out), caller frees. NULL when a key or value needs JSON
 * escaping (anything but printable ASCII without '"' and '\\': callers
 * then use jansson) or when out of memory. */
char *toro_json_plain(const char *prefix, const char *const *kv, size_t n, const char *suffix);

#endif
