/* bedrock.c: the Amazon Bedrock answerers, both signed with SigV4
 * (sigv4.c; service name "bedrock") from the standard AWS environment
 * credentials:
 *
 * - "bedrock": Bedrock Runtime Converse API. Local retrieval and the grounded
 *   prompt of prompt.c, POST {endpoint}/model/{modelId}/converse, the reply's
 *   citations mapped to the passages. Nothing relevant: the fixed
 *   "no information" answer, no call. When the caller takes partial text
 *   (and TORO_PROVIDER_STREAM is not 0) it calls ConverseStream instead,
 *   POST {endpoint}/model/{modelId}/converse-stream, whose reply is an AWS
 *   event stream (stream.c, CRCs checked): the text of each
 *   contentBlockDelta is passed on as it arrives, messageStop ends it. A
 *   corrupt frame or a stream cut short is TORO_ERETRY, like an exception
 *   event for throttling or a server fault; other exceptions are permanent.
 * - "bedrock-kb": the reference's Knowledge-Base mode. Retrieval and generation
 *   both happen in AWS: POST {agent endpoint}/retrieveAndGenerate with the
 *   knowledge-base id and model ARN; its citations become the sources and
 *   [n] markers are inserted at each cited span's end (span offsets counted
 *   in Unicode code points). The local snapshot is not used.
 *
 * Throttling (429 / ThrottlingException) and 5xx are retried by
 * toro_provider_post, then reported as TORO_ERETRY. The instance holds only
 * configuration; each call signs its own request, so concurrent calls are safe.
 * Credentials are read once at creation (no refresh of expiring session tokens). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "answer/factory.h"
#include "answer/prompt.h"
#include "answer/stream.h"
#include "core/aws_http.h"
#include "core/sigv4.h"
#include "core/strbuf.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

#define DEFAULT_MODEL_ID "us.amazon.nova-pro-v1:0"
#define SIGNING_SERVICE "bedrock"
#define KB_MAX_SOURCES 64

typedef struct bedrock {
    toro_answerer_t base;  /* ops first */
    toro_kb_t *kb;         /* borrowed; unused in KB mode */
    int kb_mode;           /* 0 Converse, 1 RetrieveAndGenerate */
    char *url;             /* full request URL */
    char *host;            /* Host header value (host[:port]) */
    char *path;            /* request path as sent (signed) */
    char *stream_path;     /* Converse: the converse-stream path; NULL in KB mode */
    char *stream_url;
    char *region;
    char *access_key;      /* credentials (never logged) */
    char *secret_key;
    char *session_token;   /* NULL without temporary credentials */
    char *model_id;        /* Converse model id */
    char *kb_id;           /* KB mode */
    char *model_arn;       /* KB mode */
    char *model_label;     /* "bedrock:<id>" / "bedrock-kb:<arn>" */
    char *kb_label;        /* KB mode kb_version: "bedrock-kb:<kb id>" */
    toro_provider_http_t http;
} bedrock_t;

/* One request: where it goes and the media type accepted. */
typedef struct br_req {
    const bedrock_t *b;
    const char *url;
    const char *accept;
} br_req_t;

/* Signs one attempt (x-amz-date is the time of this attempt); Accept is
 * sent unsigned. */
static struct curl_slist *br_headers(void *ud, const char *body, size_t len, char **err)
{
    const br_req_t *r = ud;
    const bedrock_t *b = r->b;
    assert(b && r->url && r->accept && b->access_key && b->secret_key);
    const toro_aws_creds_t cred = {b->access_key, b->secret_key, b->session_token};
    const toro_aws_request_t req = {.url = r->url, .service = SIGNING_SERVICE, .region = b->region,
                                    .content_type = "application/json", .body = body, .body_len = len};
    struct curl_slist *h = toro_aws_signed_headers(&req, &cred, err);
    char *line = h ? toro_prompt_strcat3("Accept", ": ", r->accept) : NULL;
    struct curl_slist *t = line ? curl_slist_append(h, line) : NULL;
    free(line);
    if (h && !t) {
        curl_slist_free_all(h);
        toro_set_err(err, "out of memory");
    }
    return t;
}

