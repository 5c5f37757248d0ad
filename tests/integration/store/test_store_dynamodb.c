/* test_store_dynamodb.c: what only the DynamoDB store (store/dynamodb.c)
 * has, against moto_server (moto_fixture.h; missing: fails under CI=true,
 * skipped elsewhere), beside the shared contract of test_store_contract.c:
 * the pagination token round trip over the "history" index, several
 * connections per user, the conditional write that refuses a stale or
 * racing transition, the transactional create (question item, id item and
 * outbox item together, or none), the URL and credential checks, and the
 * error mapping (no server: TORO_EIO; missing tables: TORO_EIO), and
 * `toro db migrate` (TORO_BIN) creating the tables. Items are
 * read back raw through core/aws_http.h to check the reference's keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/aws_http.h"
#include "core/error.h"
#include "store/open.h"
#include "store/store.h"
#include "integration/store/moto_fixture.h"

static moto_t moto;
static int moto_state; /* 0 not tried, 1 up, -1 unavailable */

typedef struct fixture {
    toro_store_t *store;
    char url[512];
    char tq[64], tc[64], to[64]; /* table names */
} fixture_t;

static int setup(void **state)
{
    static int seq;
    *state = NULL;
    if (moto_state == 0)
        moto_state = moto_start(&moto, "test_store_dynamodb") == 0 ? 1 : -1;
    if (moto_state < 0)
        return moto_in_ci() ? -1 : 0;
    setenv("AWS_ACCESS_KEY_ID", "testing", 0);
    setenv("AWS_SECRET_ACCESS_KEY", "testing", 0);
    fixture_t *f = calloc(1, sizeof *f);
    int n = ++seq;
    snprintf(f->tq, sizeof f->tq, "dq_%d_%d", (int)getpid(), n);
    snprintf(f->tc, sizeof f->tc, "dc_%d_%d", (int)getpid(), n);
    snprintf(f->to, sizeof f->to, "do_%d_%d", (int)getpid(), n);
    snprintf(f->url, sizeof f->url, "dynamodb://us-east-1?endpoint=%s&questions=%s&connections=%s&outbox=%s",
             moto.endpoint, f->tq, f->tc, f->to);
    char *err = NULL;
    assert_int_equal(toro_store_dynamodb_migrate(f->url, NULL, &err), 0);
    assert_int_equal(toro_store_open(f->url, TORO_DB_SYNC_NORMAL, &f->store, &err), 0);
    assert_string_equal(f->store->ops->name, "dynamodb");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f) {
        toro_store_close(f->store);
        free(f);
    }
    return 0;
}

static fixture_t *fixture_or_skip(void **state)
{
    if (!*state)
        skip();
    return *state;
}

/* One raw DynamoDB request to moto; the reply (caller decrefs). */
static json_t *raw(const char *action, const char *body)
{
    char target[64], url[96], key[] = "testing";
    snprintf(target, sizeof target, "DynamoDB_20120810.%s", action);
    snprintf(url, sizeof url, "%s/", moto.endpoint);
    const toro_aws_creds_t cred = {key, key, NULL};
    const toro_aws_header_t amz_target = {"x-amz-target", target};
    const toro_aws_request_t t = {.url = url, .service = "dynamodb", .region = "us-east-1",
                                  .content_type = "application/x-amz-json-1.0", .headers = &amz_target,
                                  .n_headers = 1, .body = body, .body_len = strlen(body), .timeout_ms = 10000};
    long status = 0;
    char *resp = NULL, *err = NULL;
    assert_int_equal(toro_aws_post(&t, &cred, &status, &resp, &err), 0);
    assert_int_equal(status, 200);
    json_t *j = json_loads(resp, 0, NULL);
    free(resp);
    assert_non_null(j);
    return j;
}

static json_t *raw_get(const char *table, const char *pk, const char *sk)
{
    char body[512];
    snprintf(body, sizeof body, "{\"TableName\":\"%s\",\"Key\":{\"PK\":{\"S\":\"%s\"},\"SK\":{\"S\":\"%s\"}}}", table, pk,
             sk);
    return raw("GetItem", body);
}

static const char *attr_s(json_t *item, const char *k)
{
    return json_string_value(json_object_get(json_object_get(item, k), "S"));
}

static long raw_count(const char *table)
{
    char body[128];
    snprintf(body, sizeof body, "{\"TableName\":\"%s\",\"Select\":\"COUNT\"}", table);
    json_t *j = raw("Scan", body);
    long n = (long)json_integer_value(json_object_get(j, "Count"));
    json_decref(j);
    return n;
}

static const toro_event_t process_ev = {TORO_TOPIC_PROCESS, "{\"user_id\":\"u\",\"question_id\":\"q\"}"};

