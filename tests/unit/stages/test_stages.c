/* test_stages.c: the three stages driven with the embedded backends (SQLite
 * store, local bus) and no network: the whole pipeline, idempotency under
 * redelivered events, retries with backoff, dead letters, guarded updates
 * and history pagination. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus.h"
#include "core/error.h"
#include "core/util.h"
#include "stages/stages.h"
#include "store/store.h"

#include "stage_env.h"

/* A scripted answerer: fails the first `fail_first` calls (transient or
 * permanent), then answers with a fixed text; counts its calls. */
typedef struct fake_answerer {
    toro_answerer_t super;
    int calls;
    int fail_first;
    int permanent;
    const char *forget; /* set: the next call first puts processing questions of this SQLite file back to pending */
} fake_answerer_t;

/* What a crash of PostgreSQL that forgot an unflushed move to processing
 * leaves behind (postgres.c), done to the SQLite file under the store. */
static void forget_processing(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    assert_int_equal(sqlite3_exec(db, "UPDATE questions SET status = 'pending' WHERE status = 'processing'", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    assert_true(sqlite3_changes(db) > 0);
    sqlite3_close(db);
}

static int fake_answer(toro_answerer_t *self, const char *question, toro_answer_t *out, char **errmsg)
{
    fake_answerer_t *f = (fake_answerer_t *)self;
    f->calls++;
    if (f->forget) {
        forget_processing(f->forget);
        f->forget = NULL;
    }
    if (f->calls <= f->fail_first) {
        *errmsg = strdup("scripted failure");
        return f->permanent ? TORO_EIO : TORO_ERETRY;
    }
    memset(out, 0, sizeof *out);
    char buf[256];
    snprintf(buf, sizeof buf, "Resposta %d para: %s [1]", f->calls, question);
    out->text = strdup(buf);
    out->n_sources = 1;
    out->sources = calloc(1, sizeof *out->sources);
    out->sources[0].doc_id = strdup("cdb");
    out->sources[0].title = strdup("CDB");
    out->sources[0].section = strdup("O que é");
    out->sources[0].chunk_id = strdup("cdb#0");
    out->sources[0].snippet = strdup("CDB é um título...");
    out->sources[0].score = 3.5;
    out->found_relevant_docs = true;
    out->model = strdup("fake");
    out->kb_version = strdup("v-test");
    return 0;
}

static void fake_destroy(toro_answerer_t *self) { (void)self; }
static const toro_answerer_ops_t fake_ops = {.name = "fake", .answer = fake_answer, .destroy = fake_destroy};

/* Records what notify posts; connection "gone-1" is reported gone. */
typedef struct posted {
    int down;         /* connection "down-1" fails with TORO_EUNAVAIL while set */
    int count;
    char last[4096];
    char last_conn[64];
} posted_t;

static int fake_post(void *ctx, const char *connection_id, const char *node, const char *message)
{
    posted_t *p = ctx;
    (void)node;
    if (strcmp(connection_id, "gone-1") == 0)
        return TORO_ENOTFOUND;
    if (strcmp(connection_id, "down-1") == 0 && p->down)
        return TORO_EUNAVAIL;
    p->count++;
    snprintf(p->last, sizeof p->last, "%s", message);
    snprintf(p->last_conn, sizeof p->last_conn, "%s", connection_id);
    return 0;
}

typedef struct fixture {
    char dir[64];
    char path[128];
    toro_store_t *store;
    toro_bus_t *bus;
    fake_answerer_t ans;
    posted_t posted;
    toro_stage_ctx_t ctx;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    stage_env_open("toro-test", f->dir, f->path, &f->store, &f->bus, &f->ctx);
    f->ans.super.ops = &fake_ops;
    f->ctx.answerer = &f->ans.super;
    f->ctx.post = fake_post;
    f->ctx.post_ctx = &f->posted;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    stage_env_close(f->dir, f->store, f->bus);
    free(f);
    return 0;
}

static long depth(fixture_t *f, const char *topic)
{
    long n = -1;
    assert_int_equal(toro_bus_depth(f->bus, topic, &n), 0);
    return n;
}

static void ingest(fixture_t *f, const char *user, const char *question, char qid[37])
{
    char body[512];
    snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"question\":\"%s\"}", user, question);
    char *uid = NULL;
    const char *err = NULL;
    assert_int_equal(toro_stage_ingest(&f->ctx, body, strlen(body), NULL, qid, &uid, &err), 0);
    assert_string_equal(uid, user);
    free(uid);
}

static toro_status_t status_of(fixture_t *f, const char *qid, toro_question_t *out)
{
    toro_question_t q = {0};
    assert_int_equal(toro_store_get_question(f->store, qid, &q), 0);
    toro_status_t s = q.status;
    if (out)
        *out = q;
    else
        toro_question_clear(&q);
    return s;
}

/* Fetches one message of topic, which must be there. */
static void fetch(fixture_t *f, const char *topic, toro_bus_msg_t *m)
{
    assert_int_equal(toro_bus_fetch(f->bus, topic, 1000, m), 0);
}

static void drain_notify(fixture_t *f)
{
    toro_bus_msg_t m;
    while (toro_bus_fetch(f->bus, TORO_TOPIC_NOTIFY, 10, &m) == 0) {
        toro_stage_notify(&f->ctx, &m);
        toro_bus_msg_clear(&m);
    }
}

static void test_pipeline(void **state)
{
    fixture_t *f = *state;
    char qid[37];
    toro_connection_t c1 = {"conn-1", "ana", "node-a", 1}, gone = {"gone-1", "ana", "node-a", 2},
                      other = {"conn-9", "bia", "node-a", 3};
    assert_int_equal(toro_store_put_connection(f->store, &c1), 0);
    assert_int_equal(toro_store_put_connection(f->store, &gone), 0);
    assert_int_equal(toro_store_put_connection(f->store, &other), 0);
    ingest(f, "ana", "O que é CDB?", qid);
    assert_int_equal(status_of(f, qid, NULL), TORO_STATUS_PENDING);
    assert_int_equal(depth(f, TORO_TOPIC_PROCESS), 1);

    toro_bus_msg_t m;
    fetch(f, TORO_TOPIC_PROCESS, &m);
    assert_int_equal(m.deliveries, 1);
    assert_int_equal(toro_stage_process(&f->ctx, &m), 0);
    toro_bus_msg_clear(&m);
    toro_question_t q;
    assert_int_equal(status_of(f, qid, &q), TORO_STATUS_COMPLETED);
    assert_string_equal(q.answer, "Resposta 1 para: O que é CDB? [1]");
    assert_int_equal(q.attempts, 1);
    assert_true(q.processed_at >= q.created_at);
    assert_int_equal(q.n_sources, 1); /* the typed source went through the store unchanged */
    assert_string_equal(q.sources[0].doc_id, "cdb");
    assert_string_equal(q.sources[0].chunk_id, "cdb#0");
    assert_string_equal(q.sources[0].section, "O que é");
    assert_string_equal(q.sources[0].snippet, "CDB é um título...");
    assert_true(q.sources[0].score == 3.5);
    toro_question_clear(&q);
    assert_int_equal(depth(f, TORO_TOPIC_PROCESS), 0);
    /* processing was pushed by the process stage itself, best-effort: no event */
    assert_int_equal(depth(f, TORO_TOPIC_NOTIFY), 1); /* completed */
    assert_int_equal(f->posted.count, 1);
    assert_string_equal(f->posted.last_conn, "conn-1");
    assert_non_null(strstr(f->posted.last, "\"type\":\"question_update\""));
    assert_non_null(strstr(f->posted.last, "\"status\":\"processing\""));
    assert_non_null(strstr(f->posted.last, "\"question\":\"O que é CDB?\""));

    drain_notify(f);
    assert_int_equal(f->posted.count, 2); /* only conn-1 of ana; bia's connection got nothing */
    assert_string_equal(f->posted.last_conn, "conn-1");
    assert_non_null(strstr(f->posted.last, "\"status\":\"completed\""));
    assert_non_null(strstr(f->posted.last, "\"answer\":\"Resposta 1"));
    toro_connection_t *conns;
    size_t n;
    assert_int_equal(toro_store_list_connections(f->store, "ana", &conns, &n), 0);
    assert_int_equal(n, 1); /* the gone connection was removed */
    assert_string_equal(conns[0].connection_id, "conn-1");
    toro_connections_free(conns, n);
}

static void test_redelivery_is_idempotent(void **state)
{
    fixture_t *f = *state;
    char qid[37];
    ingest(f, "ana", "Quanto rende a poupança?", qid);
    toro_bus_msg_t m;
    fetch(f, TORO_TOPIC_PROCESS, &m);
    char *payload = strdup(m.payload);
    assert_int_equal(toro_stage_process(&f->ctx, &m), 0);
    toro_bus_msg_clear(&m);
    assert_int_equal(f->ans.calls, 1);
    long notify_before = depth(f, TORO_TOPIC_NOTIFY);

    /* the same event delivered again (a worker crashed before its ack) */
    toro_bus_msg_t again = {.id = 424242, .payload = payload, .deliveries = 2};
    assert_int_equal(toro_stage_process(&f->ctx, &again), 0);
    assert_int_equal(f->ans.calls, 1); /* not answered twice */
    assert_int_equal(depth(f, TORO_TOPIC_NOTIFY), notify_before);
    toro_question_t q;
    assert_int_equal(status_of(f, qid, &q), TORO_STATUS_COMPLETED);
    assert_string_equal(q.answer, "Resposta 1 para: Quanto rende a poupança? [1]");
    assert_int_equal(q.attempts, 1);
    toro_question_clear(&q);
    free(payload);
}

static void test_crash_mid_processing(void **state)
{
    fixture_t *f = *state;
    char qid[37];
    ingest(f, "ana", "O que é LCI?", qid);
    /* a previous worker moved it to processing, then died without ack */
    bool first = false;
    int attempts = 0;
    char *ev = toro_event_encode("ana", qid, TORO_STATUS_PROCESSING);
    toro_event_t e = {TORO_TOPIC_NOTIFY, ev};
    assert_int_equal(toro_store_start_processing(f->store, "ana", qid, &e, &first, &attempts), 0);
    assert_true(first);
    free(ev);
    assert_int_equal(depth(f, TORO_TOPIC_NOTIFY), 1);
    toro_bus_msg_t m;
    fetch(f, TORO_TOPIC_PROCESS, &m);
    assert_int_equal(toro_stage_process(&f->ctx, &m), 0);
    toro_bus_msg_clear(&m);
    toro_question_t q;
    assert_int_equal(status_of(f, qid, &q), TORO_STATUS_COMPLETED);
    assert_int_equal(q.attempts, 2);
    toro_question_clear(&q);
    /* processing was announced once, completed once */
    assert_int_equal(depth(f, TORO_TOPIC_NOTIFY), 2);
}

/* The store forgot the move to processing while the answer was made: the
 * answer's commit is refused, but the question has not ended, so the event
 * is not acked: its redelivery answers it. */
static void test_forgotten_move_is_answered_again(void **state)
{
    fixture_t *f = *state;
    char qid[37];
    ingest(f, "ana", "O que é CRI?", qid);
    f->ans.forget = f->path;
    toro_bus_msg_t m;
    fetch(f, TORO_TOPIC_PROCESS, &m);
    assert_int_not_equal(toro_stage_process(&f->ctx, &m), 0); /* left for redelivery */
    toro_bus_msg_clear(&m);
    assert_int_equal(status_of(f, qid, NULL), TORO_STATUS_PENDING);
    assert_int_equal(depth(f, TORO_TOPIC_PROCESS), 1);
    fetch(f, TORO_TOPIC_PROCESS, &m);
    assert_int_equal(m.deliveries, 2);
    assert_int_equal(toro_stage_process(&f->ctx, &m), 0);
    toro_bus_msg_clear(&m);
    assert_int_equal(status_of(f, qid, NULL), TORO_STATUS_COMPLETED);
    assert_int_equal(f->ans.calls, 2);
    assert_int_equal(depth(f, TORO_TOPIC_PROCESS), 0);
}

static void test_retry_then_complete(void **state)
{
    fixture_t *f = *state;
    f->ans.fail_first = 2;
    f->ctx.max_attempts = 3;
    char qid[37];
    ingest(f, "ana", "O que é FGC?", qid);
    for (int i = 1; i <= 3; i++) {
        toro_bus_msg_t m;
        fetch(f, TORO_TOPIC_PROCESS, &m);
        assert_int_equal(m.deliveries, i);
        toro_stage_process(&f->ctx, &m);
        toro_bus_msg_clear(&m);
        assert_int_equal(status_of(f, qid, NULL), i < 3 ? TORO_STATUS_PROCESSING : TORO_STATUS_COMPLETED);
    }
    assert_int_equal(f->ans.calls, 3);
    assert_int_equal(depth(f, TORO_TOPIC_PROCESS), 0);
    assert_int_equal(depth(f, TORO_TOPIC_NOTIFY), 1); /* completed once (processing is pushed, not queued) */
}

static void test_retry_exhausted_marks_error(void **state)
{
    fixture_t *f = *state;
    f->ans.fail_first = 100;
    f->ctx.max_attempts = 3;
    char qid[37];
    toro_connection_t c1 = {"conn-1", "ana", "node-a", 1};
    assert_int_equal(toro_store_put_connection(f->store, &c1), 0);
    ingest(f, "ana", "O que é CRI?", qid);
    for (int i = 1; i <= 3; i++) {
        toro_bus_msg_t m;
        fetch(f, TORO_TOPIC_PROCESS, &m);
        toro_stage_process(&f->ctx, &m);
        toro_bus_msg_clear(&m);
    }
    toro_question_t q;
    assert_int_equal(status_of(f, qid, &q), TORO_STATUS_ERROR);
    assert_non_null(strstr(q.error_message, "3 tentativas"));
    assert_null(q.answer);
    toro_question_clear(&q);
    assert_int_equal(depth(f, TORO_TOPIC_PROCESS), 0);
    drain_notify(f);
    assert_non_null(strstr(f->posted.last, "\"status\":\"error\""));
    assert_non_null(strstr(f->posted.last, "\"error_message\""));
}

static void test_permanent_failure_is_not_retried(void **state)
{
    fixture_t *f = *state;
    f->ans.fail_first = 1;
    f->ans.permanent = 1;
    char qid[37];
    ingest(f, "ana", "O que é CRA?", qid);
    toro_bus_msg_t m;
    fetch(f, TORO_TOPIC_PROCESS, &m);
    toro_stage_process(&f->ctx, &m);
    toro_bus_msg_clear(&m);
    assert_int_equal(status_of(f, qid, NULL), TORO_STATUS_ERROR);
    assert_int_equal(f->ans.calls, 1);
    assert_int_equal(depth(f, TORO_TOPIC_PROCESS), 0);
}

static void test_too_many_deliveries_dead_letter(void **state)
{
    fixture_t *f = *state;
    char qid[37];
    ingest(f, "ana", "O que é IPCA?", qid);
    toro_bus_msg_t m;
    fetch(f, TORO_TOPIC_PROCESS, &m);
    m.deliveries = f->ctx.max_deliveries + 1; /* as if it had crashed workers this often */
    toro_stage_process(&f->ctx, &m);
    toro_bus_msg_clear(&m);
    assert_int_equal(f->ans.calls, 0);
    toro_question_t q;
    assert_int_equal(status_of(f, qid, &q), TORO_STATUS_ERROR);
    assert_non_null(strstr(q.error_message, "entregas"));
    toro_question_clear(&q);
    assert_int_equal(depth(f, TORO_TOPIC_PROCESS), 0);
    /* a malformed event also goes to the dead letters, without a crash */
    toro_bus_msg_t bad = {.id = 1, .payload = "{oops", .deliveries = 1};
    toro_stage_process(&f->ctx, &bad);
}

static void test_guarded_updates(void **state)
{
    fixture_t *f = *state;
    char qid[37];
    ingest(f, "ana", "O que é Selic?", qid);
    toro_question_t r = {.user_id = "ana", .question_id = qid, .answer = "x", .model = "m", .kb_version = "v"};
    /* completed only from processing */
    assert_int_equal(toro_store_complete(f->store, &r, NULL), TORO_ECONFLICT);
    bool first;
    int attempts;
    assert_int_equal(toro_store_start_processing(f->store, "ana", qid, NULL, &first, &attempts), 0);
    assert_int_equal(toro_store_complete(f->store, &r, NULL), 0);
    /* terminal: no way back */
    assert_int_equal(toro_store_start_processing(f->store, "ana", qid, NULL, &first, &attempts), TORO_ECONFLICT);
    assert_int_equal(toro_store_fail(f->store, "ana", qid, "late", NULL), TORO_ECONFLICT);
    r.answer = "another answer";
    assert_int_equal(toro_store_complete(f->store, &r, NULL), TORO_ECONFLICT);
    toro_question_t q;
    assert_int_equal(status_of(f, qid, &q), TORO_STATUS_COMPLETED);
    assert_string_equal(q.answer, "x");
    toro_question_clear(&q);
    /* a question of another user under the same id cannot be created */
    toro_question_t dup = {.user_id = "ana", .question_id = qid, .question = "q", .created_at = 1};
    toro_event_t ev = {TORO_TOPIC_PROCESS, "{}"};
    assert_int_equal(toro_store_create_question(f->store, &dup, &ev), TORO_ECONFLICT);
}

static void test_pagination(void **state)
{
    fixture_t *f = *state;
    toro_event_t ev = {TORO_TOPIC_PROCESS, "{}"};
    /* 7 questions of ana; two share a timestamp; one of bia in between */
    const int64_t times[] = {1000, 2000, 3000, 3000, 4000, 5000, 6000};
    char ids[7][37];
    for (int i = 0; i < 7; i++) {
        snprintf(ids[i], sizeof ids[i], "00000000-0000-4000-8000-00000000000%d", i);
        char text[32];
        snprintf(text, sizeof text, "pergunta %d", i);
        toro_question_t q = {.user_id = "ana", .question_id = ids[i], .question = text, .created_at = times[i]};
        assert_int_equal(toro_store_create_question(f->store, &q, &ev), 0);
    }
    toro_question_t b = {.user_id = "bia", .question_id = "00000000-0000-4000-8000-000000000099", .question = "x",
                         .created_at = 3500};
    assert_int_equal(toro_store_create_question(f->store, &b, &ev), 0);

    /* expected order: newest first, ties by question id descending */
    const int order[] = {6, 5, 4, 3, 2, 1, 0};
    char *cursor = NULL;
    int seen = 0, pages = 0;
    do {
        toro_question_t *items;
        size_t n;
        char *next = NULL;
        assert_int_equal(toro_store_list_questions(f->store, "ana", 3, cursor, &items, &n, &next), 0);
        pages++;
        for (size_t i = 0; i < n; i++) {
            assert_true(seen < 7);
            assert_string_equal(items[i].question_id, ids[order[seen]]);
            assert_string_equal(items[i].user_id, "ana");
            seen++;
        }
        toro_questions_free(items, n);
        free(cursor);
        cursor = next;
    } while (cursor);
    assert_int_equal(seen, 7);
    assert_int_equal(pages, 3);

    toro_question_t *items;
    size_t n;
    char *next;
    assert_int_equal(toro_store_list_questions(f->store, "ana", 7, NULL, &items, &n, &next), 0);
    assert_int_equal(n, 7);
    assert_null(next); /* exactly one page: no token */
    toro_questions_free(items, n);
    assert_int_equal(toro_store_list_questions(f->store, "ana", 3, "not-a-token!", &items, &n, &next), TORO_EINVAL);
    assert_int_equal(toro_store_list_questions(f->store, "ana", 3, "Zm9v", &items, &n, &next), TORO_EINVAL);
    assert_int_equal(toro_store_list_questions(f->store, "nobody", 3, NULL, &items, &n, &next), 0);
    assert_int_equal(n, 0);
    toro_questions_free(items, n);
}

static void test_backoff(void **state)
{
    fixture_t *f = *state;
    f->ctx.backoff_base_ms = 100;
    f->ctx.backoff_max_ms = 1000;
    int prev = 0;
    for (int a = 1; a <= 4; a++) {
        int d = toro_stage_backoff_ms(&f->ctx, a);
        int nominal = 100 << (a - 1);
        assert_true(d <= nominal && d >= nominal * 3 / 4);
        assert_true(d > prev);
        prev = d;
    }
    assert_true(toro_stage_backoff_ms(&f->ctx, 10) <= 1000);
    assert_true(toro_stage_backoff_ms(&f->ctx, 10) >= 750);
}

/* ana, on connection conn_id, asks question; *m: its process event. */
static void ask_connected(fixture_t *f, char *conn_id, const char *question, char qid[37], toro_bus_msg_t *m)
{
    toro_connection_t c = {conn_id, "ana", "node-b", 1};
    assert_int_equal(toro_store_put_connection(f->store, &c), 0);
    ingest(f, "ana", question, qid);
    fetch(f, TORO_TOPIC_PROCESS, m);
}

static void test_unreachable_gateway_redelivers_update(void **state)
{
    fixture_t *f = *state;
    char qid[37];
    toro_bus_msg_t m;
    ask_connected(f, "down-1", "O que é LCA?", qid, &m);
    f->posted.down = 1;
    assert_int_equal(toro_stage_process(&f->ctx, &m), 0); /* the processing push is lost: best-effort */
    toro_bus_msg_clear(&m);
    assert_int_equal(status_of(f, qid, NULL), TORO_STATUS_COMPLETED);
    fetch(f, TORO_TOPIC_NOTIFY, &m); /* the completed update */
    toro_stage_notify(&f->ctx, &m);
    toro_bus_msg_clear(&m);
    assert_int_equal(f->posted.count, 0);
    assert_int_equal(depth(f, TORO_TOPIC_NOTIFY), 1); /* not acked: still queued */
    f->posted.down = 0;
    drain_notify(f); /* after the backoff the final update arrives */
    assert_int_equal(f->posted.count, 1);
    assert_non_null(strstr(f->posted.last, "\"status\":\"completed\""));
    assert_int_equal(depth(f, TORO_TOPIC_NOTIFY), 0);
    /* the connection row survived: it was unreachable, not gone */
    toro_connection_t *conns;
    size_t n;
    assert_int_equal(toro_store_list_connections(f->store, "ana", &conns, &n), 0);
    assert_int_equal(n, 1);
    toro_connections_free(conns, n);
}

/* A process stage that cannot reach the sockets (no post: the process
 * function on AWS) announces processing by a notify event, as before. */
static void test_processing_by_event_without_post(void **state)
{
    fixture_t *f = *state;
    char qid[37];
    toro_bus_msg_t m;
    ask_connected(f, "conn-1", "O que é CDB?", qid, &m);
    f->ctx.post = NULL;
    assert_int_equal(toro_stage_process(&f->ctx, &m), 0);
    toro_bus_msg_clear(&m);
    assert_int_equal(depth(f, TORO_TOPIC_NOTIFY), 2); /* processing, completed */
    f->ctx.post = fake_post;
    fetch(f, TORO_TOPIC_NOTIFY, &m);
    assert_int_equal(toro_stage_notify(&f->ctx, &m), 0);
    toro_bus_msg_clear(&m);
    assert_non_null(strstr(f->posted.last, "\"status\":\"processing\""));
    drain_notify(f);
    assert_int_equal(f->posted.count, 2);
    assert_non_null(strstr(f->posted.last, "\"status\":\"completed\""));
}

static void test_group_commit_all_or_none(void **state)
{
    fixture_t *f = *state;
    toro_ingest_item_t items[3];
    const char *err = NULL;
    const char *bodies[3] = {"{\"question\":\"O que é CDB?\"}", "{\"question\":\"O que é LCI?\"}",
                             "{\"user_id\":\"ana\",\"question\":\"O que é CRI?\"}"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(toro_stage_ingest_prepare(&f->ctx, bodies[i], strlen(bodies[i]), "ana", &items[i], &err), 0);
    int results[3] = {-99, -99, -99};
    assert_int_equal(toro_stage_ingest_commit(&f->ctx, items, 3, results), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(results[i], 0);
        assert_int_equal(status_of(f, items[i].q.question_id, NULL), TORO_STATUS_PENDING);
    }
    assert_int_equal(depth(f, TORO_TOPIC_PROCESS), 3);
    /* a batch with a clash (the same id twice) commits nothing */
    toro_ingest_item_t again[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(toro_stage_ingest_prepare(&f->ctx, bodies[i], strlen(bodies[i]), "ana", &again[i], &err), 0);
    free(again[1].q.question_id);
    again[1].q.question_id = strdup(items[0].q.question_id);
    assert_int_equal(toro_stage_ingest_commit(&f->ctx, again, 2, results), TORO_ECONFLICT);
    assert_int_equal(results[0], TORO_ECONFLICT);
    assert_int_equal(results[1], TORO_ECONFLICT);
    toro_question_t q = {0};
    assert_int_equal(toro_store_get_question(f->store, again[0].q.question_id, &q), TORO_ENOTFOUND);
    assert_int_equal(depth(f, TORO_TOPIC_PROCESS), 3);
    /* prepare enforces the token's user */
    toro_ingest_item_t bad;
    const char *other = "{\"user_id\":\"bia\",\"question\":\"oi\"}";
    assert_int_equal(toro_stage_ingest_prepare(&f->ctx, other, strlen(other), "ana", &bad, &err), TORO_EFORBIDDEN);
    for (int i = 0; i < 3; i++)
        toro_ingest_item_clear(&items[i]);
    for (int i = 0; i < 2; i++)
        toro_ingest_item_clear(&again[i]);
}

static void test_lease_released_on_reopen(void **state)
{
    fixture_t *f = *state;
    char qid[37];
    ingest(f, "ana", "O que é CDI?", qid);
    toro_bus_msg_t m;
    fetch(f, TORO_TOPIC_PROCESS, &m);
    toro_bus_msg_clear(&m);
    /* leased: invisible to other consumers */
    assert_int_equal(toro_bus_fetch(f->bus, TORO_TOPIC_PROCESS, 50, &m), TORO_EEMPTY);
    /* the process "crashes"; a new run opens the same file */
    toro_bus_close(f->bus);
    char *err = NULL;
    assert_int_equal(toro_bus_local_open(toro_store_outbox(f->store), 60000, &f->bus, &err), 0);
    f->ctx.bus = f->bus;
    fetch(f, TORO_TOPIC_PROCESS, &m);
    assert_int_equal(m.deliveries, 2);
    toro_bus_msg_clear(&m);
}

/* Conversations: ingest gives the first question a conversation, a body
 * with conversation_id continues it (another user's is ENOTFOUND), and the
 * process stage asks the answerer the follow-up's standalone query, stored
 * as retrieval_query and pushed with the update. */
static void process_next(fixture_t *f)
{
    toro_bus_msg_t m;
    fetch(f, TORO_TOPIC_PROCESS, &m);
    assert_int_equal(toro_stage_process(&f->ctx, &m), 0);
    toro_bus_msg_clear(&m);
}

static void test_follow_up_in_a_conversation(void **state)
{
    fixture_t *f = *state;
    char qid[37];
    ingest(f, "ana", "Quanto rende o CDB?", qid);
    process_next(f);
    toro_question_t first;
    assert_int_equal(status_of(f, qid, &first), TORO_STATUS_COMPLETED);
    assert_non_null(first.conversation_id);
    assert_null(first.retrieval_query);
    char body[256];
    snprintf(body, sizeof body, "{\"question\":\"E a LCA?\",\"conversation_id\":\"%s\"}", first.conversation_id);
    toro_ingest_item_t item;
    const char *err = NULL;
    assert_int_equal(toro_stage_ingest_prepare(&f->ctx, body, strlen(body), "eve", &item, &err), TORO_ENOTFOUND);
    toro_ingest_item_clear(&item);
    assert_int_equal(toro_stage_ingest_prepare(&f->ctx, body, strlen(body), "ana", &item, &err), 0);
    assert_string_equal(item.q.conversation_id, first.conversation_id);
    int result = -1;
    assert_int_equal(toro_stage_ingest_commit(&f->ctx, &item, 1, &result), 0);
    snprintf(qid, sizeof qid, "%s", item.q.question_id);
    toro_ingest_item_clear(&item);
    toro_connection_t c1 = {"conn-1", "ana", "node-a", 1};
    assert_int_equal(toro_store_put_connection(f->store, &c1), 0);
    drain_notify(f);
    process_next(f);
    toro_question_t q;
    assert_int_equal(status_of(f, qid, &q), TORO_STATUS_COMPLETED);
    assert_string_equal(q.retrieval_query, "Quanto rende o LCA?");
    assert_string_equal(q.answer, "Resposta 2 para: Quanto rende o LCA? [1]"); /* the answerer got the rewrite */
    assert_string_equal(q.question, "E a LCA?");
    drain_notify(f);
    assert_non_null(strstr(f->posted.last, "\"retrieval_query\":\"Quanto rende o LCA?\""));
    assert_non_null(strstr(f->posted.last, first.conversation_id));
    toro_question_clear(&q);
    toro_question_clear(&first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipeline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redelivery_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_mid_processing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forgotten_move_is_answered_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_then_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_exhausted_marks_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permanent_failure_is_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_deliveries_dead_letter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guarded_updates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_gateway_redelivers_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processing_by_event_without_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_all_or_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_released_on_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_up_in_a_conversation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