static char *json_take(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

static int fail_format(const char *what, json_t *j, const json_error_t *jerr, char **err)
{
    char m[300];
    snprintf(m, sizeof m, "malformed Bedrock response (%s)", j ? what : jerr->text);
    *err = strdup(m);
    return TORO_EFORMAT;
}

/* ---- Converse --------------------------------------------------------------- */

/* The Converse request body: the grounding rules as the system prompt, the
 * question with its numbered passages as the user turn. NULL when out of memory. */
static char *converse_body(const bedrock_t *b, const char *question, const toro_prompt_ctx_t *ctx)
{
    char *system = toro_prompt_system(ctx->lang), *user = toro_prompt_user(question, ctx->hits, ctx->n_passages);
    char *body = NULL;
    if (system && user)
        body = json_take(json_pack("{s:[{s:s}], s:[{s:s, s:[{s:s}]}], s:{s:I, s:f}}", "system", "text", system,
                                   "messages", "role", "user", "content", "text", user, "inferenceConfig", "maxTokens",
                                   (json_int_t)b->http.max_tokens, "temperature", b->http.temperature));
    free(system);
    free(user);
    return body;
}

/* The text blocks of a whole Converse reply, in order (other block types
 * are skipped), into *text (caller frees). */
static int converse_parse_reply(const char *resp, char **text, char **err)
{
    json_error_t jerr;
    json_t *j = json_loads(resp, 0, &jerr);
    json_t *content = json_object_get(json_object_get(json_object_get(j, "output"), "message"), "content");
    toro_strbuf_t b = {0};
    size_t i;
    json_t *blk;
    json_array_foreach(content, i, blk)
    {
        json_t *t = json_object_get(blk, "text");
        if (json_is_string(t))
            toro_strbuf_add(&b, json_string_value(t), json_string_length(t));
    }
    int rc = b.err;
    if (!rc && (!json_is_array(content) || b.n == 0))
        rc = fail_format("no output.message.content[].text", j, &jerr, err);
    json_decref(j);
    if (rc)
        free(b.s);
    else
        *text = b.s;
    return rc;
}

/* ---- ConverseStream ----------------------------------------------------------- */

typedef struct br_stream {
    toro_evs_t evs;
    toro_stream_text_t t; /* done: messageStop seen */
    int cb_rc;            /* the event handler's refusal (0: a framing error) */
} br_stream_t;

/* An exception event: throttling and server faults are retried. */
static int br_exception(br_stream_t *s, const toro_evs_msg_t *m)
{
    const char *type = m->exception_type ? m->exception_type : m->error_code ? m->error_code : "unknown";
    json_t *j = json_loadb(m->payload, m->payload_len, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "message"));
    char buf[400];
    snprintf(buf, sizeof buf, "Bedrock stream exception (%.80s): %.200s", type, msg ? msg : "");
    json_decref(j);
    free(s->t.err);
    s->t.err = strdup(buf);
    const char *transient[] = {"throttling", "serviceUnavailable", "internalServer", "modelStreamError",
                               "modelNotReady"};
    for (size_t i = 0; i < sizeof transient / sizeof *transient; i++)
        if (strncasecmp(type, transient[i], strlen(transient[i])) == 0)
            return TORO_ERETRY;
    return TORO_EIO;
}

static int br_event(void *ud, const toro_evs_msg_t *m)
{
    br_stream_t *s = ud;
    int rc = 0;
    if (m->message_type && strcmp(m->message_type, "event") != 0) {
        rc = br_exception(s, m);
    } else if (m->event_type && strcmp(m->event_type, "messageStop") == 0) {
        s->t.done = true;
    } else if (m->event_type && strcmp(m->event_type, "contentBlockDelta") == 0) {
        json_error_t jerr;
        json_t *j = json_loadb(m->payload, m->payload_len, 0, &jerr);
        json_t *t = json_object_get(json_object_get(j, "delta"), "text");
        if (!j)
            rc = fail_format("", NULL, &jerr, &s->t.err);
        else
            rc = toro_stream_text_add(&s->t, json_string_value(t), json_string_length(t));
        json_decref(j);
    }
    s->cb_rc = rc;
    return rc;
}

