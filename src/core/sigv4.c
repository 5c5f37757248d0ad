/* sigv4.c: AWS Signature Version 4 (see sigv4.h for what is and is not
 * covered). Every step builds a heap string in a small bounded buffer; the
 * inputs come from toro itself (URLs, headers, JSON bodies it built), so the
 * caps below are generous and only guard against bugs. */
#include "core/strbuf.h"
#include "core/sigv4.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "core/error.h"
#include "core/util.h"

#define MAX_HEADERS 64
#define MAX_PARAMS 128
#define MAX_CREQ (1u << 20) /* canonical request cap (headers + query, not the body) */


static void b_chr(toro_strbuf_t *b, char c)
{
    toro_strbuf_add(b, &c, 1);
}

/* Returns the string (caller frees) or NULL and sets *rc. */
static char *b_take(toro_strbuf_t *b, int *rc)
{
    if (b->err || !b->s) {
        *rc = b->err ? b->err : TORO_ENOMEM;
        free(b->s);
        b->s = NULL;
        return NULL;
    }
    char *s = b->s;
    b->s = NULL;
    return s;
}

static void hex_of(const unsigned char *d, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[d[i] >> 4];
        out[2 * i + 1] = hx[d[i] & 15];
    }
    out[2 * n] = 0;
}

void toro_sigv4_sha256_hex(const void *data, size_t len, char hex[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    unsigned int mdlen = 0;
    EVP_Digest(data ? data : "", len, md, &mdlen, EVP_sha256(), NULL);
    hex_of(md, SHA256_DIGEST_LENGTH, hex);
}

static void hmac256(const unsigned char *key, size_t klen, const char *msg, size_t mlen, unsigned char out[32])
{
    unsigned int olen = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, out, &olen);
}

void toro_sigv4_amz_date(long long unix_seconds, char out[17])
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static int unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

static void encode_into(toro_strbuf_t *b, const char *s, size_t len, int keep_slash)
{
    static const char HX[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            b_chr(b, (char)c);
        } else {
            char e[3] = {'%', HX[c >> 4], HX[c & 15]};
            toro_strbuf_add(b, e, 3);
        }
    }
}

char *toro_sigv4_uri_encode(const char *s, size_t len, int keep_slash)
{
    toro_strbuf_t b = {.max = MAX_CREQ};
    int rc = 0;
    toro_strbuf_add(&b, "", 0);
    encode_into(&b, s, len, keep_slash);
    return b_take(&b, &rc);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) and encodes it canonically. Caller frees. */
static char *reencode(const char *s, size_t len)
{
    char *dec = malloc(len + 1);
    if (!dec)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            dec[n++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            dec[n++] = s[i];
        }
    }
    char *enc = toro_sigv4_uri_encode(dec, n, 0);
    free(dec);
    return enc;
}

typedef struct param {
    char *k, *v;
} param_t;

static int param_cmp(const void *a, const void *b)
{
    const param_t *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

static void canonical_query(toro_strbuf_t *b, const char *q)
{
    if (!q || !*q)
        return;
    param_t ps[MAX_PARAMS];
    size_t np = 0;
    const char *p = q;
    while (*p && !b->err) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > 0) {
            if (np == MAX_PARAMS) {
                b->err = TORO_ETOOBIG;
                break;
            }
            const char *eq = memchr(p, '=', len);
            size_t kl = eq ? (size_t)(eq - p) : len;
            ps[np].k = reencode(p, kl);
            ps[np].v = eq ? reencode(eq + 1, len - kl - 1) : strdup("");
            if (!ps[np].k || !ps[np].v) {
                free(ps[np].k);
                free(ps[np].v);
                b->err = TORO_ENOMEM;
                break;
            }
            np++;
        }
        p = amp ? amp + 1 : p + len;
    }
    qsort(ps, np, sizeof(param_t), param_cmp);
    for (size_t i = 0; i < np; i++) {
        if (i)
            b_chr(b, '&');
        toro_strbuf_str(b, ps[i].k);
        b_chr(b, '=');
        toro_strbuf_str(b, ps[i].v);
        free(ps[i].k);
        free(ps[i].v);
    }
}

typedef struct hdr {
    char *name;  /* lowercased */
    char *value; /* trimmed, runs of blanks collapsed */
} hdr_t;