static void create(toro_store_t *s, const char *user, const char *qid, int64_t at)
{
    toro_question_t q = {.user_id = (char *)user, .question_id = (char *)qid, .question = "O que é CDB?",
                         .created_at = at};
    assert_int_equal(toro_store_create_question(s, &q, &process_ev), 0);
}

static void assert_opaque(const char *token)
{
    assert_non_null(token);
    for (const char *p = token; *p; p++) /* base64url only: no key, no JSON shows through */
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", *p));
    assert_null(strstr(token, "USER#"));
}

/* Pages of 2 over 5 questions, newest first; a token used twice gives the
 * same page; a full last page has no token; a forged token is refused. */
static void test_pagination_token_round_trip(void **state)
{
    toro_store_t *s = fixture_or_skip(state)->store;
    char qid[5][40];
    for (int i = 0; i < 5; i++) {
        snprintf(qid[i], sizeof qid[i], "00000000-0000-4000-8000-0000000001%02d", i);
        create(s, "pat", qid[i], 1000 + 10 * i);
    }
    create(s, "other", "00000000-0000-4000-8000-000000000999", 5000);
    toro_question_t *items = NULL;
    size_t n = 0;
    char *next = NULL, *cursor = NULL;
    int seen = 4;
    for (int page = 0; page < 3; page++) {
        assert_int_equal(toro_store_list_questions(s, "pat", 2, cursor, &items, &n, &next), 0);
        assert_int_equal(n, page < 2 ? 2 : 1);
        for (size_t i = 0; i < n; i++)
            assert_string_equal(items[i].question_id, qid[seen--]);
        toro_questions_free(items, n);
        if (page == 0) { /* the same token twice: the same page */
            assert_opaque(next);
            toro_question_t *again = NULL;
            size_t n2 = 0;
            char *next2 = NULL;
            assert_int_equal(toro_store_list_questions(s, "pat", 2, next, &again, &n2, &next2), 0);
            assert_int_equal(n2, 2);
            assert_string_equal(again[0].question_id, qid[2]);
            assert_non_null(next2);
            toro_questions_free(again, n2);
            free(next2);
        }
        free(cursor);
        cursor = next;
        if (page < 2)
            assert_non_null(cursor);
    }
    assert_null(cursor);
    assert_int_equal(seen, -1);
    /* exactly one full page: no token */
    create(s, "duo", "00000000-0000-4000-8000-000000000201", 1);
    create(s, "duo", "00000000-0000-4000-8000-000000000202", 2);
    assert_int_equal(toro_store_list_questions(s, "duo", 2, NULL, &items, &n, &next), 0);
    assert_int_equal(n, 2);
    assert_null(next);
    toro_questions_free(items, n);
    assert_int_equal(toro_store_list_questions(s, "pat", 2, "eyJQSyI6IlVTRVIjcGF0In0", &items, &n, &next),
                     TORO_EINVAL);
}

static void expect_conns(toro_store_t *s, const char *user, size_t want, const char *first)
{
    toro_connection_t *list = NULL;
    size_t n = 0;
    assert_int_equal(toro_store_list_connections(s, user, &list, &n), 0);
    assert_int_equal(n, want);
    if (first)
        assert_string_equal(list[0].connection_id, first);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(list[i].user_id, user);
    toro_connections_free(list, n);
}

/* Several connections per user under PK USER#<id>; one moving to another
 * user; delete by node and by id. */
static void test_several_connections_per_user(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_store_t *s = f->store;
    toro_connection_t c[] = {{"k1", "ana", "n1", 30}, {"k2", "ana", "n1", 10}, {"k3", "ana", "n2", 20},
                             {"k4", "bob", "n1", 40}};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(toro_store_put_connection(s, &c[i]), 0);
    expect_conns(s, "ana", 3, "k2"); /* oldest first */
    json_t *j = raw_get(f->tc, "USER#ana", "CONN#k3");
    assert_string_equal(attr_s(json_object_get(j, "Item"), "node"), "n2");
    json_decref(j);
    toro_connection_t moved = {"k1", "bob", "n2", 50};
    assert_int_equal(toro_store_put_connection(s, &moved), 0);
    expect_conns(s, "ana", 2, "k2");
    expect_conns(s, "bob", 2, "k4");
    assert_int_equal(toro_store_delete_node_connections(s, "n1"), 0);
    expect_conns(s, "ana", 1, "k3");
    expect_conns(s, "bob", 1, "k1");
    assert_int_equal(toro_store_delete_connection(s, "k3"), 0);
    assert_int_equal(toro_store_delete_connection(s, "k3"), 0); /* gone already: fine */
    expect_conns(s, "ana", 0, NULL);
    assert_int_equal(raw_count(f->tc), 1);
}

typedef struct racer {
    toro_store_t *s;
    const char *qid;
    int rc;
    bool first;
} racer_t;