static int br_data(void *ud, const char *p, size_t n)
{
    br_stream_t *s = ud;
    int rc = toro_evs_feed(&s->evs, p, n);
    if (rc && !s->cb_rc && !s->t.err) { /* the framing itself: a corrupt transfer */
        s->t.err = strdup(rc == TORO_ETOOBIG ? "Bedrock event-stream frame too large"
                                           : "corrupt Bedrock event stream (bad CRC or length)");
        rc = rc == TORO_ETOOBIG ? TORO_EIO : TORO_ERETRY;
    }
    return rc;
}

/* One Converse or ConverseStream exchange: the model's text into *text
 * (caller frees), streamed through on_delta when it is not NULL. */
static int converse_exchange(bedrock_t *b, const char *body, toro_answer_delta_fn on_delta, void *ud, char **text,
                             char **err)
{
    br_stream_t st = {.cb_rc = 0};
    toro_provider_stream_t sink = {"application/vnd.amazon.eventstream", br_data, &st};
    br_req_t req = {b, on_delta ? b->stream_url : b->url,
                    on_delta ? "application/vnd.amazon.eventstream" : "application/json"};
    char *resp = NULL;
    toro_stream_text_init(&st.t, on_delta, ud);
    toro_evs_init(&st.evs, br_event, &st);
    int rc = toro_provider_post_stream(&b->http, "bedrock", on_delta ? b->stream_url : b->url, body, br_headers,
                                       &req, on_delta ? &sink : NULL, &resp, err);
    if (rc == 0 && resp) {
        rc = converse_parse_reply(resp, text, err);
    } else if (rc == 0 && (toro_evs_finish(&st.evs) != 0 || !st.t.done)) {
        rc = TORO_ERETRY;
        *err = strdup("Bedrock stream ended before messageStop");
    }
    if (resp)
        assert(!st.t.text.s && !st.t.err); /* a whole reply: nothing went through the stream */
    else
        rc = toro_stream_text_end(&st.t, rc, text, err);
    toro_evs_clear(&st.evs);
    free(resp);
    return rc;
}

static int converse_answer(bedrock_t *b, const char *question, toro_answer_delta_fn on_delta, void *ud,
                           toro_answer_t *out, char **err)
{
    toro_prompt_ctx_t ctx;
    char *body = NULL, *text = NULL;
    int rc;
    assert(!b->kb_mode && b->kb);
    const char *kbv = toro_kb_version(b->kb);
    if ((rc = toro_prompt_retrieve(b->kb, question, TORO_PROMPT_TOP_K, &ctx, err)) != 0)
        goto out;
    if (ctx.n_passages == 0) {
        rc = toro_prompt_no_info(ctx.lang, b->model_label, kbv, out);
        goto out;
    }
    if (!(body = converse_body(b, question, &ctx))) {
        rc = TORO_ENOMEM;
        goto out;
    }
    if ((rc = converse_exchange(b, body, b->http.stream ? on_delta : NULL, ud, &text, err)) == 0)
        rc = toro_prompt_finish(text, ctx.lang, ctx.hits, ctx.n_passages, b->model_label, kbv, out);
out:
    toro_prompt_ctx_clear(&ctx);
    free(body);
    free(text);
    return rc;
}

/* ---- RetrieveAndGenerate ----------------------------------------------------- */

typedef struct mark {
    size_t end;     /* byte offset in the output text */
    size_t seq;     /* citation order, to keep the sort stable */
    char text[96];  /* "[1][2]" */
} mark_t;

static int mark_cmp(const void *a, const void *b)
{
    const mark_t *x = a, *y = b;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* Byte offset of code point `cp` in s (clamped to the end). */
static size_t cp_to_byte(const char *s, size_t len, json_int_t cp)
{
    size_t i = 0;
    for (json_int_t c = 0; c < cp && i < len; c++) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
    }
    return i;
}

static char *doc_id_of(const char *uri)
{
    const char *slash = strrchr(uri, '/');
    const char *base = slash ? slash + 1 : uri;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot > base ? (size_t)(dot - base) : strlen(base);
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, base, n);
        r[n] = 0;
    }
    return r;
}

static const char *meta_str(json_t *meta, const char *k)
{
    return json_string_value(json_object_get(meta, k));
}

