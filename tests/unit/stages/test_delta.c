/* test_delta.c: streamed answer text forwarded by the process stage
 * (stages/delta.c) with the embedded backends: a scripted streaming
 * answerer, the posts recorded. Deltas are coalesced (>= TORO_DELTA_MIN_BYTES
 * or TORO_DELTA_MIN_MS), cut only at UTF-8 boundaries, numbered per attempt,
 * sent only to the asker's connections, all before the completed update,
 * never stored; an answerer that does not stream sends none. A follow-up
 * in a conversation streams too, asked as its standalone query. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "bus/bus.h"
#include "core/error.h"
#include "core/util.h"
#include "stages/stages.h"
#include "store/store.h"

#include "stage_env.h"

#define MAX_POSTS 256

/* Appends s to the NUL-terminated buf of cap bytes (cut when full). */
static void append(char *buf, size_t cap, const char *s)
{
    size_t n = strlen(buf), l = strlen(s);
    if (l > cap - 1 - n)
        l = cap - 1 - n;
    memcpy(buf + n, s, l);
    buf[n + l] = 0;
}

/* Streams `pieces` (NULL-terminated), sleeping pause_ms before each; the
 * answer is their concatenation. fail_first calls fail transiently after
 * streaming the first piece. */
typedef struct streamer {
    toro_answerer_t super;
    const char *const *pieces;
    int pause_ms;
    int fail_first;
    int calls;
    char asked[256]; /* the question of the last call */
} streamer_t;

static int s_answer_stream(toro_answerer_t *self, const char *question, toro_answer_delta_fn on_delta, void *ud,
                           toro_answer_t *out, char **errmsg)
{
    streamer_t *s = (streamer_t *)self;
    snprintf(s->asked, sizeof s->asked, "%s", question);
    s->calls++;
    char text[4096] = "";
    for (size_t i = 0; s->pieces[i]; i++) {
        if (s->pause_ms)
            toro_sleep_ms(s->pause_ms);
        if (on_delta)
            on_delta(ud, s->pieces[i], strlen(s->pieces[i]));
        if (s->calls <= s->fail_first) {
            *errmsg = strdup("stream cut");
            return TORO_ERETRY;
        }
        append(text, sizeof text, s->pieces[i]);
    }
    memset(out, 0, sizeof *out);
    out->text = strdup(text);
    out->model = strdup("streamer");
    out->kb_version = strdup("v");
    out->found_relevant_docs = true;
    return 0;
}

static int s_answer(toro_answerer_t *self, const char *q, toro_answer_t *out, char **errmsg)
{
    return s_answer_stream(self, q, NULL, NULL, out, errmsg);
}

static void s_destroy(toro_answerer_t *self) { (void)self; }
static const toro_answerer_ops_t streaming_ops = {
    .name = "streamer", .answer = s_answer, .destroy = s_destroy, .answer_stream = s_answer_stream};
static const toro_answerer_ops_t plain_ops = {.name = "plain", .answer = s_answer, .destroy = s_destroy};

typedef struct posts {
    int n;
    char conn[MAX_POSTS][32];
    char *msg[MAX_POSTS];
} posts_t;

static int rec_post(void *ctx, const char *connection_id, const char *node, const char *message)
{
    posts_t *p = ctx;
    (void)node;
    if (strcmp(connection_id, "down-1") == 0)
        return TORO_EUNAVAIL;
    assert_true(p->n < MAX_POSTS);
    snprintf(p->conn[p->n], sizeof p->conn[0], "%s", connection_id);
    p->msg[p->n++] = strdup(message);
    return 0;
}

