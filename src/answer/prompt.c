/* prompt.c: retrieval, grounded prompt, citation mapping and the retried
 * HTTP POST shared by the model-backed answerers (see prompt.h). Everything
 * here is reentrant: no state outside the arguments, so process workers can
 * share one answerer. */
#include "core/strbuf.h"
#include "answer/prompt.h"

#include <assert.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

#define SNIPPET_MAX 240
#define PASSAGE_MAX 4000          /* bytes of one chunk put in the prompt */
#define TURN_MAX 600              /* bytes of one earlier question or answer put in the prompt */
#define RESP_MAX (8u << 20)       /* response body cap */
#define ERRBODY_MAX 200           /* bytes of a provider error quoted in errmsg */

/* ---- small growable string with a cap ------------------------------------ */


char *toro_prompt_strcat3(const char *a, const char *b, const char *c)
{
    size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0, lc = c ? strlen(c) : 0;
    char *r = malloc(la + lb + lc + 1);
    if (!r)
        return NULL;
    if (la)
        memcpy(r, a, la);
    if (lb)
        memcpy(r + la, b, lb);
    if (lc)
        memcpy(r + la + lb, c, lc);
    r[la + lb + lc] = 0;
    return r;
}

/* ---- retrieval ------------------------------------------------------------ */

int toro_prompt_retrieve(toro_kb_t *kb, const char *question, size_t k, toro_prompt_ctx_t *ctx, char **errmsg)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->lang = strcmp(toro_kb_detect_lang(question), "en") == 0 ? "en" : "pt";
    int rc = toro_kb_search(kb, question, k, &ctx->hits, &ctx->n_hits);
    if (rc) {
        if (errmsg)
            *errmsg = toro_prompt_strcat3("knowledge-base search failed: ", toro_strerror(rc), NULL);
        return rc;
    }
    /* stable partition: relevant hits first, rank order kept */
    for (size_t i = 0; i < ctx->n_hits; i++) {
        if (!toro_kb_hit_is_relevant(kb, &ctx->hits[i]))
            continue;
        toro_kb_hit_t h = ctx->hits[i];
        for (size_t j = i; j > ctx->n_passages; j--)
            ctx->hits[j] = ctx->hits[j - 1];
        ctx->hits[ctx->n_passages++] = h;
    }
    return 0;
}

void toro_prompt_ctx_clear(toro_prompt_ctx_t *ctx)
{
    if (!ctx)
        return;
    toro_kb_hits_free(ctx->hits, ctx->n_hits);
    memset(ctx, 0, sizeof(*ctx));
}

/* ---- prompt --------------------------------------------------------------- */