/* Index of the source for a retrieved reference, added when new; -1 on error. */
static long kb_source(toro_answer_t *out, json_t *ref)
{
    const char *text = json_string_value(json_object_get(json_object_get(ref, "content"), "text"));
    json_t *loc = json_object_get(ref, "location");
    const char *uri = json_string_value(json_object_get(json_object_get(loc, "s3Location"), "uri"));
    if (!uri) /* other location types carry a url field */
        uri = json_string_value(json_object_get(json_object_get(loc, "webLocation"), "url"));
    json_t *meta = json_object_get(ref, "metadata");
    const char *chunk = meta_str(meta, "x-amz-bedrock-kb-chunk-id");
    if (!uri)
        uri = "";
    if (!text)
        text = "";
    if (chunk)
        for (size_t i = 0; i < out->n_sources; i++)
            if (strcmp(out->sources[i].chunk_id, chunk) == 0)
                return (long)i;
    /* without a chunk id: same uri and same snippet is the same reference */
    char *snip = toro_prompt_snippet(text, strlen(text));
    char *doc = doc_id_of(uri);
    if (!snip || !doc) {
        free(snip);
        free(doc);
        return -1;
    }
    if (!chunk)
        for (size_t i = 0; i < out->n_sources; i++)
            if (strcmp(out->sources[i].doc_id, doc) == 0 && strcmp(out->sources[i].snippet, snip) == 0) {
                free(snip);
                free(doc);
                return (long)i;
            }
    if (out->n_sources == KB_MAX_SOURCES) {
        free(snip);
        free(doc);
        return -2; /* ignore the rest */
    }
    toro_source_t *s = &out->sources[out->n_sources];
    s->doc_id = doc;
    s->snippet = snip;
    s->title = strdup(meta_str(meta, "title") ? meta_str(meta, "title") : doc);
    s->section = strdup(meta_str(meta, "section") ? meta_str(meta, "section") : "");
    if (chunk) {
        s->chunk_id = strdup(chunk);
    } else {
        char n[32];
        snprintf(n, sizeof n, "#%zu", out->n_sources);
        s->chunk_id = toro_prompt_strcat3(*uri ? uri : doc, n, NULL);
    }
    json_t *score = json_object_get(meta, "score");
    s->score = json_is_number(score) ? json_number_value(score) : 0.0;
    out->n_sources++;
    if (!s->title || !s->section || !s->chunk_id)
        return -1;
    return (long)out->n_sources - 1;
}

/* One citation: where its marker goes in text (the span's end, in code
 * points, moved past closing punctuation) and the markers "[n]" of its
 * references, each added to out->sources when new. On TORO_ENOMEM out holds
 * the sources added so far. m->text is empty when it cites nothing usable. */
static int kb_mark(toro_answer_t *out, json_t *c, const char *text, size_t tl, size_t seq, mark_t *m)
{
    json_t *span =
        json_object_get(json_object_get(json_object_get(c, "generatedResponsePart"), "textResponsePart"), "span");
    json_t *end = json_object_get(span, "end");
    m->end = tl;
    if (json_is_integer(end)) {
        json_int_t e = json_integer_value(end);
        m->end = cp_to_byte(text, tl, e < 0 ? 0 : e);
        /* an end that points at the closing punctuation (inclusive spans): mark after it */
        if (m->end < tl && strchr(".!?;:", text[m->end]))
            m->end++;
    }
    m->seq = seq;
    size_t ri, ml = 0;
    json_t *ref;
    json_array_foreach(json_object_get(c, "retrievedReferences"), ri, ref)
    {
        long s = kb_source(out, ref);
        if (s == -1)
            return TORO_ENOMEM;
        if (s < 0)
            continue;
        char mk[24];
        int w = snprintf(mk, sizeof mk, "[%ld]", s + 1);
        if (strstr(m->text, mk) || ml + (size_t)w + 1 > sizeof(m->text))
            continue;
        memcpy(m->text + ml, mk, (size_t)w + 1);
        ml += (size_t)w;
    }
    return 0;
}

/* out->text: text with the nm sorted markers inserted, a space before each
 * unless one is there already. */