static void *race_start(void *arg)
{
    racer_t *r = arg;
    int attempts = 0;
    const toro_event_t e = {"race", "{}"};
    r->rc = toro_store_start_processing(r->s, "rui", r->qid, &e, &r->first, &attempts);
    return NULL;
}

/* Two workers (two store handles): the condition on status and attempts
 * refuses a stale transition and loses no racing update. */
static void test_conditional_write_refuses_stale_transition(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_store_t *a = f->store, *b = NULL;
    char *err = NULL;
    assert_int_equal(toro_store_open(f->url, TORO_DB_SYNC_NORMAL, &b, &err), 0);
    const char *qid = "00000000-0000-4000-8000-000000000301";
    create(a, "rui", qid, 1);
    enum { N = 4 };
    racer_t r[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        r[i] = (racer_t){.s = i % 2 ? b : a, .qid = qid};
        assert_int_equal(pthread_create(&th[i], NULL, race_start, &r[i]), 0);
    }
    int firsts = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].rc, 0);
        firsts += r[i].first;
    }
    assert_int_equal(firsts, 1); /* one moved it from pending */
    long depth = -1;
    assert_int_equal(toro_outbox_depth(toro_store_outbox(a), "race", &depth), 0);
    assert_int_equal(depth, 1); /* announced once */
    toro_question_t done = {.user_id = "rui", .question_id = (char *)qid, .answer = "sim", .model = "m"};
    assert_int_equal(toro_store_complete(a, &done, NULL), 0);
    /* b's view is stale: every move from here is refused */
    assert_int_equal(toro_store_fail(b, "rui", qid, "late", NULL), TORO_ECONFLICT);
    done.answer = "outra";
    assert_int_equal(toro_store_complete(b, &done, NULL), TORO_ECONFLICT);
    toro_question_t q = {0};
    assert_int_equal(toro_store_get_question(b, qid, &q), 0);
    assert_int_equal(q.status, TORO_STATUS_COMPLETED);
    assert_int_equal(q.attempts, N); /* no increment lost */
    assert_string_equal(q.answer, "sim");
    assert_string_equal(q.model, "m");
    assert_null(q.kb_version);
    assert_null(q.error_message);
    toro_question_clear(&q);
    toro_store_close(b);
}

/* The question item (reference keys), its id item and its outbox item are
 * written together; a refused create writes none of them. */
