/* auth.c: HS256 JWT verification and issuing on OpenSSL HMAC (see auth.h).
 * Only "alg":"HS256" is accepted (never "none", never another algorithm
 * chosen by the token); the signature is compared in constant time. */
#include "gateway/auth.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/question.h"
#include "core/util.h"

#define MAX_TOKEN 4096

static int hs256(const toro_auth_t *a, const char *data, size_t len, unsigned char out[32])
{
    unsigned int olen = 0;
    if (!HMAC(EVP_sha256(), a->secret, (int)a->secret_len, (const unsigned char *)data, len, out, &olen) || olen != 32)
        return -1;
    return 0;
}

static json_t *decode_part(const char *start, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, start, len);
    copy[len] = '\0';
    size_t n;
    unsigned char *raw = toro_b64url_decode(copy, &n);
    free(copy);
    if (!raw)
        return NULL;
    json_t *j = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    return j;
}

static int check_aud(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (json_is_array(aud)) {
        for (size_t i = 0; i < json_array_size(aud); i++) {
            json_t *v = json_array_get(aud, i);
            if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
                return 1;
        }
    }
    return 0;
}

/* toro_auth_verify, also giving the token's time window on success: valid
 * while *nbf_at <= now < *exp_at (INT64_MIN when it has no nbf). */
static int verify(const toro_auth_t *a, const char *token, int64_t now_s, char *sub, size_t sub_cap, const char **why,
                  int64_t *nbf_at, int64_t *exp_at)
{
    json_t *hdr = NULL, *claims = NULL;
    unsigned char *sig = NULL;
    int rc = TORO_EINVAL;
    *why = "invalid token";
    size_t tlen = token ? strlen(token) : 0;
    if (tlen == 0 || tlen > MAX_TOKEN) {
        *why = tlen ? "token too long" : "missing bearer token";
        goto out;
    }
    const char *d1 = strchr(token, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d1 || !d2 || strchr(d2 + 1, '.'))
        goto out;
    hdr = decode_part(token, (size_t)(d1 - token));
    claims = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!json_is_object(hdr) || !json_is_object(claims))
        goto out;
    json_t *alg = json_object_get(hdr, "alg");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "HS256") != 0) {
        *why = "unsupported token algorithm (HS256 required)";
        goto out;
    }
    size_t siglen;
    sig = toro_b64url_decode(d2 + 1, &siglen);
    unsigned char mac[32];
    if (!sig || siglen != 32 || hs256(a, token, (size_t)(d2 - token), mac) != 0 || CRYPTO_memcmp(mac, sig, 32) != 0) {
        *why = "invalid token signature";
        goto out;
    }
    json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
    if (!json_is_integer(exp) && !json_is_real(exp)) {
        *why = "token has no exp";
        goto out;
    }
    *exp_at = (int64_t)json_number_value(exp);
    *nbf_at = nbf && json_is_number(nbf) ? (int64_t)json_number_value(nbf) - a->leeway_s : INT64_MIN;
    if (*exp_at <= now_s) { /* no leeway: a token is never used past its exp */
        *why = "token expired";
        goto out;
    }
    if (nbf && (!json_is_number(nbf) || *nbf_at > now_s)) {
        *why = "token not valid yet";
        goto out;
    }
    json_t *iss_claim = json_object_get(claims, "iss");
    if (a->refuse_dev_issuer && json_is_string(iss_claim) &&
        strcmp(json_string_value(iss_claim), TORO_AUTH_DEV_ISSUER) == 0) {
        *why = "development tokens are not accepted";
        goto out;
    }
    if (a->issuer[0]) {
        json_t *iss = iss_claim;
        if (!json_is_string(iss) || strcmp(json_string_value(iss), a->issuer) != 0) {
            *why = "token issuer not accepted";
            goto out;
        }
    }
    if (a->audience[0] && !check_aud(json_object_get(claims, "aud"), a->audience)) {
        *why = "token audience not accepted";
        goto out;
    }
    json_t *s = json_object_get(claims, "sub");
    if (!json_is_string(s) || !toro_user_id_is_valid(json_string_value(s)) || strlen(json_string_value(s)) >= sub_cap) {
        *why = "token subject is not a valid user id";
        goto out;
    }
    snprintf(sub, sub_cap, "%s", json_string_value(s));
    rc = 0;
out:
    json_decref(hdr);
    json_decref(claims);
    free(sig);
    return rc;
}

int toro_auth_verify(const toro_auth_t *a, const char *token, int64_t now_s, char *sub, size_t sub_cap,
                     const char **why)
{
    int64_t nbf_at, exp_at;
    return verify(a, token, now_s, sub, sub_cap, why, &nbf_at, &exp_at);
}

/* The cache of accepted tokens: direct-mapped by a hash of the token; a
 * slot is used only when its whole token equals the one presented
 * (compared in constant time) and now is inside the window verify saw. */