static int kb_compose(const char *text, size_t tl, const mark_t *marks, size_t nm, toro_answer_t *out)
{
    size_t cap = tl + 1;
    for (size_t k = 0; k < nm; k++)
        cap += strlen(marks[k].text) + 1;
    out->text = malloc(cap);
    if (!out->text)
        return TORO_ENOMEM;
    size_t pos = 0, n = 0;
    for (size_t k = 0; k <= nm; k++) {
        size_t upto = k < nm ? marks[k].end : tl;
        assert(upto >= pos && upto <= tl);
        memcpy(out->text + n, text + pos, upto - pos);
        n += upto - pos;
        pos = upto;
        if (k < nm) {
            if (n > 0 && out->text[n - 1] != ' ' && out->text[n - 1] != '\n' && out->text[n - 1] != ']')
                out->text[n++] = ' ';
            size_t ml = strlen(marks[k].text);
            memcpy(out->text + n, marks[k].text, ml);
            n += ml;
        }
    }
    assert(n < cap);
    out->text[n] = 0;
    return 0;
}

static int kb_answer(bedrock_t *b, const char *question, toro_answer_t *out, char **err)
{
    char *body = NULL, *resp = NULL;
    json_t *j = NULL;
    mark_t *marks = NULL;
    int rc;
    assert(b->kb_mode && b->kb_id && b->model_arn && b->kb_label);
    const char *lang = strcmp(toro_kb_detect_lang(question), "en") == 0 ? "en" : "pt";
    body = json_take(json_pack("{s:{s:s}, s:{s:s, s:{s:s, s:s}}}", "input", "text", question,
                               "retrieveAndGenerateConfiguration", "type", "KNOWLEDGE_BASE",
                               "knowledgeBaseConfiguration", "knowledgeBaseId", b->kb_id, "modelArn", b->model_arn));
    if (!body)
        return TORO_ENOMEM;
    br_req_t req = {b, b->url, "application/json"};
    if ((rc = toro_provider_post(&b->http, "bedrock-kb", b->url, body, br_headers, &req, &resp, err)) != 0)
        goto out;
    json_error_t jerr;
    j = json_loads(resp, 0, &jerr);
    const char *text = json_string_value(json_object_get(json_object_get(j, "output"), "text"));
    json_t *cits = json_object_get(j, "citations");
    if (!text || (cits && !json_is_array(cits))) {
        rc = fail_format("no output.text", j, &jerr, err);
        goto out;
    }
    size_t tl = strlen(text), nc = json_array_size(cits), nm = 0, i;
    out->sources = calloc(KB_MAX_SOURCES, sizeof(toro_source_t));
    marks = calloc(nc ? nc : 1, sizeof(mark_t));
    if (!out->sources || !marks) {
        rc = TORO_ENOMEM;
        goto out;
    }
    json_t *c;
    json_array_foreach(cits, i, c)
    {
        if ((rc = kb_mark(out, c, text, tl, i, &marks[nm])) != 0)
            goto out;
        if (marks[nm].text[0])
            nm++;
        else
            memset(&marks[nm], 0, sizeof(marks[nm]));
    }
    if (out->n_sources == 0) { /* the knowledge base found nothing to cite */
        toro_answer_clear(out);
        rc = toro_prompt_no_info(lang, b->model_label, b->kb_label, out);
        goto out;
    }
    qsort(marks, nm, sizeof(mark_t), mark_cmp);
    out->model = strdup(b->model_label);
    out->kb_version = strdup(b->kb_label);
    if ((rc = kb_compose(text, tl, marks, nm, out)) == 0 && (!out->model || !out->kb_version))
        rc = TORO_ENOMEM;
    if (rc == 0)
        out->found_relevant_docs = true;
out:
    if (rc)
        toro_answer_clear(out);
    free(marks);
    json_decref(j);
    free(body);
    free(resp);
    return rc;
}

static int br_answer_stream(toro_answerer_t *self, const char *question, toro_answer_delta_fn on_delta, void *ud,
                            toro_answer_t *out, char **errmsg)
{
    bedrock_t *b = (bedrock_t *)self;
    char *err = NULL;
    memset(out, 0, sizeof(*out));
    if (errmsg)
        *errmsg = NULL;
    int rc = b->kb_mode ? kb_answer(b, question, out, &err) : converse_answer(b, question, on_delta, ud, out, &err);
    return toro_answer_finish(rc, out, err, errmsg);
}

static int br_answer(toro_answerer_t *self, const char *question, toro_answer_t *out, char **errmsg)
{
    return br_answer_stream(self, question, NULL, NULL, out, errmsg);
}