static void test_transactional_create(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_store_t *s = f->store;
    const char *qid = "00000000-0000-4000-8000-000000000401";
    create(s, "tia", qid, 77);
    json_t *j = raw_get(f->tq, "USER#tia", "QUESTION#00000000-0000-4000-8000-000000000401");
    json_t *item = json_object_get(j, "Item");
    assert_string_equal(attr_s(item, "status"), "pending");
    assert_string_equal(attr_s(item, "question"), "O que é CDB?");
    json_decref(j);
    j = raw_get(f->tq, "QUESTION#00000000-0000-4000-8000-000000000401", "QUESTION#00000000-0000-4000-8000-000000000401");
    assert_string_equal(attr_s(json_object_get(j, "Item"), "user_id"), "tia");
    json_decref(j);
    assert_int_equal(raw_count(f->to), 1);
    toro_outbox_event_t ev;
    size_t n = 0;
    assert_int_equal(toro_outbox_claim(toro_store_outbox(s), TORO_TOPIC_PROCESS, 4, 60000, &ev, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ev.payload, process_ev.payload);
    toro_outbox_events_clear(&ev, 1);
    /* the same id under another user: refused, nothing written */
    toro_question_t dup = {.user_id = "ugo", .question_id = (char *)qid, .question = "x", .created_at = 1};
    assert_int_equal(toro_store_create_question(s, &dup, &process_ev), TORO_ECONFLICT);
    assert_int_equal(raw_count(f->to), 1);
    assert_int_equal(raw_count(f->tq), 2);
    j = raw_get(f->tq, "USER#ugo", "QUESTION#00000000-0000-4000-8000-000000000401");
    assert_null(json_object_get(j, "Item"));
    json_decref(j);
}

/* Bad URLs and credentials fail at open; no server and missing tables are
 * TORO_EIO at the call. */
static void test_urls_and_errors(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_store_t *s = NULL;
    char *err = NULL;
    assert_int_equal(toro_store_open("dynamodb://us-east-1?tabel=x", TORO_DB_SYNC_NORMAL, &s, &err), TORO_EINVAL);
    assert_non_null(strstr(err, "tabel"));
    free(err);
    err = NULL;
    assert_int_equal(toro_store_open("dynamodb://us-east-1?endpoint=ftp://x", TORO_DB_SYNC_NORMAL, &s, &err),
                     TORO_EINVAL);
    free(err);
    err = NULL;
    char *saved = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
    unsetenv("AWS_SECRET_ACCESS_KEY");
    assert_int_equal(toro_store_open(f->url, TORO_DB_SYNC_NORMAL, &s, &err), TORO_EINVAL);
    assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY"));
    setenv("AWS_SECRET_ACCESS_KEY", saved, 1);
    free(saved);
    free(err);
    err = NULL;
    assert_null(s);
    char url[256];
    snprintf(url, sizeof url, "dynamodb://us-east-1?endpoint=http://127.0.0.1:%d", moto_free_port());
    assert_int_equal(toro_store_open(url, TORO_DB_SYNC_NORMAL, &s, &err), 0);
    assert_int_equal(toro_store_ping(s), TORO_EIO);
    toro_store_close(s);
    snprintf(url, sizeof url, "dynamodb://us-east-1?endpoint=%s&questions=nope&connections=nope&outbox=nope",
             moto.endpoint);
    assert_int_equal(toro_store_open(url, TORO_DB_SYNC_NORMAL, &s, &err), 0);
    toro_question_t q = {0};
    assert_int_equal(toro_store_get_question(s, "00000000-0000-4000-8000-000000000001", &q), TORO_EIO);
    toro_store_close(s);
    assert_int_equal(toro_store_ping(f->store), 0);
    assert_int_equal(toro_store_url_kind("dynamodb://eu-west-1"), TORO_STORE_URL_DYNAMODB);
}

/* What `toro db migrate --store url` prints (stdout and stderr), and its
 * exit status. */
static int migrate_cli(const char *bin, const char *url, char *line, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' db migrate --store '%s' 2>&1", bin, url);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(line, 1, cap - 1, p);
    line[n] = '\0';
    return pclose(p);
}

/* `toro db migrate --store dynamodb://…` creates missing tables only. */
static void test_db_migrate_command(void **state)
{
    fixture_or_skip(state);
    const char *bin = getenv("TORO_BIN");
    if (!bin)
        skip(); /* run outside ctest */
    char url[512], line[4096];
    snprintf(url, sizeof url, "dynamodb://us-east-1?endpoint=%s&questions=mq_%d&connections=mc_%d&outbox=mo_%d",
             moto.endpoint, (int)getpid(), (int)getpid(), (int)getpid());
    assert_int_equal(migrate_cli(bin, url, line, sizeof line), 0);
    assert_non_null(strstr(line, "(3 created)"));
    assert_int_equal(migrate_cli(bin, url, line, sizeof line), 0);
    assert_non_null(strstr(line, "(0 created)"));
    snprintf(url, sizeof url, "dynamodb://us-east-1?endpoint=http://127.0.0.1:%d", moto_free_port());
    assert_true(migrate_cli(bin, url, line, sizeof line) != 0);
    assert_non_null(strstr(line, "toro db migrate: cannot create DynamoDB table"));
}

/* A questions table made before the conversation and feedback indexes
 * (only "history") is refused by migrate, naming the index to add. */
static void test_migrate_refuses_a_table_without_the_new_indexes(void **state)
{
    fixture_or_skip(state);
    char body[1024], url[512], *err = NULL;
    snprintf(body, sizeof body,
             "{\"TableName\":\"old_q_%d\",\"AttributeDefinitions\":[{\"AttributeName\":\"PK\",\"AttributeType\":\"S\"},"
             "{\"AttributeName\":\"SK\",\"AttributeType\":\"S\"},{\"AttributeName\":\"created_key\",\"AttributeType\":"
             "\"S\"}],\"KeySchema\":[{\"AttributeName\":\"PK\",\"KeyType\":\"HASH\"},{\"AttributeName\":\"SK\","
             "\"KeyType\":\"RANGE\"}],\"LocalSecondaryIndexes\":[{\"IndexName\":\"history\",\"KeySchema\":"
             "[{\"AttributeName\":\"PK\",\"KeyType\":\"HASH\"},{\"AttributeName\":\"created_key\",\"KeyType\":"
             "\"RANGE\"}],\"Projection\":{\"ProjectionType\":\"ALL\"}}],\"BillingMode\":\"PAY_PER_REQUEST\"}",
             (int)getpid());
    json_decref(raw("CreateTable", body));
    snprintf(url, sizeof url, "dynamodb://us-east-1?endpoint=%s&questions=old_q_%d&connections=old_c_%d&outbox=old_o_%d",
             moto.endpoint, (int)getpid(), (int)getpid(), (int)getpid());
    assert_int_equal(toro_store_dynamodb_migrate(url, NULL, &err), TORO_EINVAL);
    assert_non_null(err);
    assert_non_null(strstr(err, "no index 'conversation'"));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pagination_token_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_several_connections_per_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditional_write_refuses_stale_transition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactional_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_urls_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_migrate_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_refuses_a_table_without_the_new_indexes, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    moto_stop(&moto);
    return failed;
}
