/* util.c: clocks, UUIDs, UTF-8 counting, trimming, base64url, integer
 * parsing and secret wiping. */
#include "core/util.h"

#include <assert.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"

int64_t toro_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t toro_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void toro_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* UUIDs take their bytes from a per-thread pool filled by RAND_bytes
 * (OpenSSL's CSPRNG) UUID_POOL bytes at a time: one DRBG call per 32 ids
 * instead of one per id (three ids per accepted question). A forked child
 * drops the pool it inherited (pool_gen), so parent and child never hand
 * out the same bytes. */
#define UUID_POOL 512
static _Thread_local unsigned char pool[UUID_POOL];
static _Thread_local size_t pool_left;
static _Thread_local unsigned pool_seen;
static atomic_uint pool_gen = 1;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_forked(void) { atomic_fetch_add(&pool_gen, 1); }
static void pool_init(void) { pthread_atfork(NULL, NULL, pool_forked); }

static void random16(unsigned char b[16])
{
    pthread_once(&pool_once, pool_init);
    unsigned gen = atomic_load(&pool_gen);
    if (pool_seen != gen || pool_left < 16) {
        pool_left = RAND_bytes(pool, sizeof pool) == 1 ? sizeof pool : 0;
        pool_seen = gen;
    }
    if (pool_left >= 16) {
        memcpy(b, pool + sizeof pool - pool_left, 16);
        OPENSSL_cleanse(pool + sizeof pool - pool_left, 16);
        pool_left -= 16;
        return;
    }
    /* RAND_bytes only fails when the system RNG is broken; fall back to
     * clock-derived bytes rather than abort, ids only need uniqueness. */
    int64_t t = toro_mono_ms() ^ toro_now_ms();
    for (size_t i = 0; i < 16; i++)
        b[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)rand();
}

/* The canonical text of 16 bytes (8-4-4-4-12 lowercase hex). */
static void uuid_text(const unsigned char b[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0f];
    }
    out[o] = '\0';
}

void toro_uuid4(char out[37])
{
    unsigned char b[16];
    random16(b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_text(b, out);
}

void toro_uuid7(char out[37])
{
    unsigned char b[16];
    random16(b);
    uint64_t ms = (uint64_t)toro_now_ms();
    for (int i = 0; i < 6; i++) /* 48-bit big-endian Unix milliseconds */
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_text(b, out);
}

void toro_iso8601(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

long toro_utf8_count(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    long count = 0;
    assert(str || !len);
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t need;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            count++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            need = 1;
            cp = c & 0x1f;
            if (cp < 2)
                return -1; /* overlong */
        } else if ((c & 0xf0) == 0xe0) {
            need = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3;
            cp = c & 0x07;
        } else {
            return -1;
        }
        if (i + need >= len)
            return -1;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return -1;
        if (cp >= 0xd800 && cp <= 0xdfff)
            return -1;
        i += need + 1;
        count++;
    }
    return count;
}

static int is_space_at(const unsigned char *s, size_t *adv)
{
    if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f') {
        *adv = 1;
        return 1;
    }
    if (s[0] == 0xc2 && s[1] == 0xa0) { /* no-break space */
        *adv = 2;
        return 1;
    }
    if (s[0] == 0xe2 && s[1] == 0x80 && (s[2] >= 0x80 && s[2] <= 0x8b)) { /* U+2000..U+200B */
        *adv = 3;
        return 1;
    }
    if (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) { /* ideographic space */
        *adv = 3;
        return 1;
    }
    return 0;
}

char *toro_trim_dup(const char *str)
{
    assert(str);
    const unsigned char *s = (const unsigned char *)str;
    size_t len = strlen(str), adv;
    size_t start = 0;
    while (start < len && is_space_at(s + start, &adv))
        start += adv;
    size_t end = start;
    /* Walk forward remembering the end of the last non-space character, so
     * multi-byte spaces at the tail are removed too. */
    for (size_t i = start; i < len;) {
        if (is_space_at(s + i, &adv)) {
            i += adv;
        } else {
            i++;
            while (i < len && (s[i] & 0xc0) == 0x80)
                i++;
            end = i;
        }
    }
    char *out = malloc(end - start + 1);
    if (!out)
        return NULL;
    memcpy(out, str + start, end - start);
    out[end - start] = '\0';
    return out;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *toro_b64url_encode(const unsigned char *d, size_t len)
{
    assert(d || !len);
    char *out = malloc(len * 4 / 3 + 4);
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < len ? (uint32_t)d[i + 1] << 8 : 0);
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = b64[(v >> 6) & 63];
    }
    assert(o < len * 4 / 3 + 4);
    out[o] = '\0';
    return out;
}

static int b64val(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

unsigned char *toro_b64url_decode(const char *s, size_t *outlen)
{
    assert(s && outlen);
    size_t len = strlen(s);
    if (len % 4 == 1)
        return NULL;
    unsigned char *out = malloc(len * 3 / 4 + 2);
    if (!out)
        return NULL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64val(s[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

int toro_parse_long(const char *s, long min, long max, long *out)
{
    assert(out && min <= max);
    if (!s || !*s)
        return TORO_EINVAL;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return TORO_EINVAL;
    *out = v;
    return 0;
}

void toro_secret_wipe(void *p, size_t len)
{
    assert(p || !len);
    if (p && len)
        OPENSSL_cleanse(p, len);
}

void toro_secret_free(char *s)
{
    if (!s)
        return;
    toro_secret_wipe(s, strlen(s));
    free(s);
}

void *toro_grow(void *arr, size_t *cap, size_t n, size_t elem, size_t first)
{
    assert(cap && elem > 0 && first > 0 && n <= *cap && (arr || *cap == 0));
    if (n < *cap)
        return arr;
    if (*cap > SIZE_MAX / 2 / elem)
        return NULL; /* doubling would overflow the byte count */
    size_t ncap = *cap ? *cap * 2 : first;
    void *grown = realloc(arr, ncap * elem);
    if (grown)
        *cap = ncap;
    return grown;
}

/* Whether s is printable ASCII without '"' or '\\' (a JSON string as is). */
static bool json_plain(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f || *s == '"' || *s == '\\')
            return false;
    return true;
}

char *toro_json_plain(const char *prefix, const char *const *kv, size_t n, const char *suffix)
{
    size_t total = strlen(prefix) + strlen(suffix) + 3;
    for (size_t i = 0; i < n; i++) {
        if (!kv[2 * i + 1])
            continue;
        if (!json_plain(kv[2 * i]) || !json_plain(kv[2 * i + 1]))
            return NULL;
        total += strlen(kv[2 * i]) + strlen(kv[2 * i + 1]) + 6;
    }
    char *out = malloc(total);
    if (!out)
        return NULL;
    size_t o = 0;
#define PUT(str)                                                                                                       \
    do {                                                                                                               \
        size_t len_ = strlen(str);                                                                                     \
        memcpy(out + o, str, len_);                                                                                    \
        o += len_;                                                                                                     \
    } while (0)
    PUT(prefix);
    out[o++] = '{';
    for (size_t i = 0, put = 0; i < n; i++) {
        if (!kv[2 * i + 1])
            continue;
        const char *open = put++ ? ",\"" : "\"";
        PUT(open);
        PUT(kv[2 * i]);
        PUT("\":\"");
        PUT(kv[2 * i + 1]);
        PUT("\"");
    }
    out[o++] = '}';
    PUT(suffix);
#undef PUT
    assert(o < total);
    out[o] = '\0';
    return out;
}