#define CACHE_SLOTS 1024
#define CACHE_MAX_TOKEN 2048 /* longer tokens are verified every time */

typedef struct cache_slot {
    char *token;     /* the accepted token (owned), NULL = empty */
    size_t len;
    uint64_t hash;
    int64_t nbf_at;  /* valid while nbf_at <= now < exp_at */
    int64_t exp_at;
    char sub[160];   /* its subject, a valid user id */
} cache_slot_t;

struct toro_auth_cache {
    cache_slot_t slots[CACHE_SLOTS];
};

toro_auth_cache_t *toro_auth_cache_new(void) { return calloc(1, sizeof(toro_auth_cache_t)); }

void toro_auth_cache_free(toro_auth_cache_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        free(c->slots[i].token);
    free(c);
}

static uint64_t token_hash(const char *t, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)t[i]) * 1099511628211ull;
    return h;
}

int toro_auth_verify_cached(const toro_auth_t *a, toro_auth_cache_t *c, const char *token, int64_t now_s, char *sub,
                            size_t sub_cap, const char **why)
{
    size_t len = token ? strnlen(token, CACHE_MAX_TOKEN + 1) : 0;
    if (!c || len == 0 || len > CACHE_MAX_TOKEN)
        return toro_auth_verify(a, token, now_s, sub, sub_cap, why);
    uint64_t h = token_hash(token, len);
    cache_slot_t *sl = &c->slots[h % CACHE_SLOTS];
    if (sl->token && sl->hash == h && sl->len == len && CRYPTO_memcmp(sl->token, token, len) == 0 &&
        sl->nbf_at <= now_s && now_s < sl->exp_at && strlen(sl->sub) < sub_cap) {
        snprintf(sub, sub_cap, "%s", sl->sub);
        return 0;
    }
    int64_t nbf_at, exp_at;
    int rc = verify(a, token, now_s, sub, sub_cap, why, &nbf_at, &exp_at);
    if (rc == 0 && strlen(sub) < sizeof sl->sub) {
        char *copy = malloc(len + 1);
        if (copy) {
            memcpy(copy, token, len + 1);
            free(sl->token);
            *sl = (cache_slot_t){.token = copy, .len = len, .hash = h, .nbf_at = nbf_at, .exp_at = exp_at};
            snprintf(sl->sub, sizeof sl->sub, "%s", sub);
        }
    }
    return rc;
}

/* Whether the list "a b,c" holds word. */
static int list_has(const char *list, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, " ,");
        if (n == wl && strncmp(p, word, n) == 0)
            return 1;
        p += n;
        p += strspn(p, " ,");
    }
    return 0;
}

int toro_auth_has_role(const char *token, const char *role)
{
    const char *d1 = token ? strchr(token, '.') : NULL;
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d2 || !role || !*role)
        return 0;
    json_t *claims = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
    json_t *roles = json_object_get(claims, "roles"), *one = json_object_get(claims, "role");
    int found = json_is_string(one) && strcmp(json_string_value(one), role) == 0;
    if (json_is_string(roles))
        found = found || list_has(json_string_value(roles), role);
    for (size_t i = 0; json_is_array(roles) && i < json_array_size(roles); i++) {
        json_t *v = json_array_get(roles, i);
        found = found || (json_is_string(v) && strcmp(json_string_value(v), role) == 0);
    }
    json_decref(claims);
    return found;
}

static char *b64_json(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s)
        return NULL;
    char *e = toro_b64url_encode((unsigned char *)s, strlen(s));
    free(s);
    return e;
}

char *toro_auth_issue(const toro_auth_t *a, const char *sub, int64_t now_s, int64_t ttl_s)
{
    char *h = b64_json(json_pack("{s:s, s:s}", "alg", "HS256", "typ", "JWT"));
    json_t *c = json_pack("{s:s, s:I, s:I, s:I}", "sub", sub, "iat", (json_int_t)now_s, "nbf", (json_int_t)now_s,
                          "exp", (json_int_t)(now_s + ttl_s));
    if (c && a->issuer[0])
        json_object_set_new(c, "iss", json_string(a->issuer));
    if (c && a->audience[0])
        json_object_set_new(c, "aud", json_string(a->audience));
    char *p = c ? b64_json(c) : NULL;
    char *out = NULL;
    if (h && p) {
        size_t n = strlen(h) + strlen(p) + 2;
        char *signing = malloc(n);
        unsigned char mac[32];
        if (signing) {
            snprintf(signing, n, "%s.%s", h, p);
            char *sig = hs256(a, signing, n - 1, mac) == 0 ? toro_b64url_encode(mac, 32) : NULL;
            if (sig) {
                size_t total = n + strlen(sig) + 1;
                out = malloc(total);
                if (out)
                    snprintf(out, total, "%s.%s", signing, sig);
                free(sig);
            }
            free(signing);
        }
    }
    free(h);
    free(p);
    return out;
}