char *toro_prompt_system(const char *lang)
{
    int en = lang && strcmp(lang, "en") == 0;
    /* the rules, split around the no-information sentence */
    static const char *const parts[2] = {
        "Você é o Toro AI Assistant, o assistente de investimentos da Toro. Responda à pergunta do usuário "
        "usando SOMENTE as informações das passagens numeradas do contexto, extraídas da base de conhecimento.\n"
        "\n"
        "Regras:\n"
        "1. Use apenas o contexto fornecido. Não use conhecimento externo, não invente dados, taxas, prazos ou "
        "valores e não faça recomendações personalizadas de investimento.\n"
        "2. Se o contexto não contiver informações suficientes para responder, responda exatamente, e apenas: "
        "\"",
        "\"\n"
        "3. Cite as passagens usadas com o número entre colchetes logo após a frase que elas sustentam, por "
        "exemplo [1] ou [2]. Cite somente números de passagens que existem no contexto.\n"
        "4. Formatação: comece com uma resposta direta em uma ou duas frases. Para enumerações use listas com "
        "\"- \" (um item por linha). Quando a resposta tiver mais de uma parte, separe-as com títulos curtos em "
        "negrito (**Título**). Não use tabelas nem cabeçalhos Markdown (#).\n"
        "5. Seja objetivo e claro: no máximo cerca de 200 palavras.\n"
        "6. "};
    const char *no_info = en ? TORO_NO_INFO_EN : TORO_NO_INFO_PT;
    const char *lang_rule = en ? "A pergunta foi feita em inglês: responda em inglês (English)."
                               : "Responda em português do Brasil.";
    toro_strbuf_t b = {0};
    toro_strbuf_str(&b, parts[0]);
    toro_strbuf_str(&b, no_info);
    toro_strbuf_str(&b, parts[1]);
    toro_strbuf_str(&b, lang_rule);
    toro_strbuf_str(&b, "\n");
    if (b.err) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* The conversation set by toro_prompt_set_turns on this thread (borrowed). */
static _Thread_local const toro_prompt_turn_t *cur_turns;
static _Thread_local size_t cur_n_turns;
static _Thread_local const char *cur_asked;

void toro_prompt_set_turns(const toro_prompt_turn_t *turns, size_t n, const char *asked)
{
    assert(turns || n == 0);
    cur_turns = n ? turns : NULL;
    cur_n_turns = n;
    cur_asked = n ? asked : NULL;
}

/* Text up to max bytes, cut at a character boundary. */
static void add_cut(toro_strbuf_t *b, const char *text, size_t max)
{
    size_t tl = text ? strlen(text) : 0;
    if (tl > max) {
        tl = max;
        while (tl > 0 && ((unsigned char)text[tl] & 0xC0) == 0x80)
            tl--;
    }
    toro_strbuf_add(b, text ? text : "", tl);
    if (text && tl < strlen(text))
        toro_strbuf_str(b, "…");
}

/* The earlier turns of the conversation, before the question, so the model
 * reads the follow-up as asked: the retrieval query is the standalone form. */
static void add_turns(toro_strbuf_t *b, const char *question)
{
    if (!cur_n_turns)
        return;
    toro_strbuf_str(b, "\nConversa anterior (a pergunta atual pode depender dela):\n");
    for (size_t i = 0; i < cur_n_turns; i++) {
        toro_strbuf_str(b, "Usuário: ");
        add_cut(b, cur_turns[i].question, TURN_MAX);
        toro_strbuf_str(b, "\nAssistente: ");
        add_cut(b, cur_turns[i].answer ? cur_turns[i].answer : "(sem resposta)", TURN_MAX);
        toro_strbuf_str(b, "\n");
    }
    if (cur_asked && strcmp(cur_asked, question) != 0) {
        toro_strbuf_str(b, "\nPergunta como o usuário a escreveu: ");
        toro_strbuf_str(b, cur_asked);
        toro_strbuf_str(b, "\n");
    }
}

char *toro_prompt_user(const char *question, const toro_kb_hit_t *passages, size_t n)
{
    toro_strbuf_t b = {0};
    toro_strbuf_str(&b, "Contexto:\n");
    for (size_t i = 0; i < n; i++) {
        const toro_kb_hit_t *h = &passages[i];
        char num[32];
        snprintf(num, sizeof num, "\n[%zu] ", i + 1);
        toro_strbuf_str(&b, num);
        toro_strbuf_str(&b, h->title && *h->title ? h->title : (h->doc_id ? h->doc_id : ""));
        if (h->section && *h->section) {
            toro_strbuf_str(&b, " — ");
            toro_strbuf_str(&b, h->section);
        }
        toro_strbuf_str(&b, "\n");
        size_t tl = h->text ? strlen(h->text) : 0;
        if (tl > PASSAGE_MAX) {
            tl = PASSAGE_MAX;
            while (tl > 0 && ((unsigned char)h->text[tl] & 0xC0) == 0x80)
                tl--;
        }
        if (tl)
            toro_strbuf_add(&b, h->text, tl);
        toro_strbuf_str(&b, "\n");
    }
    add_turns(&b, question);
    toro_strbuf_str(&b, "\nPergunta: ");
    toro_strbuf_str(&b, question);
    toro_strbuf_str(&b, "\n");
    if (b.err) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* ---- answers -------------------------------------------------------------- */

char *toro_prompt_snippet(const char *s, size_t len)
{
    size_t n = len;
    int cut = 0;
    while (n > 0 && (s[0] == ' ' || s[0] == '\n')) {
        s++;
        n--;
    }
    if (n > SNIPPET_MAX) {
        n = SNIPPET_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        size_t w = n;
        while (w > SNIPPET_MAX / 2 && s[w] != ' ')
            w--;
        if (w > SNIPPET_MAX / 2)
            n = w;
        cut = 1;
    }
    char *r = malloc(n + 4);
    if (!r)
        return NULL;
    memcpy(r, s, n);
    if (cut)
        memcpy(r + n, "…", 4); /* 3 bytes + NUL */
    else
        r[n] = 0;
    for (char *p = r; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    return r;
}

static char *dup0(const char *s)
{
    return strdup(s ? s : "");
}

int toro_prompt_source_from_hit(const toro_kb_hit_t *h, toro_source_t *s)
{
    memset(s, 0, sizeof(*s));
    s->doc_id = dup0(h->doc_id);
    s->title = dup0(h->title);
    s->section = dup0(h->section);
    s->chunk_id = dup0(h->chunk_id);
    s->snippet = toro_prompt_snippet(h->text ? h->text : "", h->text ? strlen(h->text) : 0);
    s->score = h->score;
    return (s->doc_id && s->title && s->section && s->chunk_id && s->snippet) ? 0 : TORO_ENOMEM;
}

int toro_prompt_no_info(const char *lang, const char *model, const char *kb_version, toro_answer_t *out)
{
    memset(out, 0, sizeof(*out));
    out->text = strdup(lang && strcmp(lang, "en") == 0 ? TORO_NO_INFO_EN : TORO_NO_INFO_PT);
    out->model = dup0(model);
    out->kb_version = dup0(kb_version);
    out->found_relevant_docs = false;
    if (!out->text || !out->model || !out->kb_version) {
        toro_answer_clear(out);
        return TORO_ENOMEM;
    }
    return 0;
}

/* Parses "[k]" / "[k, j]" at text[i] ('['): returns the length of the marker
 * (0 when it is not a citation) and its numbers in nums. */
static size_t parse_marker(const char *t, long *nums, int *nn, int cap)
{
    size_t i = 1;
    *nn = 0;
    for (;;) {
        while (t[i] == ' ')
            i++;
        if (!isdigit((unsigned char)t[i]))
            return 0;
        long v = 0;
        int digits = 0;
        while (isdigit((unsigned char)t[i])) {
            if (++digits > 4)
                return 0;
            v = v * 10 + (t[i] - '0');
            i++;
        }
        if (*nn < cap)
            nums[(*nn)++] = v;
        while (t[i] == ' ')
            i++;
        if (t[i] == ']')
            return i + 1;
        if (t[i] != ',' && t[i] != ';')
            return 0;
        i++;
    }
}

int toro_prompt_renumber(const char *text, size_t n, char **out, size_t *order, size_t *n_order)
{
    toro_strbuf_t b = {0};
    size_t m = 0;
    *out = NULL;
    *n_order = 0;
    toro_strbuf_add(&b, "", 0);
    for (size_t i = 0; text[i];) {
        if (text[i] != '[') {
            size_t j = i;
            while (text[j] && text[j] != '[')
                j++;
            toro_strbuf_add(&b, text + i, j - i);
            i = j;
            continue;
        }
        long nums[16];
        int nn;
        size_t len = parse_marker(text + i, nums, &nn, 16);
        if (len == 0) {
            toro_strbuf_add(&b, "[", 1);
            i++;
            continue;
        }
        int wrote = 0;
        size_t done[16];
        for (int k = 0; k < nn; k++) {
            if (nums[k] < 1 || (size_t)nums[k] > n)
                continue;
            size_t old = (size_t)nums[k] - 1, idx = m;
            for (size_t x = 0; x < m; x++)
                if (order[x] == old)
                    idx = x;
            if (idx == m)
                order[m++] = old;
            int dup = 0;
            for (int d = 0; d < wrote; d++)
                if (done[d] == idx)
                    dup = 1; /* "[1, 1]" */
            if (dup)
                continue;
            done[wrote++] = idx;
            char mk[32];
            snprintf(mk, sizeof mk, "[%zu]", idx + 1);
            toro_strbuf_str(&b, mk);
        }
        if (!wrote && b.n > 0 && b.s[b.n - 1] == ' ' && (text[i + len] == '.' || text[i + len] == ',' ||
                                                       text[i + len] == ' ' || text[i + len] == '\n' ||
                                                       text[i + len] == 0)) {
            b.s[--b.n] = 0; /* drop the space before a removed marker */
        }
        i += len;
    }
    if (b.err) {
        free(b.s);
        return b.err;
    }
    *out = b.s;
    *n_order = m;
    return 0;
}

/* The model's own "no information" answer, with or without the period. */
static int says_no_info(const char *t)
{
    while (*t == ' ' || *t == '\n' || *t == '"' || *t == '*')
        t++;
    const char *s[2] = {TORO_NO_INFO_PT, TORO_NO_INFO_EN};
    for (int i = 0; i < 2; i++) {
        size_t l = strlen(s[i]) - 1; /* without the final period */
        if (strncmp(t, s[i], l) == 0)
            return 1;
    }
    return 0;
}

static char *trim_dup(const char *s)
{
    while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t'))
        n--;
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = 0;
    }
    return r;
}

int toro_prompt_finish(const char *text, const char *lang, const toro_kb_hit_t *passages, size_t n,
                       const char *model, const char *kb_version, toro_answer_t *out)
{
    int rc = 0;
    size_t *order = NULL, m = 0;
    char *renum = NULL, *trimmed = NULL;
    memset(out, 0, sizeof(*out));
    if (!text)
        return TORO_EINVAL;
    trimmed = trim_dup(text);
    if (!trimmed)
        return TORO_ENOMEM;
    if (*trimmed == 0 || n == 0 || says_no_info(trimmed)) {
        rc = toro_prompt_no_info(lang, model, kb_version, out);
        goto out;
    }
    order = calloc(n, sizeof(size_t));
    if (!order) {
        rc = TORO_ENOMEM;
        goto out;
    }
    if ((rc = toro_prompt_renumber(trimmed, n, &renum, order, &m)) != 0)
        goto out;
    if (m == 0) { /* nothing cited: every passage given to the model is a source */
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        m = n;
    }
    out->sources = calloc(m, sizeof(toro_source_t));
    out->model = dup0(model);
    out->kb_version = dup0(kb_version);
    if (!out->sources || !out->model || !out->kb_version) {
        rc = TORO_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < m; i++) {
        out->n_sources = i + 1;
        if ((rc = toro_prompt_source_from_hit(&passages[order[i]], &out->sources[i])) != 0)
            goto out;
    }
    out->text = renum;
    renum = NULL;
    out->found_relevant_docs = true;
out:
    if (rc)
        toro_answer_clear(out);
    free(order);
    free(renum);
    free(trimmed);
    return rc;
}

/* ---- HTTP ----------------------------------------------------------------- */

static long env_long(const char *name, long def, long min, long max)
{
    const char *v = getenv(name);
    long r;
    if (!v || !*v || toro_parse_long(v, min, max, &r) != 0)
        return def;
    return r;
}

void toro_provider_http_from_env(toro_provider_http_t *cfg)
{
    cfg->timeout_ms = env_long("TORO_PROVIDER_TIMEOUT_MS", 30000, 100, 600000);
    cfg->max_retries = (int)env_long("TORO_PROVIDER_RETRIES", 2, 0, 10);
    cfg->retry_after_max_ms = env_long("TORO_PROVIDER_RETRY_AFTER_MAX_MS", 10000, 0, 120000);
    cfg->backoff_base_ms = env_long("TORO_PROVIDER_BACKOFF_MS", 500, 0, 60000);
    cfg->max_tokens = env_long("TORO_PROVIDER_MAX_TOKENS", 1024, 16, 100000);
    cfg->stream = (int)env_long("TORO_PROVIDER_STREAM", 1, 0, 1);
    cfg->temperature = 0.1;
    const char *t = getenv("TORO_PROVIDER_TEMPERATURE");
    if (t && *t) {
        char *end = NULL;
        double d = strtod(t, &end);
        if (end && *end == 0 && d >= 0 && d <= 2)
            cfg->temperature = d;
    }
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct exchange {
    toro_strbuf_t body;
    long retry_after_ms; /* -1 when absent */
    char error_type[96]; /* x-amzn-ErrorType */
    CURL *curl;          /* to read the status and type when the body starts */
    const toro_provider_stream_t *stream; /* NULL: no streaming asked */
    int mode;            /* 0 undecided, 1 kept in body, 2 handed to stream */
    int sink_rc;         /* the stream callback's refusal */
} exchange_t;

/* Where this response's body goes: to the stream sink when streaming was
 * asked and the reply is a 2xx of the streamed media type, else to body. */
static int body_mode(exchange_t *x)
{
    long status = 0;
    const char *ct = NULL;
    if (!x->stream)
        return 1;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->curl, CURLINFO_CONTENT_TYPE, &ct);
    size_t l = strlen(x->stream->content_type);
    return status >= 200 && status < 300 && ct && strncasecmp(ct, x->stream->content_type, l) == 0 ? 2 : 1;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    exchange_t *x = ud;
    size_t n = size * nmemb;
    if (!x->mode)
        x->mode = body_mode(x);
    if (x->mode == 2) {
        x->sink_rc = x->stream->on_data(x->stream->ud, p, n);
        return x->sink_rc ? 0 : n;
    }
    toro_strbuf_add(&x->body, p, n);
    return x->body.err ? 0 : n;
}

static int hname_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen)
{
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return 0;
    const char *v = line + nl + 1;
    const char *e = line + len;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
        e--;
    *value = v;
    *vlen = (size_t)(e - v);
    return 1;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    exchange_t *x = ud;
    size_t n = size * nmemb;
    const char *v;
    size_t vl;
    char tmp[128];
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) { /* a new response (redirect or 100): reset */
        x->retry_after_ms = -1;
        x->error_type[0] = 0;
        return n;
    }
    if (hname_is(p, n, "retry-after-ms", &v, &vl) && vl < sizeof tmp) {
        memcpy(tmp, v, vl);
        tmp[vl] = 0;
        long ms;
        if (toro_parse_long(tmp, 0, 86400000L, &ms) == 0)
            x->retry_after_ms = ms;
    } else if (hname_is(p, n, "retry-after", &v, &vl) && vl < sizeof tmp && x->retry_after_ms < 0) {
        memcpy(tmp, v, vl);
        tmp[vl] = 0;
        long s;
        if (toro_parse_long(tmp, 0, 86400, &s) == 0) {
            x->retry_after_ms = s * 1000;
        } else {
            time_t when = curl_getdate(tmp, NULL); /* HTTP-date form */
            if (when > 0) {
                long d = (long)(when - time(NULL));
                x->retry_after_ms = d > 0 ? d * 1000 : 0;
            }
        }
    } else if (hname_is(p, n, "x-amzn-errortype", &v, &vl)) {
        size_t c = vl < sizeof(x->error_type) - 1 ? vl : sizeof(x->error_type) - 1;
        memcpy(x->error_type, v, c);
        x->error_type[c] = 0;
    }
    return n;
}