static void br_destroy(toro_answerer_t *self)
{
    bedrock_t *b = (bedrock_t *)self;
    if (!b)
        return;
    free(b->url);
    free(b->host);
    free(b->path);
    free(b->stream_path);
    free(b->stream_url);
    free(b->region);
    toro_secret_free(b->access_key);
    toro_secret_free(b->secret_key);
    toro_secret_free(b->session_token);
    free(b->model_id);
    free(b->kb_id);
    free(b->model_arn);
    free(b->model_label);
    free(b->kb_label);
    free(b);
}

static const toro_answerer_ops_t BEDROCK_OPS = {
    .name = "bedrock", .answer = br_answer, .destroy = br_destroy, .answer_stream = br_answer_stream};
static const toro_answerer_ops_t BEDROCK_KB_OPS = {
    .name = "bedrock-kb", .answer = br_answer, .destroy = br_destroy};

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Splits "scheme://host[:port][/prefix]" into the Host header value and the
 * path prefix (no trailing '/'). */
static int split_endpoint(const char *ep, char **host, char **prefix)
{
    const char *p = strstr(ep, "://");
    if (!p || (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0))
        return TORO_EINVAL;
    p += 3;
    size_t hl = strcspn(p, "/?#");
    if (hl == 0)
        return TORO_EINVAL;
    const char *rest = p + hl;
    size_t rl = strcspn(rest, "?#");
    while (rl > 0 && rest[rl - 1] == '/')
        rl--;
    *host = strndup(p, hl);
    *prefix = strndup(rest, rl);
    return *host && *prefix ? 0 : TORO_ENOMEM;
}

/* 0 when the environment configures the answerer: credentials, and the
 * knowledge base id in KB mode (a local snapshot otherwise). On
 * TORO_EUNAVAIL *err (when err is given) says what to set. */
static int br_configured(int kb_mode, const toro_kb_t *kb, const char *ak, const char *sk, const char *kb_id,
                         char **err)
{
    if (!ak || !sk) {
        if (err)
            *err = toro_prompt_strcat3(kb_mode ? "bedrock-kb" : "bedrock",
                                       " answerer not configured: set AWS_ACCESS_KEY_ID and "
                                       "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)",
                                       NULL);
        return TORO_EUNAVAIL;
    }
    if (kb_mode && !kb_id) {
        if (err)
            *err = strdup("bedrock-kb answerer not configured: set TORO_BEDROCK_KB_ID");
        return TORO_EUNAVAIL;
    }
    if (!kb_mode && !kb)
        return TORO_EINVAL;
    return 0;
}

/* KB mode: the knowledge base, the model ARN (default Nova Pro in region), the
 * RetrieveAndGenerate path and the labels. Fields left NULL on ENOMEM are
 * checked by the caller too. */
static int kb_mode_fields(bedrock_t *b, const char *prefix, const char *kb_id, const char *region)
{
    b->kb_id = strdup(kb_id);
    const char *arn = env("TORO_BEDROCK_MODEL_ARN");
    char def_arn[256];
    snprintf(def_arn, sizeof def_arn, "arn:aws:bedrock:%s::foundation-model/amazon.nova-pro-v1:0", region);
    b->model_arn = strdup(arn ? arn : def_arn);
    b->path = toro_prompt_strcat3(prefix, "/retrieveAndGenerate", NULL);
    b->model_label = b->model_arn ? toro_prompt_strcat3("bedrock-kb:", b->model_arn, NULL) : NULL;
    b->kb_label = toro_prompt_strcat3("bedrock-kb:", kb_id, NULL);
    return b->kb_id && b->kb_label ? 0 : TORO_ENOMEM;
}

/* Converse mode: the model id, its /model/{id}/converse path and the label;
 * a field left NULL is out of memory, which the caller checks. */
