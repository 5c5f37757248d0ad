/* openai.c: an answerer backed by any OpenAI-compatible chat-completions
 * endpoint (OpenAI, llama.cpp server, Ollama, vLLM). It retrieves passages
 * from the local knowledge base, answers the fixed "no information" text
 * without calling the model when none is relevant, otherwise POSTs
 * {base}/chat/completions with the grounded prompt and maps the citations of
 * the reply to sources (prompt.c). When the caller takes partial text (and
 * TORO_PROVIDER_STREAM is not 0) the request has `stream: true` and the
 * server-sent events (stream.c) are passed on as they arrive: each chunk's
 * choices[0].delta.content, until `data: [DONE]` or a finish_reason. A
 * stream cut short is TORO_ERETRY; an event that is not JSON is malformed
 * (permanent, like a malformed whole reply). The instance holds only
 * configuration, so concurrent calls are safe. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "answer/factory.h"
#include "answer/prompt.h"
#include "answer/stream.h"
#include "core/strbuf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

typedef struct openai {
    toro_answerer_t base;     /* ops first */
    toro_kb_t *kb;            /* borrowed */
    char *url;                /* {base}/chat/completions */
    char *model;              /* model name sent to the endpoint */
    char *model_label;        /* "openai:<model>", stored with each answer */
    char *auth_header;        /* "Authorization: Bearer ..." or NULL */
    toro_provider_http_t http;
} openai_t;

static struct curl_slist *oa_headers(void *ud, const char *body, size_t len, char **err)
{
    openai_t *o = ud;
    (void)body;
    (void)len;
    (void)err;
    struct curl_slist *h = NULL, *t;
    const char *fixed[] = {"Content-Type: application/json",
                           o->http.stream ? "Accept: application/json, text/event-stream" : "Accept: application/json",
                           "Expect:"};
    for (size_t i = 0; i < 3; i++) {
        if (!(t = curl_slist_append(h, fixed[i])))
            goto fail;
        h = t;
    }
    if (o->auth_header) {
        if (!(t = curl_slist_append(h, o->auth_header)))
            goto fail;
        h = t;
    }
    return h;
fail:
    curl_slist_free_all(h);
    return NULL;
}

static char *request_body(const openai_t *o, const char *system, const char *user, int stream)
{
    json_t *j = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:f, s:I, s:b}", "model", o->model, "messages", "role",
                          "system", "content", system, "role", "user", "content", user, "temperature",
                          o->http.temperature, "max_tokens", (json_int_t)o->http.max_tokens, "stream", stream);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* ---- streamed reply ----------------------------------------------------------- */

typedef struct oa_stream {
    toro_sse_t sse;
    toro_stream_text_t t; /* done: [DONE] or a finish_reason seen */
} oa_stream_t;

static int oa_event(void *ud, const char *data, size_t len)
{
    oa_stream_t *s = ud;
    if (strcmp(data, "[DONE]") == 0) {
        s->t.done = true;
        return 0;
    }
    json_error_t jerr;
    json_t *j = json_loadb(data, len, 0, &jerr);
    json_t *e = json_object_get(j, "error");
    if (!j || e) {
        char m[300];
        const char *em = json_string_value(json_object_get(e, "message"));
        snprintf(m, sizeof m, j ? "provider error in the stream: %.200s" : "malformed stream chunk (%s)",
                 j ? (em ? em : "?") : jerr.text);
        free(s->t.err);
        s->t.err = strdup(m);
        json_decref(j);
        return j ? TORO_ERETRY : TORO_EFORMAT;
    }
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    json_t *t = json_object_get(json_object_get(choice, "delta"), "content");
    int rc = toro_stream_text_add(&s->t, json_string_value(t), json_string_length(t));
    if (json_is_string(json_object_get(choice, "finish_reason")))
        s->t.done = true;
    json_decref(j);
    return rc;
}

static int oa_data(void *ud, const char *p, size_t n)
{
    oa_stream_t *s = ud;
    return toro_sse_feed(&s->sse, p, n);
}

/* The text of a whole (not streamed) reply into *text (caller frees). */
static int oa_parse_reply(const char *resp, char **text, char **err)
{
    json_error_t jerr;
    json_t *j = json_loads(resp, 0, &jerr);
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    const char *t = json_string_value(json_object_get(json_object_get(choice, "message"), "content"));
    int rc = 0;
    if (!t) {
        char m[300];
        snprintf(m, sizeof m, "malformed chat-completions response (%s)",
                 j ? "no choices[0].message.content" : jerr.text);
        *err = strdup(m);
        rc = TORO_EFORMAT;
    } else if (!(*text = strdup(t))) {
        rc = TORO_ENOMEM;
    }
    json_decref(j);
    return rc;
}

/* One exchange with the endpoint: the model's text into *text (caller
 * frees), streamed through on_delta when it is not NULL. */