static char *lower_dup(const char *s)
{
    char *r = strdup(s);
    if (r)
        for (char *p = r; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    return r;
}

static char *trim_collapse(const char *s)
{
    size_t len = strlen(s);
    char *r = malloc(len + 1);
    if (!r)
        return NULL;
    size_t n = 0;
    int space = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            space = 1;
            continue;
        }
        if (space && n > 0)
            r[n++] = ' ';
        space = 0;
        r[n++] = (char)c;
    }
    r[n] = 0;
    return r;
}

/* The request's headers lowercased and trimmed into hs, sorted by name
 * (stable: repeated headers keep their order). *nh counts the entries filled,
 * also on TORO_ENOMEM, for the caller to free. */
static int collect_headers(const toro_sigv4_request_t *req, hdr_t *hs, size_t *nh)
{
    assert(req->n_headers <= MAX_HEADERS);
    for (size_t i = 0; i < req->n_headers; i++) {
        hs[*nh].name = lower_dup(req->headers[i].name);
        hs[*nh].value = trim_collapse(req->headers[i].value ? req->headers[i].value : "");
        (*nh)++;
        if (!hs[*nh - 1].name || !hs[*nh - 1].value)
            return TORO_ENOMEM;
    }
    /* stable insertion sort by name: repeated headers keep their order */
    for (size_t i = 1; i < *nh; i++)
        for (size_t j = i; j > 0 && strcmp(hs[j - 1].name, hs[j].name) > 0; j--) {
            hdr_t t = hs[j];
            hs[j] = hs[j - 1];
            hs[j - 1] = t;
        }
    return 0;
}

/* The canonical header lines ("name:value\n", a repeated header's values
 * joined by commas on one line) into b, and the signed-header list
 * ("a;b;c") into sh. */
static void canonical_headers(toro_strbuf_t *b, toro_strbuf_t *sh, const hdr_t *hs, size_t nh)
{
    for (size_t i = 0; i < nh; i++) {
        if (i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0) {
            /* a repeated header: values joined by commas on one line */
            assert(b->n > 0 || b->err);
            if (b->n == 0)
                return;
            b->n--; /* drop the newline of the previous line */
            b->s[b->n] = 0;
            b_chr(b, ',');
            toro_strbuf_str(b, hs[i].value);
            b_chr(b, '\n');
            continue;
        }
        toro_strbuf_str(b, hs[i].name);
        b_chr(b, ':');
        toro_strbuf_str(b, hs[i].value);
        b_chr(b, '\n');
        if (sh->n)
            b_chr(sh, ';');
        toro_strbuf_str(sh, hs[i].name);
    }
}

int toro_sigv4_canonical_request(const toro_sigv4_request_t *req, char **creq, char **signed_headers)
{
    int rc = 0;
    hdr_t hs[MAX_HEADERS];
    size_t nh = 0;
    toro_strbuf_t b = {.max = MAX_CREQ}, sh = {.max = MAX_CREQ};
    *creq = NULL;
    if (signed_headers)
        *signed_headers = NULL;
    if (!req || !req->method || req->n_headers > MAX_HEADERS)
        return TORO_EINVAL;
    if ((rc = collect_headers(req, hs, &nh)) != 0)
        goto out;
    toro_strbuf_str(&b, req->method);
    b_chr(&b, '\n');
    const char *path = req->path && *req->path ? req->path : "/";
    encode_into(&b, path, strlen(path), 1);
    b_chr(&b, '\n');
    canonical_query(&b, req->query);
    b_chr(&b, '\n');
    canonical_headers(&b, &sh, hs, nh);
    b_chr(&b, '\n');
    toro_strbuf_add(&sh, "", 0);
    toro_strbuf_str(&b, sh.s ? sh.s : "");
    b_chr(&b, '\n');
    if (req->payload_hash) {
        toro_strbuf_str(&b, req->payload_hash);
    } else {
        char hex[65];
        toro_sigv4_sha256_hex(req->body, req->body_len, hex);
        toro_strbuf_str(&b, hex);
    }
    if (b.err || sh.err) {
        rc = b.err ? b.err : sh.err;
        goto out;
    }
    *creq = b_take(&b, &rc);
    if (signed_headers && *creq)
        *signed_headers = b_take(&sh, &rc);
out:
    for (size_t i = 0; i < nh; i++) {
        free(hs[i].name);
        free(hs[i].value);
    }
    free(b.s);
    free(sh.s);
    if (rc) {
        free(*creq);
        *creq = NULL;
    }
    return rc;
}