/* "HTTP 429 (ThrottlingException): Too many requests" from the response. */
static char *describe_status(long status, const exchange_t *x)
{
    char msg[ERRBODY_MAX + 1] = "";
    json_t *j = x->body.s ? json_loads(x->body.s, 0, NULL) : NULL;
    const char *m = NULL;
    if (j) {
        json_t *e = json_object_get(j, "error");
        if (json_is_object(e))
            m = json_string_value(json_object_get(e, "message"));
        else if (json_is_string(e))
            m = json_string_value(e);
        if (!m)
            m = json_string_value(json_object_get(j, "message"));
        if (!m)
            m = json_string_value(json_object_get(j, "Message"));
    }
    if (!m && x->body.s)
        m = x->body.s;
    if (m) {
        size_t l = strlen(m);
        if (l > ERRBODY_MAX) {
            l = ERRBODY_MAX;
            while (l > 0 && ((unsigned char)m[l] & 0xC0) == 0x80)
                l--;
        }
        memcpy(msg, m, l);
        msg[l] = 0;
        for (char *p = msg; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
    }
    char et[96] = "";
    if (x->error_type[0]) {
        size_t l = strcspn(x->error_type, ":");
        snprintf(et, sizeof et, " (%.*s)", (int)(l < 80 ? l : 80), x->error_type);
    }
    char buf[ERRBODY_MAX + 200];
    snprintf(buf, sizeof buf, "HTTP %ld%s%s%s", status, et, *msg ? ": " : "", msg);
    json_decref(j);
    return strdup(buf);
}

static int transient_status(long status, const exchange_t *x)
{
    if (status == 408 || status == 429 || status >= 500)
        return 1;
    return strstr(x->error_type, "Throttling") != NULL || strstr(x->error_type, "ServiceUnavailable") != NULL ||
           strstr(x->error_type, "ModelNotReady") != NULL;
}

/* One configured easy handle for an attempt (NULL when out of memory). */
static CURL *provider_easy(const toro_provider_http_t *cfg, const char *url, const char *body, size_t blen,
                           struct curl_slist *h, exchange_t *x, char *curl_err)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    x->curl = c;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, cfg->timeout_ms < 10000 ? cfg->timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    return c;
}

