/* stream.c: the incremental SSE and AWS event-stream parsers (stream.h). */
#include "answer/stream.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* ---- server-sent events ---------------------------------------------------- */

void toro_sse_init(toro_sse_t *p, toro_sse_event_fn on_event, void *ud)
{
    memset(p, 0, sizeof(*p));
    p->on_event = on_event;
    p->ud = ud;
    p->line.max = TORO_SSE_EVENT_MAX + 16;
    p->data.max = TORO_SSE_EVENT_MAX + 1;
}

void toro_sse_clear(toro_sse_t *p)
{
    free(p->line.s);
    free(p->data.s);
    memset(p, 0, sizeof(*p));
}

static int sse_dispatch(toro_sse_t *p)
{
    int rc = 0;
    if (p->has_data) {
        toro_strbuf_add(&p->data, "", 0); /* s is never NULL after this */
        rc = p->data.err ? p->data.err : p->on_event(p->ud, p->data.s, p->data.n);
    }
    p->data.n = 0;
    if (p->data.s)
        p->data.s[0] = 0;
    p->has_data = false;
    return rc;
}

/* One complete line (without its break). */
static int sse_line(toro_sse_t *p, const char *l, size_t n)
{
    if (n == 0)
        return sse_dispatch(p);
    if (l[0] == ':' || n < 4 || memcmp(l, "data", 4) != 0 || (n > 4 && l[4] != ':'))
        return 0; /* a comment, or a field other than data (event, id, retry) */
    size_t v = n > 4 ? 5 : 4;
    if (v < n && l[v] == ' ')
        v++;
    if (p->has_data)
        toro_strbuf_add(&p->data, "\n", 1);
    toro_strbuf_add(&p->data, l + v, n - v);
    p->has_data = true;
    return p->data.err;
}

