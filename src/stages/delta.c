/* delta.c: streamed answer text on its way to the asker (stages.h,
 * toro_delta_fwd_t). The process stage hands the answerer toro_delta_fwd_add;
 * text is coalesced (one message per TORO_DELTA_MIN_MS or TORO_DELTA_MIN_BYTES,
 * whichever comes first, cut at a UTF-8 boundary) and posted as
 * {"type":"answer_delta",...} to every connection of the user the same way
 * notify posts updates. Best-effort: nothing is stored, a post that fails is
 * not retried and that connection gets no more deltas of this answer.
 * The "processing" update of a question's first attempt goes the same way
 * (toro_delta_fwd_status), ahead of the deltas and on the same connections. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "stages/stages.h"

void toro_delta_fwd_init(toro_delta_fwd_t *f, toro_stage_ctx_t *ctx, const char *uid, const char *qid, int attempt)
{
    memset(f, 0, sizeof(*f));
    f->ctx = ctx;
    f->uid = uid;
    f->qid = qid;
    f->attempt = attempt;
    f->pending.max = 1u << 20;
    f->last_ms = toro_mono_ms();
}

void toro_delta_fwd_clear(toro_delta_fwd_t *f)
{
    toro_connections_free(f->conns, f->n_conns);
    free(f->dead);
    free(f->pending.s);
    memset(f, 0, sizeof(*f));
}

/* Bytes of pending text that end on a UTF-8 boundary. */
static size_t utf8_complete(const char *s, size_t n)
{
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0)
        return back ? 0 : n;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return back + 1 >= need ? n : i - 1;
}

/* The asker's connections, read once per answer. */
static int load_conns(toro_delta_fwd_t *f)
{
    if (f->loaded)
        return f->n_conns ? 0 : TORO_ENOTFOUND;
    f->loaded = true;
    if (toro_store_list_connections(f->ctx->store, f->uid, &f->conns, &f->n_conns) != 0) {
        f->conns = NULL;
        f->n_conns = 0;
    }
    if (f->n_conns && !(f->dead = calloc(f->n_conns, sizeof(bool)))) {
        toro_connections_free(f->conns, f->n_conns);
        f->conns = NULL;
        f->n_conns = 0;
    }
    return f->n_conns ? 0 : TORO_ENOTFOUND;
}

/* Posts msg to each of the asker's connections not yet given up; one
 * that fails (gone or slow) gets nothing more of this answer (notify
 * handles its row). */
static void post_live(toro_delta_fwd_t *f, const char *msg)
{
    for (size_t i = 0; i < f->n_conns; i++)
        if (!f->dead[i] && f->ctx->post(f->ctx->post_ctx, f->conns[i].connection_id, f->conns[i].node, msg) != 0)
            f->dead[i] = true;
}

static void post_delta(toro_delta_fwd_t *f, size_t len)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:s%}", "type", "answer_delta", "question_id", f->qid,
                          "user_id", f->uid, "attempt", f->attempt, "seq", f->seq + 1, "text", f->pending.s, len);
    char *msg = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!msg)
        return;
    f->seq++;
    post_live(f, msg);
    free(msg);
}

void toro_delta_fwd_status(toro_delta_fwd_t *f, const toro_question_t *q, toro_status_t status)
{
    assert(f->ctx && f->ctx->post && q && q->question_id);
    char *msg = load_conns(f) == 0 ? toro_stage_update_message(q, status) : NULL;
    if (msg)
        post_live(f, msg);
    free(msg);
}

void toro_delta_fwd_flush(toro_delta_fwd_t *f)
{
    if (!f->ctx || !f->ctx->post || f->pending.err || f->pending.n == 0)
        return;
    size_t len = utf8_complete(f->pending.s, f->pending.n);
    if (len == 0 || load_conns(f) != 0) {
        if (f->loaded && !f->n_conns)
            f->pending.n = 0; /* nobody listens: drop the text */
        return;
    }
    post_delta(f, len);
    memmove(f->pending.s, f->pending.s + len, f->pending.n - len);
    f->pending.n -= len;
    f->pending.s[f->pending.n] = 0;
    f->last_ms = toro_mono_ms();
}

void toro_delta_fwd_add(void *ud, const char *text, size_t len)
{
    toro_delta_fwd_t *f = ud;
    toro_strbuf_add(&f->pending, text, len);
    if (f->pending.n >= TORO_DELTA_MIN_BYTES || toro_mono_ms() - f->last_ms >= TORO_DELTA_MIN_MS)
        toro_delta_fwd_flush(f);
}
