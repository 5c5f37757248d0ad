/* auth.h: bearer tokens. toro accepts JWTs signed with HS256 and a shared
 * secret, checks signature, exp, nbf, iss and aud, and takes the user from
 * `sub`. In development mode it also issues such tokens itself (the simulated
 * login of the web UI). It does not manage users or passwords. */
#ifndef TORO_GATEWAY_AUTH_H
#define TORO_GATEWAY_AUTH_H

#include <stddef.h>
#include <stdint.h>

typedef struct toro_auth {
    unsigned char secret[256]; /* HMAC key */
    size_t secret_len;
    char issuer[128];          /* required iss ("" = not checked) */
    char audience[128];        /* required aud ("" = not checked) */
    int leeway_s;              /* clock skew allowed on nbf (exp has none) */
    int refuse_dev_issuer;     /* jwt mode: tokens with iss "toro-dev" (development logins) are refused */
    int dev_key_random;        /* dev mode: a key of this process only (no TORO_DEV_SECRET to share) */
    int dev_ttl_s;             /* lifetime of tokens issued by dev login */
} toro_auth_t;

#define TORO_AUTH_DEV_ISSUER "toro-dev"

/* Why: verifies `token` at time `now_s`; on success copies the subject into
 * sub (a valid user id) and returns 0. Otherwise TORO_EINVAL with *why a
 * static message fit for a 401 response. */
int toro_auth_verify(const toro_auth_t *a, const char *token, int64_t now_s, char *sub, size_t sub_cap,
                     const char **why);

/* A cache of tokens toro_auth_verify accepted, for one thread (the
 * gateway's loop): a client sends the same bearer token with every request,
 * and verifying it (two base64 and JSON decodes and an HMAC) was a quarter
 * of the cost of accepting a question. */
typedef struct toro_auth_cache toro_auth_cache_t;

/* Why: one per gateway loop. NULL when out of memory (verify then works uncached). */
toro_auth_cache_t *toro_auth_cache_new(void);
void toro_auth_cache_free(toro_auth_cache_t *c);

/* Why: toro_auth_verify for the request path. A token seen before answers
 * from c when its bytes are identical and now_s is still inside the
 * nbf..exp window checked then (the signature, iss, aud and sub cannot
 * change for identical bytes under one toro_auth_t); anything else is
 * verified in full and, when accepted, remembered. c may be NULL. The
 * same results and *why as toro_auth_verify. */
int toro_auth_verify_cached(const toro_auth_t *a, toro_auth_cache_t *c, const char *token, int64_t now_s, char *sub,
                            size_t sub_cap, const char **why);

/* Why: admin routes (POST /admin/kb/reload). Whether the claims of token,
 * which toro_auth_verify has accepted, grant `role`: a "roles" claim (an
 * array of strings, or one string of space- or comma-separated names) that
 * holds it, or a "role" claim equal to it. false for anything malformed. */
int toro_auth_has_role(const char *token, const char *role);

/* Why: development login and tests. Returns a signed token (caller frees). */
char *toro_auth_issue(const toro_auth_t *a, const char *sub, int64_t now_s, int64_t ttl_s);

#endif