int toro_sse_feed(toro_sse_t *p, const char *buf, size_t n)
{
    for (size_t i = 0; i < n && !p->err;) {
        if (p->cr) { /* the byte after a '\r': a '\n' there is the second half of "\r\n" */
            p->cr = false;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t j = i;
        while (j < n && buf[j] != '\n' && buf[j] != '\r')
            j++;
        toro_strbuf_add(&p->line, buf + i, j - i);
        if ((p->err = p->line.err) != 0 || j == n)
            break;
        p->cr = buf[j] == '\r';
        p->err = sse_line(p, p->line.s ? p->line.s : "", p->line.n);
        p->line.n = 0;
        i = j + 1;
    }
    return p->err;
}

int toro_sse_finish(toro_sse_t *p)
{
    if (p->err)
        return p->err;
    if (p->line.n) {
        p->err = sse_line(p, p->line.s, p->line.n);
        p->line.n = 0;
    }
    if (!p->err)
        p->err = sse_dispatch(p);
    return p->err;
}

/* ---- CRC-32 ---------------------------------------------------------------- */

uint32_t toro_crc32(uint32_t crc, const void *buf, size_t n)
{
    static uint32_t table[256];
    static _Atomic int ready;
    if (!ready) { /* idempotent: racing threads write the same values */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const unsigned char *b = buf;
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ b[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* ---- AWS event-stream ------------------------------------------------------ */

#define EVS_PRELUDE 12
#define EVS_MIN (EVS_PRELUDE + 4)

void toro_evs_init(toro_evs_t *p, toro_evs_msg_fn on_msg, void *ud)
{
    memset(p, 0, sizeof(*p));
    p->on_msg = on_msg;
    p->ud = ud;
}

void toro_evs_clear(toro_evs_t *p)
{
    free(p->buf);
    memset(p, 0, sizeof(*p));
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Size of a header value of `type` at v (hl bytes left), 0 when malformed. */
static size_t evs_value_size(unsigned type, const unsigned char *v, size_t left)
{
    static const size_t fixed[10] = {0, 0, 1, 2, 4, 8, 0, 0, 8, 16};
    if (type > 9)
        return 0;
    if (type == 6 || type == 7) {
        if (left < 2)
            return 0;
        size_t len = (size_t)v[0] << 8 | v[1];
        return 2 + len <= left ? 2 + len : 0;
    }
    if (type <= 1)
        return (size_t)-1; /* boolean: no value bytes */
    return fixed[type] <= left ? fixed[type] : 0;
}

/* The headers of one frame (hl bytes at h) into m: the string values are
 * copied NUL-terminated into `strings` (hl + 1 bytes, enough for all). */
static int evs_headers(unsigned char *h, size_t hl, char *strings, toro_evs_msg_t *m)
{
    size_t i = 0, s = 0;
    while (i < hl) {
        size_t nl = h[i++];
        if (nl == 0 || i + nl + 1 > hl)
            return TORO_EFORMAT;
        const char *name = (const char *)h + i;
        i += nl;
        unsigned type = h[i++];
        size_t vs = evs_value_size(type, h + i, hl - i);
        if (vs == 0)
            return TORO_EFORMAT;
        if (vs == (size_t)-1)
            vs = 0;
        if (type == 7) {
            size_t len = vs - 2;
            char *dst = strings + s;
            memcpy(dst, h + i + 2, len);
            dst[len] = 0;
            s += len + 1;
            const char **slot = nl == 13 && memcmp(name, ":message-type", 13) == 0     ? &m->message_type
                                : nl == 11 && memcmp(name, ":event-type", 11) == 0     ? &m->event_type
                                : nl == 15 && memcmp(name, ":exception-type", 15) == 0 ? &m->exception_type
                                : nl == 11 && memcmp(name, ":error-code", 11) == 0     ? &m->error_code
                                                                                       : NULL;
            if (slot)
                *slot = dst;
        }
        i += vs;
    }
    return 0;
}

/* One complete frame of total bytes at p->buf. */
static int evs_frame(toro_evs_t *p, size_t total)
{
    unsigned char *f = p->buf;
    size_t hl = be32(f + 4);
    if (hl > total - EVS_MIN)
        return TORO_EFORMAT;
    if (toro_crc32(0, f, total - 4) != be32(f + total - 4))
        return TORO_EFORMAT;
    toro_evs_msg_t m = {0};
    char *strings = malloc(hl + 1); /* every string value fits in the headers' size */
    if (!strings)
        return TORO_ENOMEM;
    int rc = evs_headers(f + EVS_PRELUDE, hl, strings, &m);
    if (rc == 0) {
        m.payload = (const char *)f + EVS_PRELUDE + hl;
        m.payload_len = total - EVS_MIN - hl;
        rc = p->on_msg(p->ud, &m);
    }
    free(strings);
    return rc;
}

/* Checks the prelude at p->buf (12 bytes present): *total is the frame size. */
static int evs_prelude(const toro_evs_t *p, size_t *total)
{
    uint32_t t = be32(p->buf);
    if (toro_crc32(0, p->buf, 8) != be32(p->buf + 8))
        return TORO_EFORMAT;
    if (t < EVS_MIN)
        return TORO_EFORMAT;
    if (t > TORO_EVS_FRAME_MAX)
        return TORO_ETOOBIG;
    *total = t;
    return 0;
}

int toro_evs_feed(toro_evs_t *p, const void *data, size_t n)
{
    const unsigned char *in = data;
    while (n > 0 && !p->err) {
        size_t want = EVS_PRELUDE, total = 0;
        if (p->n >= EVS_PRELUDE && (p->err = evs_prelude(p, &total)) != 0)
            break;
        if (total)
            want = total;
        if (want > p->cap) {
            unsigned char *nb = realloc(p->buf, want);
            if (!nb) {
                p->err = TORO_ENOMEM;
                break;
            }
            p->buf = nb;
            p->cap = want;
        }
        size_t take = want - p->n < n ? want - p->n : n;
        memcpy(p->buf + p->n, in, take);
        p->n += take;
        in += take;
        n -= take;
        if (total && p->n == total) {
            p->err = evs_frame(p, total);
            p->n = 0;
        }
    }
    /* a prelude completed by this feed is checked now, not at the next one */
    size_t total;
    if (!p->err && p->n >= EVS_PRELUDE)
        p->err = evs_prelude(p, &total);
    return p->err;
}

int toro_evs_finish(toro_evs_t *p)
{
    if (!p->err && p->n)
        p->err = TORO_EFORMAT;
    return p->err;
}

/* ---- the text of a streamed answer ------------------------------------------- */

void toro_stream_text_init(toro_stream_text_t *t, toro_answer_delta_fn on_delta, void *ud)
{
    memset(t, 0, sizeof(*t));
    t->text.max = 8u << 20;
    t->on_delta = on_delta;
    t->ud = ud;
}

int toro_stream_text_add(toro_stream_text_t *t, const char *s, size_t n)
{
    if (n == 0)
        return t->text.err;
    toro_strbuf_add(&t->text, s, n);
    if (!t->text.err && t->on_delta)
        t->on_delta(t->ud, s, n);
    return t->text.err;
}

int toro_stream_text_end(toro_stream_text_t *t, int rc, char **text, char **err)
{
    if (rc == 0) {
        toro_strbuf_add(&t->text, "", 0);
        rc = t->text.err;
    }
    if (rc == 0) {
        *text = t->text.s;
        t->text.s = NULL;
    }
    if (rc && t->err) { /* the stream's own reason replaces the generic one */
        free(*err);
        *err = t->err;
        t->err = NULL;
    }
    free(t->text.s);
    free(t->err);
    memset(t, 0, sizeof(*t));
    return rc;
}