int toro_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service, const char *creq,
                              char **out)
{
    int rc = 0;
    *out = NULL;
    if (!amz_date || strlen(amz_date) != 16 || !region || !service || !creq)
        return TORO_EINVAL;
    char hex[65];
    toro_sigv4_sha256_hex(creq, strlen(creq), hex);
    toro_strbuf_t b = {.max = MAX_CREQ};
    toro_strbuf_str(&b, "AWS4-HMAC-SHA256\n");
    toro_strbuf_str(&b, amz_date);
    b_chr(&b, '\n');
    toro_strbuf_add(&b, amz_date, 8);
    b_chr(&b, '/');
    toro_strbuf_str(&b, region);
    b_chr(&b, '/');
    toro_strbuf_str(&b, service);
    toro_strbuf_str(&b, "/aws4_request\n");
    toro_strbuf_str(&b, hex);
    *out = b_take(&b, &rc);
    return rc;
}

void toro_sigv4_signing_key(const char *secret, const char *date8, const char *region, const char *service,
                            unsigned char key[32])
{
    assert(secret && date8 && strlen(date8) == 8 && region && service);
    size_t sl = strlen(secret);
    unsigned char *k0 = malloc(sl + 5);
    unsigned char k1[32], k2[32], k3[32];
    if (!k0) {
        memset(key, 0, 32);
        return;
    }
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, sl);
    hmac256(k0, sl + 4, date8, 8, k1);
    hmac256(k1, 32, region, strlen(region), k2);
    hmac256(k2, 32, service, strlen(service), k3);
    hmac256(k3, 32, "aws4_request", 12, key);
    toro_secret_wipe(k0, sl + 4);
    toro_secret_wipe(k1, 32);
    toro_secret_wipe(k2, 32);
    toro_secret_wipe(k3, 32);
    free(k0);
}

int toro_sigv4_sign(const toro_sigv4_request_t *req, const toro_sigv4_credentials_t *cred, const char *region,
                    const char *service, const char *amz_date, char **authorization, char **signature)
{
    int rc;
    char *creq = NULL, *sh = NULL, *sts = NULL;
    *authorization = NULL;
    if (signature)
        *signature = NULL;
    if (!cred || !cred->access_key_id || !cred->secret_access_key)
        return TORO_EINVAL;
    if ((rc = toro_sigv4_canonical_request(req, &creq, &sh)) != 0)
        goto out;
    if ((rc = toro_sigv4_string_to_sign(amz_date, region, service, creq, &sts)) != 0)
        goto out;
    char date8[9];
    memcpy(date8, amz_date, 8);
    date8[8] = 0;
    unsigned char key[32], sig[32];
    toro_sigv4_signing_key(cred->secret_access_key, date8, region, service, key);
    hmac256(key, 32, sts, strlen(sts), sig);
    toro_secret_wipe(key, sizeof key);
    char hex[65];
    hex_of(sig, 32, hex);
    toro_strbuf_t b = {.max = MAX_CREQ};
    toro_strbuf_str(&b, "AWS4-HMAC-SHA256 Credential=");
    toro_strbuf_str(&b, cred->access_key_id);
    b_chr(&b, '/');
    toro_strbuf_str(&b, date8);
    b_chr(&b, '/');
    toro_strbuf_str(&b, region);
    b_chr(&b, '/');
    toro_strbuf_str(&b, service);
    toro_strbuf_str(&b, "/aws4_request, SignedHeaders=");
    toro_strbuf_str(&b, sh);
    toro_strbuf_str(&b, ", Signature=");
    toro_strbuf_str(&b, hex);
    *authorization = b_take(&b, &rc);
    if (!rc && signature && !(*signature = strdup(hex)))
        rc = TORO_ENOMEM;
out:
    if (rc) {
        free(*authorization);
        *authorization = NULL;
    }
    free(creq);
    free(sh);
    free(sts);
    return rc;
}