typedef struct fixture {
    char dir[64], path[128];
    toro_store_t *store;
    toro_bus_t *bus;
    streamer_t ans;
    posts_t posts;
    toro_stage_ctx_t ctx;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    stage_env_open("toro-delta", f->dir, f->path, &f->store, &f->bus, &f->ctx);
    f->ans.super.ops = &streaming_ops;
    f->ctx.answerer = &f->ans.super;
    f->ctx.post = rec_post;
    f->ctx.post_ctx = &f->posts;
    toro_connection_t c1 = {"conn-1", "ana", "node-a", 1}, down = {"down-1", "ana", "node-a", 2},
                      other = {"conn-9", "bia", "node-a", 3};
    assert_int_equal(toro_store_put_connection(f->store, &c1), 0);
    assert_int_equal(toro_store_put_connection(f->store, &down), 0);
    assert_int_equal(toro_store_put_connection(f->store, &other), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < f->posts.n; i++)
        free(f->posts.msg[i]);
    stage_env_close(f->dir, f->store, f->bus);
    free(f);
    return 0;
}

/* Ingests body (a question of ana) and runs process deliveries until it
 * ends, then notify. */
static void run_body(fixture_t *f, const char *body, char qid[37])
{
    char *uid = NULL;
    const char *err = NULL;
    assert_int_equal(toro_stage_ingest(&f->ctx, body, strlen(body), NULL, qid, &uid, &err), 0);
    free(uid);
    toro_bus_msg_t m;
    while (toro_bus_fetch(f->bus, TORO_TOPIC_PROCESS, 200, &m) == 0) {
        toro_stage_process(&f->ctx, &m);
        toro_bus_msg_clear(&m);
    }
    while (toro_bus_fetch(f->bus, TORO_TOPIC_NOTIFY, 10, &m) == 0) {
        toro_stage_notify(&f->ctx, &m);
        toro_bus_msg_clear(&m);
    }
}

static void run(fixture_t *f, char qid[37]) { run_body(f, "{\"user_id\":\"ana\",\"question\":\"O que é CDB?\"}", qid); }

/* The deltas of `attempt` joined (checking seq 1, 2, ...), and their count. */
static char *joined(fixture_t *f, const char *qid, int attempt, int *count, size_t *max_len)
{
    static char buf[8192];
    buf[0] = 0;
    *count = 0;
    *max_len = 0;
    for (int i = 0; i < f->posts.n; i++) {
        json_t *j = json_loads(f->posts.msg[i], 0, NULL);
        assert_non_null(j);
        if (strcmp(json_string_value(json_object_get(j, "type")), "answer_delta") == 0 &&
            json_integer_value(json_object_get(j, "attempt")) == attempt) {
            assert_string_equal(f->posts.conn[i], "conn-1");
            assert_string_equal(json_string_value(json_object_get(j, "question_id")), qid);
            assert_int_equal(json_integer_value(json_object_get(j, "seq")), ++*count);
            const char *t = json_string_value(json_object_get(j, "text"));
            assert_non_null(t); /* valid UTF-8, or jansson refuses the string */
            if (strlen(t) > *max_len)
                *max_len = strlen(t);
            append(buf, sizeof buf, t);
        }
        json_decref(j);
    }
    return buf;
}

/* Index of the completed update; every delta comes before it. */
static int completed_after_deltas(fixture_t *f)
{
    int done = -1, last_delta = -1;
    for (int i = 0; i < f->posts.n; i++) {
        if (strstr(f->posts.msg[i], "\"answer_delta\""))
            last_delta = i;
        if (strstr(f->posts.msg[i], "\"status\":\"completed\""))
            done = i;
    }
    assert_true(done >= 0 && last_delta < done);
    return done;
}

static const char *const FAST[] = {"0123456789012345678901234567890123456789 ", "abcdefghijabcdefghijabcdefghij ",
                                   "0123456789012345678901234567890123456789 ", "abcdefghijabcdefghijabcdefghij ",
                                   "0123456789012345678901234567890123456789 ", "abcdefghijabcdefghijabcdefghij ",
                                   "0123456789012345678901234567890123456789 ", "abcdefghijabcdefghijabcdefghij ",
                                   "fim.", NULL};