static void converse_fields(bedrock_t *b, const char *prefix)
{
    const char *model = env("TORO_BEDROCK_MODEL_ID");
    if (!model)
        model = DEFAULT_MODEL_ID;
    b->model_id = strdup(model);
    char *enc = toro_sigv4_uri_encode(model, strlen(model), 0);
    if (enc) {
        char *tmp = toro_prompt_strcat3(prefix, "/model/", enc);
        b->path = tmp ? toro_prompt_strcat3(tmp, "/converse", NULL) : NULL;
        b->stream_path = tmp ? toro_prompt_strcat3(tmp, "/converse-stream", NULL) : NULL;
        free(tmp);
    }
    free(enc);
    b->model_label = toro_prompt_strcat3("bedrock:", model, NULL);
}

static int br_new(toro_kb_t *kb, int kb_mode, toro_answerer_t **out, char **err)
{
    int rc = 0;
    *out = NULL;
    if (err)
        *err = NULL;
    const char *ak = env("AWS_ACCESS_KEY_ID"), *sk = env("AWS_SECRET_ACCESS_KEY");
    const char *token = env("AWS_SESSION_TOKEN"), *kb_id = env("TORO_BEDROCK_KB_ID");
    const char *region = env("AWS_REGION");
    if (!region)
        region = env("AWS_DEFAULT_REGION");
    if (!region)
        region = "us-east-1";
    const char *name = kb_mode ? "bedrock-kb" : "bedrock";
    if ((rc = br_configured(kb_mode, kb, ak, sk, kb_id, err)) != 0)
        return rc;
    bedrock_t *b = calloc(1, sizeof(*b));
    if (!b)
        return TORO_ENOMEM;
    b->base.ops = kb_mode ? &BEDROCK_KB_OPS : &BEDROCK_OPS;
    b->kb = kb;
    b->kb_mode = kb_mode;
    b->region = strdup(region);
    b->access_key = strdup(ak);
    b->secret_key = strdup(sk);
    b->session_token = token ? strdup(token) : NULL;
    toro_provider_http_from_env(&b->http);
    char def_ep[256], *prefix = NULL;
    const char *ep = env(kb_mode ? "TORO_BEDROCK_AGENT_ENDPOINT" : "TORO_BEDROCK_ENDPOINT");
    snprintf(def_ep, sizeof def_ep, "https://%s.%s.amazonaws.com", kb_mode ? "bedrock-agent-runtime" : "bedrock-runtime",
             region);
    if (!ep)
        ep = def_ep;
    if ((rc = split_endpoint(ep, &b->host, &prefix)) != 0) {
        if (err && rc == TORO_EINVAL)
            *err = toro_prompt_strcat3("bad Bedrock endpoint (want http[s]://host[:port]): ", ep, NULL);
        goto out;
    }
    if (kb_mode)
        rc = kb_mode_fields(b, prefix, kb_id, region);
    else
        converse_fields(b, prefix);
    if (rc)
        goto out;
    if (b->path) {
        char *scheme_host = strndup(ep, (size_t)(strstr(ep, "://") - ep) + 3 + strlen(b->host));
        b->url = scheme_host ? toro_prompt_strcat3(scheme_host, b->path, NULL) : NULL;
        if (b->stream_path)
            b->stream_url = scheme_host ? toro_prompt_strcat3(scheme_host, b->stream_path, NULL) : NULL;
        free(scheme_host);
    }
    if (!b->region || !b->access_key || !b->secret_key || (token && !b->session_token) || !b->path || !b->url ||
        !b->model_label || (!kb_mode && (!b->stream_path || !b->stream_url))) {
        rc = TORO_ENOMEM;
        goto out;
    }
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%ld", b->http.timeout_ms);
    toro_log_kv(TORO_LOG_INFO, name, kb_mode ? "bedrock-kb answerer ready" : "bedrock answerer ready", "url", b->url,
                "region", region, "model", kb_mode ? b->model_arn : b->model_id, "knowledge_base",
                kb_mode ? b->kb_id : "(local snapshot)", "access_key_id", ak, "session_token",
                token ? token : "(none)", "timeout_ms", timeout, NULL);
out:
    free(prefix);
    if (rc) {
        br_destroy(&b->base);
        return rc;
    }
    *out = &b->base;
    return 0;
}

int toro_answerer_bedrock_new(toro_kb_t *kb, toro_answerer_t **out, char **err)
{
    return br_new(kb, 0, out, err);
}

int toro_answerer_bedrock_kb_new(toro_kb_t *kb, toro_answerer_t **out, char **err)
{
    return br_new(kb, 1, out, err);
}