static int oa_exchange(openai_t *o, const char *body, toro_answer_delta_fn on_delta, void *ud, char **text,
                       char **err)
{
    oa_stream_t st;
    toro_provider_stream_t sink = {"text/event-stream", oa_data, &st};
    char *resp = NULL;
    toro_stream_text_init(&st.t, on_delta, ud);
    toro_sse_init(&st.sse, oa_event, &st);
    int rc = toro_provider_post_stream(&o->http, "openai", o->url, body, oa_headers, o, on_delta ? &sink : NULL,
                                       &resp, err);
    if (rc == 0 && resp) {
        rc = oa_parse_reply(resp, text, err);
    } else if (rc == 0 && (rc = toro_sse_finish(&st.sse)) == 0 && !st.t.done) {
        rc = TORO_ERETRY;
        *err = strdup("provider stream ended before [DONE]");
    }
    if (resp)
        assert(!st.t.text.s && !st.t.err); /* a whole reply: nothing went through the stream */
    else
        rc = toro_stream_text_end(&st.t, rc, text, err);
    toro_sse_clear(&st.sse);
    free(resp);
    return rc;
}

static int oa_answer_stream(toro_answerer_t *self, const char *question, toro_answer_delta_fn on_delta, void *ud,
                            toro_answer_t *out, char **errmsg)
{
    openai_t *o = (openai_t *)self;
    toro_prompt_ctx_t ctx;
    char *system = NULL, *user = NULL, *body = NULL, *text = NULL, *err = NULL;
    int rc;
    memset(out, 0, sizeof(*out));
    if (errmsg)
        *errmsg = NULL;
    if (!o->http.stream)
        on_delta = NULL;
    const char *kbv = toro_kb_version(o->kb);
    if ((rc = toro_prompt_retrieve(o->kb, question, TORO_PROMPT_TOP_K, &ctx, &err)) != 0)
        goto out;
    if (ctx.n_passages == 0) { /* nothing relevant: the fixed answer, no model call */
        rc = toro_prompt_no_info(ctx.lang, o->model_label, kbv, out);
        goto out;
    }
    system = toro_prompt_system(ctx.lang);
    user = toro_prompt_user(question, ctx.hits, ctx.n_passages);
    body = system && user ? request_body(o, system, user, on_delta != NULL) : NULL;
    if (!body) {
        rc = TORO_ENOMEM;
        goto out;
    }
    if ((rc = oa_exchange(o, body, on_delta, ud, &text, &err)) == 0)
        rc = toro_prompt_finish(text, ctx.lang, ctx.hits, ctx.n_passages, o->model_label, kbv, out);
out:
    toro_answer_finish(rc, out, err, errmsg);
    toro_prompt_ctx_clear(&ctx);
    free(system);
    free(user);
    free(body);
    free(text);
    return rc;
}

static int oa_answer(toro_answerer_t *self, const char *question, toro_answer_t *out, char **errmsg)
{
    return oa_answer_stream(self, question, NULL, NULL, out, errmsg);
}

static void oa_destroy(toro_answerer_t *self)
{
    openai_t *o = (openai_t *)self;
    if (!o)
        return;
    free(o->url);
    free(o->model);
    free(o->model_label);
    toro_secret_free(o->auth_header);
    free(o);
}

static const toro_answerer_ops_t OPENAI_OPS = {
    .name = "openai",
    .answer = oa_answer,
    .destroy = oa_destroy,
    .answer_stream = oa_answer_stream,
};

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int toro_answerer_openai_new(toro_kb_t *kb, toro_answerer_t **out, char **err)
{
    *out = NULL;
    if (err)
        *err = NULL;
    if (!kb)
        return TORO_EINVAL;
    const char *base = env("TORO_OPENAI_BASE_URL");
    const char *key = env("TORO_OPENAI_API_KEY");
    if (!key)
        key = env("OPENAI_API_KEY");
    const char *model = env("TORO_OPENAI_MODEL");
    if (!base && !key) {
        if (err)
            *err = strdup("openai answerer not configured: set TORO_OPENAI_BASE_URL (and TORO_OPENAI_MODEL, "
                          "OPENAI_API_KEY as the endpoint needs)");
        return TORO_EUNAVAIL;
    }
    if (!base)
        base = "https://api.openai.com/v1";
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
        if (err)
            *err = strdup("TORO_OPENAI_BASE_URL must start with http:// or https://");
        return TORO_EINVAL;
    }
    if (!model)
        model = "gpt-4o-mini";
    openai_t *o = calloc(1, sizeof(*o));
    if (!o)
        return TORO_ENOMEM;
    o->base.ops = &OPENAI_OPS;
    o->kb = kb;
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    o->url = malloc(bl + sizeof("/chat/completions"));
    if (o->url) {
        memcpy(o->url, base, bl);
        memcpy(o->url + bl, "/chat/completions", sizeof("/chat/completions"));
    }
    o->model = strdup(model);
    o->model_label = toro_prompt_strcat3("openai:", model, NULL);
    o->auth_header = key ? toro_prompt_strcat3("Authorization: Bearer ", key, NULL) : NULL;
    toro_provider_http_from_env(&o->http);
    if (!o->url || !o->model || !o->model_label || (key && !o->auth_header)) {
        oa_destroy(&o->base);
        return TORO_ENOMEM;
    }
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%ld", o->http.timeout_ms);
    toro_log_kv(TORO_LOG_INFO, "openai", "openai answerer ready", "url", o->url, "model", model, "api_key",
                key ? key : "(none)", "timeout_ms", timeout, NULL);
    *out = &o->base;
    return 0;
}