/* A transfer that did not complete (cc != CURLE_OK): the code and *why. */
static int transfer_failure(const toro_provider_http_t *cfg, CURLcode cc, const exchange_t *x, const char *curl_err,
                            char **why)
{
    char m[CURL_ERROR_SIZE + 96];
    if (x->sink_rc) {
        snprintf(m, sizeof m, "malformed provider stream (%s)", toro_strerror(x->sink_rc));
        *why = strdup(m);
        return x->sink_rc;
    }
    if (cc == CURLE_OPERATION_TIMEDOUT)
        snprintf(m, sizeof m, "provider timed out after %ld ms", cfg->timeout_ms);
    else if (x->body.err == TORO_ETOOBIG)
        snprintf(m, sizeof m, "provider response larger than %u bytes", RESP_MAX);
    else
        snprintf(m, sizeof m, "provider unreachable: %s", *curl_err ? curl_err : curl_easy_strerror(cc));
    *why = strdup(m);
    return (cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL || x->body.err == TORO_ETOOBIG)
               ? TORO_EIO
               : TORO_ERETRY; /* timeouts, connection failures, streams cut short: retried later through the bus */
}

/* Sleeps before in-call retry attempt+1 (Retry-After honored up to the cap). */
static void retry_wait(const toro_provider_http_t *cfg, const char *component, const exchange_t *x, int attempt,
                       const char *why)
{
    long wait = x->retry_after_ms >= 0 ? x->retry_after_ms : cfg->backoff_base_ms << attempt;
    if (wait > cfg->retry_after_max_ms)
        wait = cfg->retry_after_max_ms;
    toro_log_warn(component, NULL, "provider answered %s; retry %d of %d in %ld ms", why ? why : "?", attempt + 1,
                  cfg->max_retries, wait);
    toro_sleep_ms(wait);
}