static void test_fast_stream_is_coalesced(void **state)
{
    fixture_t *f = *state;
    f->ans.pieces = FAST;
    char qid[37];
    run(f, qid);
    int count;
    size_t max_len;
    char *all = joined(f, qid, 1, &count, &max_len);
    toro_question_t q = {0};
    assert_int_equal(toro_store_get_question(f->store, qid, &q), 0);
    assert_string_equal(all, q.answer); /* the deltas add up to the stored answer */
    assert_true(count >= 2 && count <= 5); /* 292 bytes in 9 pieces without pause: fewer messages than pieces */
    assert_true(max_len >= TORO_DELTA_MIN_BYTES);
    completed_after_deltas(f);
    toro_question_clear(&q);
}

static const char *const SLOW_UTF8[] = {"Ol\xc3", "\xa1 CDB \xe2\x82", "\xac t\xc3\xadtulo", NULL};

static void test_slow_stream_utf8_boundaries(void **state)
{
    fixture_t *f = *state;
    f->ans.pieces = SLOW_UTF8;
    f->ans.pause_ms = TORO_DELTA_MIN_MS + 20; /* every piece is due to be sent */
    char qid[37];
    run(f, qid);
    int count;
    size_t max_len;
    char *all = joined(f, qid, 1, &count, &max_len);
    assert_string_equal(all, "Olá CDB € título");
    assert_int_equal(count, 3); /* each message ends before the cut sequence */
}

static void test_retry_restarts_seq(void **state)
{
    fixture_t *f = *state;
    f->ans.pieces = FAST;
    f->ans.fail_first = 1;
    f->ans.pause_ms = TORO_DELTA_MIN_MS + 5; /* the broken attempt's first piece goes out */
    char qid[37];
    run(f, qid);
    int count1, count2;
    size_t max_len;
    char first[8192];
    snprintf(first, sizeof first, "%s", joined(f, qid, 1, &count1, &max_len));
    assert_string_equal(first, FAST[0]);
    char *all = joined(f, qid, 2, &count2, &max_len);
    toro_question_t q = {0};
    assert_int_equal(toro_store_get_question(f->store, qid, &q), 0);
    assert_int_equal(q.attempts, 2);
    assert_string_equal(all, q.answer);
    toro_question_clear(&q);
}

static void test_plain_answerer_sends_no_delta(void **state)
{
    fixture_t *f = *state;
    f->ans.super.ops = &plain_ops;
    f->ans.pieces = FAST;
    char qid[37];
    run(f, qid);
    for (int i = 0; i < f->posts.n; i++)
        assert_null(strstr(f->posts.msg[i], "answer_delta"));
    completed_after_deltas(f) /* no delta: trivially before */;
}

static void test_follow_up_streams_its_standalone_query(void **state)
{
    fixture_t *f = *state;
    f->ans.pieces = FAST;
    char qid[37], body[256];
    run(f, qid);
    toro_question_t first = {0}, q = {0};
    assert_int_equal(toro_store_get_question(f->store, qid, &first), 0);
    assert_non_null(first.conversation_id);
    for (int i = 0; i < f->posts.n; i++)
        free(f->posts.msg[i]);
    f->posts.n = 0;
    snprintf(body, sizeof body, "{\"user_id\":\"ana\",\"question\":\"E a LCA?\",\"conversation_id\":\"%s\"}",
             first.conversation_id);
    run_body(f, body, qid);
    assert_int_equal(toro_store_get_question(f->store, qid, &q), 0);
    assert_int_equal(q.status, TORO_STATUS_COMPLETED);
    assert_non_null(q.retrieval_query); /* rewritten from the earlier turn */
    assert_string_not_equal(q.retrieval_query, "E a LCA?");
    assert_string_equal(f->ans.asked, q.retrieval_query); /* the streamed call got the standalone query */
    int count;
    size_t max_len;
    assert_string_equal(joined(f, qid, 1, &count, &max_len), q.answer);
    assert_true(count >= 1);
    completed_after_deltas(f);
    toro_question_clear(&q);
    toro_question_clear(&first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fast_stream_is_coalesced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_stream_utf8_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_restarts_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_answerer_sends_no_delta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_up_streams_its_standalone_query, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