int toro_provider_post(const toro_provider_http_t *cfg, const char *component, const char *url, const char *body,
                       toro_provider_headers_fn headers, void *ud, char **resp, char **errmsg)
{
    return toro_provider_post_stream(cfg, component, url, body, headers, ud, NULL, resp, errmsg);
}

int toro_provider_post_stream(const toro_provider_http_t *cfg, const char *component, const char *url,
                              const char *body, toro_provider_headers_fn headers, void *ud,
                              const toro_provider_stream_t *stream, char **resp, char **errmsg)
{
    int rc = TORO_ERETRY;
    size_t blen = strlen(body);
    *resp = NULL;
    if (errmsg)
        *errmsg = NULL;
    pthread_once(&curl_once, curl_init_once);
    for (int attempt = 0;; attempt++) {
        exchange_t x = {.body = {.max = RESP_MAX}, .retry_after_ms = -1, .stream = stream};
        char *herr = NULL, *why = NULL;
        char curl_err[CURL_ERROR_SIZE] = "";
        long status = 0;
        struct curl_slist *h = headers(ud, body, blen, &herr);
        CURL *c = h ? provider_easy(cfg, url, body, blen, h, &x, curl_err) : NULL;
        if (!c) {
            curl_slist_free_all(h);
            if (errmsg)
                *errmsg = herr ? herr : strdup("cannot prepare the provider request");
            else
                free(herr);
            return herr ? TORO_EINVAL : TORO_ENOMEM;
        }
        CURLcode cc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        curl_slist_free_all(h);
        int retry_here = 0;
        if (cc != CURLE_OK) {
            rc = transfer_failure(cfg, cc, &x, curl_err, &why);
        } else if (status >= 200 && status < 300) {
            if (x.mode == 2) /* streamed: nothing kept */
                return 0;
            *resp = x.body.s ? x.body.s : strdup("");
            return *resp ? 0 : TORO_ENOMEM;
        } else {
            why = describe_status(status, &x);
            rc = transient_status(status, &x) ? TORO_ERETRY : TORO_EIO;
            retry_here = rc == TORO_ERETRY && attempt < cfg->max_retries;
        }
        free(x.body.s);
        if (!retry_here) {
            if (errmsg)
                *errmsg = why ? why : strdup(toro_strerror(rc));
            else
                free(why);
            return rc;
        }
        retry_wait(cfg, component, &x, attempt, why);
        free(why);
    }
}
