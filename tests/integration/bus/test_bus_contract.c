/* test_bus_contract.c: one contract for every bus.h implementation, run on
 * the local bus (topics served from a SQLite store's outbox) and on NATS
 * JetStream (fed by the relay, bus/relay.c, from a PostgreSQL store's outbox
 * in a database of its own, as `--store postgres:// --bus nats://` runs).
 * Events enter the way they do in toro: a store commit writes them to its
 * outbox (then kick). The contract: an empty topic times out with
 * TORO_EEMPTY; a message comes back with its payload and delivery count; ack
 * removes it; nack redelivers it (at once or after a delay) with one more
 * delivery; dead removes it for good; order is kept; topics are separate; a
 * message fetched and never acked comes back after its lease; interrupt ends
 * waiting fetches; a backlog fetched (and, on NATS, prefetched in batches)
 * comes out whole, each message once; a consumer that goes away holding
 * messages (in hand or prefetched) loses none of them. Publishing a batch
 * (toro_bus_publish_batch, as the relay does) stores each message once, and
 * on NATS re-publishing the same msg_ids adds nothing (the duplicate
 * window); a NATS batch that the stream refuses in part (a full stream) is
 * retried by the relay until every event is in, each once, in order. The
 * NATS run uses TORO_TEST_NATS (default
 * nats://127.0.0.1:4222) with streams of its own (prefix toro_unit_<pid>,
 * deleted at the end) and PostgreSQL at TORO_TEST_PG. When either server is
 * not reachable it fails under CI
 * (env CI=true) and is skipped with the reason on stderr elsewhere.
 * The SNS + SQS run (bus/sns.c, fed by the relay from a PostgreSQL outbox too) talks to a moto_server
 * started from the shared venv on a free port and stopped by pid at the end
 * (missing: skipped, or failed under CI); each fixture declares its own
 * topics and queues (prefix toro-unit-<pid>-<n>) with a 1 s visibility
 * timeout. SNS-only cases: redrive to the dead-letter queue after
 * maxReceiveCount receives, dead() with its reason in the dead-letter queue,
 * a bus opened without declare finding what another declared, interrupt
 * during a long poll, bad URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <pthread.h>

#include "aws_peer.h"
#include "bus/bus.h"
#include "bus/open.h"
#include "bus/relay.h"
#include "core/aws_http.h"
#include "core/error.h"
#include "core/util.h"
#include "store/store.h"

#include "integration/pg_db.h"

#define LEASE_MS 600

typedef struct fixture {
    char path[128];        /* the store's SQLite file */
    toro_store_t *store;
    toro_bus_t *bus;
    toro_relay_t *relay;   /* NATS and SNS */
    char prefix[64];       /* NATS only: stream prefix, or empty */
    char server[256];      /* NATS only */
    char sns_prefix[64];   /* SNS only: queue and topic prefix */
    char db[64];           /* NATS only: the PostgreSQL database of its store */
    char admin[512];       /* NATS only: PostgreSQL admin URL */
} fixture_t;

static pid_t moto_pid = -1; /* moto_server, started by main */
static int moto_port;
static char moto_endpoint[64];

static int open_store(fixture_t *f, const char *tag)
{
    snprintf(f->path, sizeof f->path, "/tmp/toro_bus_contract_%s_%d.db", tag, (int)getpid());
    unlink(f->path);
    char *err = NULL;
    int rc = toro_store_sqlite_open(f->path, TORO_DB_SYNC_NORMAL, &f->store, &err);
    free(err);
    return rc;
}

/* NATS runs on the combination toro allows, a PostgreSQL store's outbox: a
 * fresh database (toro_bus_<pid>_<n>) on TORO_TEST_PG (default
 * postgres://postgres@127.0.0.1:5432/postgres), migrated, dropped by teardown.
 * 0, or -1 when PostgreSQL is not reachable. */
static int open_pg_store(fixture_t *f)
{
    static int run;
    char url[640], *err = NULL;
    snprintf(f->db, sizeof f->db, "toro_bus_%d_%d", (int)getpid(), run++);
    if (pg_db_create(f->db, f->admin, url) != 0) {
        f->db[0] = '\0'; /* nothing to drop */
        return -1;
    }
    int from = -1, to = -1;
    assert_int_equal(toro_store_postgres_migrate(url, &from, &to, &err), 0);
    assert_int_equal(toro_store_postgres_open(url, &f->store, &err), 0);
    return 0;
}

static int setup_local(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    char *err = NULL;
    assert_int_equal(open_store(f, "local"), 0);
    assert_int_equal(toro_bus_local_open(toro_store_outbox(f->store), LEASE_MS, &f->bus, &err), 0);
    assert_false(toro_bus_can_publish(f->bus)); /* fed by the outbox only */
    *state = f;
    return 0;
}

static bool nats_up(const char *server)
{
    natsConnection *nc = NULL;
    bool up = natsConnection_ConnectTo(&nc, server) == NATS_OK;
    natsConnection_Destroy(nc);
    return up;
}

static int setup_nats(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    const char *server = getenv("TORO_TEST_NATS");
    snprintf(f->server, sizeof f->server, "%s", server ? server : "nats://127.0.0.1:4222");
    if (!nats_up(f->server) || open_pg_store(f) != 0) {
        const char *ci = getenv("CI");
        bool in_ci = ci && strcmp(ci, "true") == 0;
        fprintf(stderr, "test_bus_contract: NATS at %s or PostgreSQL at %s is not reachable: %s\n", f->server,
                f->admin, in_ci ? "failing (CI=true)" : "NATS tests skipped (set TORO_TEST_NATS, TORO_TEST_PG)");
        free(f);
        *state = NULL;
        return in_ci ? -1 : 0;
    }
    static int run;
    snprintf(f->prefix, sizeof f->prefix, "toro_unit_%d_%d", (int)getpid(), run++);
    char url[512], *err = NULL;
    snprintf(url, sizeof url, "%s?prefix=%s&ack_wait_ms=%d", f->server, f->prefix, LEASE_MS);
    assert_int_equal(toro_bus_nats_open(url, &f->bus, &err), 0);
    assert_true(toro_bus_can_publish(f->bus));
    assert_int_equal(toro_relay_start(toro_store_outbox(f->store), f->bus, &f->relay, &err), 0);
    *state = f;
    return 0;
}

/* Opens an SNS bus on moto for f's prefix; 0 or the bus's code. */
static int open_sns(const char *prefix, int retries, int declare, toro_bus_t **out)
{
    char url[512], *err = NULL;
    snprintf(url, sizeof url, "sns://us-east-1?endpoint=%s&prefix=%s&declare=%d&retries=%d&visibility_s=1&wait_s=1",
             moto_endpoint, prefix, declare, retries);
    int rc = toro_bus_open(url, NULL, out, &err);
    if (rc != 0)
        fprintf(stderr, "sns bus: %s\n", err ? err : "?");
    free(err);
    return rc;
}

static int setup_sns_retries(void **state, int retries)
{
    *state = NULL;
    if (moto_pid <= 0)
        return peer_missing("test_bus_contract", "moto_server is not available");
    fixture_t *f = calloc(1, sizeof *f);
    static int run;
    char *err = NULL;
    snprintf(f->sns_prefix, sizeof f->sns_prefix, "toro-unit-%d-%d", (int)getpid(), run++);
    if (open_pg_store(f) != 0) { /* a shared store's outbox, as `--store postgres:// --bus sns://` runs */
        free(f);
        return peer_missing("test_bus_contract", "PostgreSQL is not reachable (TORO_TEST_PG)");
    }
    assert_int_equal(open_sns(f->sns_prefix, retries, 1, &f->bus), 0);
    assert_true(toro_bus_can_publish(f->bus));
    assert_int_equal(toro_relay_start(toro_store_outbox(f->store), f->bus, &f->relay, &err), 0);
    *state = f;
    return 0;
}

static int setup_sns(void **state) { return setup_sns_retries(state, 5); }
static int setup_sns_redrive(void **state) { return setup_sns_retries(state, 2); }

/* Starts moto_server from the venv on a free port (moto_pid -1 when absent). */
static void moto_start(void)
{
    char bin[1024], port[16];
    if (!peer_venv_bin("moto_server", bin, sizeof bin))
        return;
    moto_port = peer_free_port();
    snprintf(port, sizeof port, "%d", moto_port);
    snprintf(moto_endpoint, sizeof moto_endpoint, "http://127.0.0.1:%d", moto_port);
    char *argv[] = {bin, "-H", "127.0.0.1", "-p", port, NULL};
    moto_pid = peer_start(argv, moto_port);
}

/* Deletes the run's streams so the shared server keeps nothing of it. */
static void delete_streams(const fixture_t *f)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    const char *suffix[] = {"process", "notify", "dead"};
    if (natsConnection_ConnectTo(&nc, f->server) == NATS_OK && natsConnection_JetStream(&js, nc, NULL) == NATS_OK) {
        for (int i = 0; i < 3; i++) {
            char name[128];
            snprintf(name, sizeof name, "%s_%s", f->prefix, suffix[i]);
            js_DeleteStream(js, name, NULL, NULL);
        }
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (!f)
        return 0;
    toro_relay_stop(f->relay);
    toro_bus_close(f->bus);
    toro_store_close(f->store);
    if (f->path[0])
        unlink(f->path);
    if (f->prefix[0])
        delete_streams(f);
    if (f->db[0])
        pg_db_drop(f->admin, f->db);
    free(f);
    return 0;
}

static fixture_t *fixture_or_skip(void **state)
{
    if (!*state)
        skip();
    return *state;
}

/* Publishes the way toro does: a store commit with the event, then kick. */
static void publish(fixture_t *f, const char *topic, const char *payload)
{
    char qid[37];
    toro_uuid4(qid);
    toro_question_t q = {.user_id = "bus", .question_id = qid, .question = "?", .created_at = toro_now_ms()};
    toro_event_t ev = {topic, payload};
    assert_int_equal(toro_store_create_question(f->store, &q, &ev), 0);
    toro_bus_kick(f->bus, topic);
}

/* Waits up to 15 s: a bound for a loaded machine (sanitizers, other
 * suites), not a timing check; a message that is there arrives at once. */
static void fetch_ok(fixture_t *f, const char *topic, toro_bus_msg_t *m, const char *payload, int deliveries)
{
    assert_int_equal(toro_bus_fetch(f->bus, topic, 15000, m), 0);
    assert_string_equal(m->payload, payload);
    assert_int_equal(m->deliveries, deliveries);
}

static void expect_empty(fixture_t *f, const char *topic, int ms)
{
    toro_bus_msg_t m;
    assert_int_equal(toro_bus_fetch(f->bus, topic, ms, &m), TORO_EEMPTY);
    assert_null(m.payload);
}

/* depth counts unacked messages; NATS updates it asynchronously */
static void expect_depth(fixture_t *f, const char *topic, long want)
{
    long n = -1;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(toro_bus_depth(f->bus, topic, &n), 0);
        if (n == want)
            return;
        toro_sleep_ms(50);
    }
    assert_int_equal(n, want);
}

static void test_fetch_ack(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_bus_msg_t m;
    int64_t t0 = toro_mono_ms();
    expect_empty(f, TORO_TOPIC_PROCESS, 200);
    assert_true(toro_mono_ms() - t0 >= 150); /* it waited */
    int64_t before = toro_now_ms();
    publish(f, TORO_TOPIC_PROCESS, "{\"n\":1}");
    fetch_ok(f, TORO_TOPIC_PROCESS, &m, "{\"n\":1}", 1);
    assert_true(m.enqueued_at >= before - 1000 && m.enqueued_at <= toro_now_ms() + 1000);
    assert_int_equal(toro_bus_ack(f->bus, TORO_TOPIC_PROCESS, &m), 0);
    toro_bus_msg_clear(&m);
    assert_null(m.payload);
    expect_empty(f, TORO_TOPIC_PROCESS, 100);
    expect_depth(f, TORO_TOPIC_PROCESS, 0);
}

static void test_nack_redelivers(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_bus_msg_t m;
    publish(f, TORO_TOPIC_PROCESS, "again");
    fetch_ok(f, TORO_TOPIC_PROCESS, &m, "again", 1);
    assert_int_equal(toro_bus_nack(f->bus, TORO_TOPIC_PROCESS, &m, 0), 0);
    toro_bus_msg_clear(&m);
    fetch_ok(f, TORO_TOPIC_PROCESS, &m, "again", 2);
    /* with a delay: not before it (a wide margin: the empty check must end
       well before the delay does, even on a loaded machine) */
    assert_int_equal(toro_bus_nack(f->bus, TORO_TOPIC_PROCESS, &m, 2500), 0);
    toro_bus_msg_clear(&m);
    expect_empty(f, TORO_TOPIC_PROCESS, 200);
    fetch_ok(f, TORO_TOPIC_PROCESS, &m, "again", 3);
    assert_int_equal(toro_bus_ack(f->bus, TORO_TOPIC_PROCESS, &m), 0);
    toro_bus_msg_clear(&m);
    expect_depth(f, TORO_TOPIC_PROCESS, 0);
}

static void test_dead_is_final(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_bus_msg_t m;
    publish(f, TORO_TOPIC_NOTIFY, "poison");
    fetch_ok(f, TORO_TOPIC_NOTIFY, &m, "poison", 1);
    assert_int_equal(toro_bus_dead(f->bus, TORO_TOPIC_NOTIFY, &m, "contract"), 0);
    toro_bus_msg_clear(&m);
    expect_empty(f, TORO_TOPIC_NOTIFY, LEASE_MS * 2); /* not even after the lease */
    expect_depth(f, TORO_TOPIC_NOTIFY, 0);
}

static void test_order_and_topics(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_bus_msg_t m;
    publish(f, TORO_TOPIC_NOTIFY, "n1");
    expect_empty(f, TORO_TOPIC_PROCESS, 200); /* topics are separate */
    publish(f, TORO_TOPIC_NOTIFY, "n2");
    publish(f, TORO_TOPIC_NOTIFY, "n3");
    expect_depth(f, TORO_TOPIC_NOTIFY, 3);
    const char *want[] = {"n1", "n2", "n3"};
    for (int i = 0; i < 3; i++) {
        fetch_ok(f, TORO_TOPIC_NOTIFY, &m, want[i], 1);
        assert_int_equal(toro_bus_ack(f->bus, TORO_TOPIC_NOTIFY, &m), 0);
        toro_bus_msg_clear(&m);
    }
    expect_depth(f, TORO_TOPIC_NOTIFY, 0);
}

/* A consumer that dies holding a message: it comes back after the lease. */
static void test_unacked_comes_back(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_bus_msg_t m;
    publish(f, TORO_TOPIC_PROCESS, "lost");
    fetch_ok(f, TORO_TOPIC_PROCESS, &m, "lost", 1);
    toro_bus_msg_clear(&m); /* never acked */
    expect_empty(f, TORO_TOPIC_PROCESS, LEASE_MS / 3);
    toro_sleep_ms(LEASE_MS);
    fetch_ok(f, TORO_TOPIC_PROCESS, &m, "lost", 2);
    assert_int_equal(toro_bus_ack(f->bus, TORO_TOPIC_PROCESS, &m), 0);
    toro_bus_msg_clear(&m);
}

static void test_interrupt(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_bus_interrupt(f->bus);
    publish(f, TORO_TOPIC_PROCESS, "late");
    int64_t t0 = toro_mono_ms();
    expect_empty(f, TORO_TOPIC_PROCESS, 3000);
    assert_true(toro_mono_ms() - t0 < 1000);
}

/* Payloads "<tag>0".."<tag>N-1" through the store, in order. */
static void publish_n(fixture_t *f, const char *topic, const char *tag, int n)
{
    for (int i = 0; i < n; i++) {
        char p[32];
        snprintf(p, sizeof p, "%s%d", tag, i);
        publish(f, topic, p);
    }
}

/* Fetches until n distinct payloads "<tag>i" were seen, each once, acking
 * them; in order unless the bus does not order (SNS). Fails on a duplicate
 * or an unknown payload, or when one does not come within 5 s. */
static void drain_all(fixture_t *f, toro_bus_t *bus, const char *topic, const char *tag, int n, bool ordered)
{
    char seen[64] = {0};
    assert_true(n <= 64);
    for (int got = 0; got < n; got++) {
        toro_bus_msg_t m;
        assert_int_equal(toro_bus_fetch(bus, topic, 5000, &m), 0);
        size_t tl = strlen(tag);
        long i = -1;
        assert_int_equal(strncmp(m.payload, tag, tl), 0);
        assert_int_equal(toro_parse_long(m.payload + tl, 0, n - 1, &i), 0);
        assert_false(seen[i]); /* each once */
        seen[i] = 1;
        if (ordered)
            assert_int_equal(i, got);
        assert_int_equal(toro_bus_ack(bus, topic, &m), 0);
        toro_bus_msg_clear(&m);
    }
    expect_empty(f, topic, 300);
}

static bool ordered_bus(const fixture_t *f) { return f->sns_prefix[0] == '\0'; }

/* A backlog larger than one fetch batch: every message once, in order. On
 * NATS the fetches after the first ask for batches (the consumer shows
 * several messages delivered and unacked while one is in hand). */
static void test_batch_fetch_ack(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_bus_msg_t m;
    publish_n(f, TORO_TOPIC_PROCESS, "b", 40);
    expect_depth(f, TORO_TOPIC_PROCESS, 40);
    if (f->prefix[0]) {
        fetch_ok(f, TORO_TOPIC_PROCESS, &m, "b0", 1); /* measures the handling time */
        assert_int_equal(toro_bus_ack(f->bus, TORO_TOPIC_PROCESS, &m), 0);
        toro_bus_msg_clear(&m);
        fetch_ok(f, TORO_TOPIC_PROCESS, &m, "b1", 1);
        natsConnection *nc = NULL;
        jsCtx *js = NULL;
        jsConsumerInfo *ci = NULL;
        char stream[96];
        snprintf(stream, sizeof stream, "%s_process", f->prefix);
        assert_int_equal(natsConnection_ConnectTo(&nc, f->server), NATS_OK);
        assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
        assert_int_equal(js_GetConsumerInfo(&ci, js, stream, TORO_TOPIC_PROCESS, NULL, NULL), NATS_OK);
        assert_true(ci->NumAckPending > 1); /* a batch was fetched, one handed out */
        jsConsumerInfo_Destroy(ci);
        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        assert_int_equal(toro_bus_ack(f->bus, TORO_TOPIC_PROCESS, &m), 0);
        toro_bus_msg_clear(&m);
        for (int i = 2; i < 40; i++) {
            char want[8];
            snprintf(want, sizeof want, "b%d", i);
            fetch_ok(f, TORO_TOPIC_PROCESS, &m, want, 1);
            assert_int_equal(toro_bus_ack(f->bus, TORO_TOPIC_PROCESS, &m), 0);
            toro_bus_msg_clear(&m);
        }
        expect_empty(f, TORO_TOPIC_PROCESS, 300);
    } else {
        drain_all(f, f->bus, TORO_TOPIC_PROCESS, "b", 40, ordered_bus(f));
    }
    expect_depth(f, TORO_TOPIC_PROCESS, 0);
}

/* A second consumer of the same topics (another worker process), or the
 * fixture's own bus on the local bus (one owner per outbox). */
static toro_bus_t *second_consumer(fixture_t *f)
{
    char url[512], *err = NULL;
    toro_bus_t *b = NULL;
    if (f->prefix[0]) {
        snprintf(url, sizeof url, "%s?prefix=%s&ack_wait_ms=%d", f->server, f->prefix, LEASE_MS);
        assert_int_equal(toro_bus_nats_open(url, &b, &err), 0);
    } else if (f->sns_prefix[0]) {
        assert_int_equal(open_sns(f->sns_prefix, 5, 0, &b), 0);
    } else {
        b = f->bus;
    }
    return b;
}

/* A worker goes away holding messages: one in hand and (NATS) the rest of
 * its batch prefetched, none acked. Nothing is lost: every message comes to
 * the other worker, once each (the one in hand after its lease). */
static void test_consumer_dies_holding_batch(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_bus_msg_t m;
    toro_bus_t *w = second_consumer(f);
    publish_n(f, TORO_TOPIC_NOTIFY, "d", 12);
    expect_depth(f, TORO_TOPIC_NOTIFY, 12);
    assert_int_equal(toro_bus_fetch(w, TORO_TOPIC_NOTIFY, 5000, &m), 0);
    assert_int_equal(toro_bus_nack(w, TORO_TOPIC_NOTIFY, &m, 0), 0); /* handled: the next fetch takes a batch */
    toro_bus_msg_clear(&m);
    assert_int_equal(toro_bus_fetch(w, TORO_TOPIC_NOTIFY, 5000, &m), 0);
    toro_bus_msg_clear(&m); /* in hand, never acked */
    if (w != f->bus)
        toro_bus_close(w); /* the worker is gone */
    toro_sleep_ms(LEASE_MS + 300);
    if (f->sns_prefix[0])
        toro_sleep_ms(1000); /* SQS visibility is whole seconds */
    drain_all(f, f->bus, TORO_TOPIC_NOTIFY, "d", 12, false);
    expect_depth(f, TORO_TOPIC_NOTIFY, 0);
}

/* The relay's path: a batch published at once, each stored once; on NATS the
 * same msg_ids again add nothing. */
static void test_publish_batch(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    char pay[6][8], ids[6][40];
    toro_bus_pub_t msgs[6];
    unsigned char ok[6];
    for (int i = 0; i < 6; i++) {
        snprintf(pay[i], sizeof pay[i], "p%d", i);
        toro_uuid4(ids[i]);
        msgs[i] = (toro_bus_pub_t){TORO_TOPIC_NOTIFY, pay[i], ids[i]};
    }
    assert_int_equal(toro_bus_publish_batch(f->bus, msgs, 5, ok), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ok[i], 1);
    if (f->prefix[0]) {
        /* a relay that died before marking them publishes them again, with one more */
        assert_int_equal(toro_bus_publish_batch(f->bus, msgs, 6, ok), 6);
        drain_all(f, f->bus, TORO_TOPIC_NOTIFY, "p", 6, true);
    } else {
        drain_all(f, f->bus, TORO_TOPIC_NOTIFY, "p", 5, false);
    }
    /* a message the bus refuses (unknown topic) fails alone: the next goes out */
    toro_bus_msg_t m;
    msgs[0].topic = "nope";
    toro_uuid4(ids[1]);
    int rc = toro_bus_publish_batch(f->bus, msgs, 2, ok);
    assert_int_equal(ok[0], 0);
    if (f->prefix[0]) { /* NATS sends the rest of the batch */
        assert_int_equal(rc, 1);
        assert_int_equal(ok[1], 1);
        fetch_ok(f, TORO_TOPIC_NOTIFY, &m, "p1", 1);
        assert_int_equal(toro_bus_ack(f->bus, TORO_TOPIC_NOTIFY, &m), 0);
        toro_bus_msg_clear(&m);
    } else { /* one at a time: stops at the first failure */
        assert_int_equal(rc, TORO_EINVAL);
        assert_int_equal(ok[1], 0);
    }
    expect_empty(f, TORO_TOPIC_NOTIFY, 300);
}

static void count_kick(void *ctx) { (*(int *)ctx)++; }

/* NATS: kick() reaches the hook the relay registers (on_kick), until it is
 * unregistered; the fixture's relay had registered itself. */
static void test_kick_hook(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    int kicks = 0;
    toro_relay_stop(f->relay); /* unregisters the relay's hook */
    f->relay = NULL;
    assert_true(toro_bus_on_kick(f->bus, count_kick, &kicks));
    toro_bus_kick(f->bus, TORO_TOPIC_PROCESS);
    toro_bus_kick(f->bus, TORO_TOPIC_NOTIFY);
    assert_int_equal(kicks, 2);
    assert_true(toro_bus_on_kick(f->bus, NULL, NULL));
    toro_bus_kick(f->bus, TORO_TOPIC_PROCESS);
    assert_int_equal(kicks, 2);
}

static long outbox_left(fixture_t *f, const char *topic)
{
    long n = -1;
    assert_int_equal(toro_outbox_depth(toro_store_outbox(f->store), topic, &n), 0);
    return n;
}

/* NATS: the stream takes only 2 messages (discard new), so the relay's batch
 * of 5 is refused in part. The refused events stay in the outbox and are
 * published as room comes: all 5 arrive, once each, in order. */
static void test_relay_partial_failure(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    char stream[96], subj[96];
    snprintf(stream, sizeof stream, "%s_process", f->prefix);
    snprintf(subj, sizeof subj, "%s.process", f->prefix);
    assert_int_equal(natsConnection_ConnectTo(&nc, f->server), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    assert_int_equal(js_GetStreamInfo(&si, js, stream, NULL, NULL), NATS_OK);
    jsStreamConfig sc = *si->Config;
    sc.MaxMsgs = 2;
    sc.Discard = js_DiscardNew;
    jsStreamInfo *up = NULL;
    assert_int_equal(js_UpdateStream(&up, js, &sc, NULL, NULL), NATS_OK);
    jsStreamInfo_Destroy(up);
    jsStreamInfo_Destroy(si);
    long before = toro_relay_published(f->relay);
    publish_n(f, TORO_TOPIC_PROCESS, "r", 5);
    for (int i = 0; i < 100 && outbox_left(f, TORO_TOPIC_PROCESS) > 3; i++)
        toro_sleep_ms(50);
    expect_depth(f, TORO_TOPIC_PROCESS, 2);
    toro_sleep_ms(600); /* the relay retries meanwhile: still refused */
    assert_int_equal(outbox_left(f, TORO_TOPIC_PROCESS), 3);
    assert_int_equal(toro_relay_published(f->relay) - before, 2);
    drain_all(f, f->bus, TORO_TOPIC_PROCESS, "r", 5, true); /* each ack makes room */
    assert_int_equal(outbox_left(f, TORO_TOPIC_PROCESS), 0);
    assert_int_equal(toro_relay_published(f->relay) - before, 5);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

/* ---- SNS + SQS only ---------------------------------------------------------- */

/* One SQS JSON call to moto, straight (not through the bus). */
static json_t *sqs(const char *action, json_t *req)
{
    toro_aws_creds_t cred;
    char target[64], *body = NULL, *payload = json_dumps(req, JSON_COMPACT);
    long status = 0;
    snprintf(target, sizeof target, "AmazonSQS.%s", action);
    toro_aws_header_t h[1] = {{"x-amz-target", target}};
    toro_aws_request_t r = {.url = moto_endpoint, .service = "sqs", .region = "us-east-1",
                            .content_type = "application/x-amz-json-1.0", .headers = h, .n_headers = 1,
                            .body = payload, .body_len = strlen(payload)};
    assert_int_equal(toro_aws_creds_from_env(&cred, NULL), 0);
    assert_int_equal(toro_aws_post(&r, &cred, &status, &body, NULL), 0);
    assert_int_equal(status, 200);
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    toro_aws_creds_clear(&cred);
    json_decref(req);
    free(payload);
    free(body);
    return j;
}

/* Receives the one message of topic's dead-letter queue: its body and reason. */
static void dlq_receive(fixture_t *f, const char *topic, char *body, char *reason, size_t cap)
{
    char name[128];
    snprintf(name, sizeof name, "%s-%s-dead", f->sns_prefix, topic);
    json_t *u = sqs("GetQueueUrl", json_pack("{ss}", "QueueName", name));
    const char *url = json_string_value(json_object_get(u, "QueueUrl"));
    assert_non_null(url);
    json_t *r = sqs("ReceiveMessage", json_pack("{ss si si s[s]}", "QueueUrl", url, "MaxNumberOfMessages", 10,
                                                "WaitTimeSeconds", 1, "MessageAttributeNames", "All"));
    json_t *msgs = json_object_get(r, "Messages");
    assert_int_equal(json_array_size(msgs), 1);
    json_t *m = json_array_get(msgs, 0), *attrs = json_object_get(m, "MessageAttributes");
    const char *why = json_string_value(json_object_get(json_object_get(attrs, "reason"), "StringValue"));
    snprintf(body, cap, "%s", json_string_value(json_object_get(m, "Body")));
    snprintf(reason, cap, "%s", why ? why : "");
    json_decref(r);
    json_decref(u);
}

/* retries=2: the third receive moves the message to the dead-letter queue. */
static void test_sns_redrive(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_bus_msg_t m;
    char body[256], reason[256];
    publish(f, TORO_TOPIC_PROCESS, "poison");
    for (int d = 1; d <= 2; d++) {
        fetch_ok(f, TORO_TOPIC_PROCESS, &m, "poison", d);
        assert_int_equal(toro_bus_nack(f->bus, TORO_TOPIC_PROCESS, &m, 0), 0);
        toro_bus_msg_clear(&m);
    }
    expect_empty(f, TORO_TOPIC_PROCESS, 1500);
    expect_depth(f, TORO_TOPIC_PROCESS, 0);
    dlq_receive(f, TORO_TOPIC_PROCESS, body, reason, sizeof body);
    assert_string_equal(body, "poison");
    assert_string_equal(reason, ""); /* moved by SQS, not by dead() */
}

static void test_sns_dead_reason(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_bus_msg_t m;
    char body[256], reason[256];
    publish(f, TORO_TOPIC_NOTIFY, "{\"bad\":1}");
    fetch_ok(f, TORO_TOPIC_NOTIFY, &m, "{\"bad\":1}", 1);
    assert_int_equal(toro_bus_dead(f->bus, TORO_TOPIC_NOTIFY, &m, "too many attempts"), 0);
    /* its receipt handle is used up: a second ack is refused */
    assert_int_equal(toro_bus_ack(f->bus, TORO_TOPIC_NOTIFY, &m), TORO_ENOTFOUND);
    toro_bus_msg_clear(&m);
    dlq_receive(f, TORO_TOPIC_NOTIFY, body, reason, sizeof body);
    assert_string_equal(body, "{\"bad\":1}");
    assert_string_equal(reason, "too many attempts");
    /* the relay counts after its mark, which may come after the consumer
     * got the message (SQS delivers during the SNS publish) */
    for (int i = 0; i < 100 && toro_relay_published(f->relay) < 1; i++)
        toro_sleep_ms(50);
    assert_true(toro_relay_published(f->relay) >= 1);
}

/* Without declare a bus finds what another declared (the topic ARN derived
 * from the queue's), and refuses a prefix nobody declared. */
static void test_sns_open_existing(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    toro_bus_t *b2 = NULL;
    toro_bus_msg_t m;
    assert_int_equal(open_sns("toro-unit-nothing-here", 5, 0, &b2), TORO_EIO);
    assert_null(b2);
    assert_int_equal(open_sns(f->sns_prefix, 5, 0, &b2), 0);
    assert_int_equal(toro_bus_publish(b2, TORO_TOPIC_NOTIFY, "direct", "m-1"), 0);
    assert_int_equal(toro_bus_fetch(f->bus, TORO_TOPIC_NOTIFY, 5000, &m), 0);
    assert_string_equal(m.payload, "direct");
    assert_int_equal(toro_bus_ack(f->bus, TORO_TOPIC_NOTIFY, &m), 0);
    toro_bus_msg_clear(&m);
    expect_empty(f, TORO_TOPIC_PROCESS, 100); /* topics stay separate */
    toro_bus_close(b2);
}

typedef struct waiter {
    toro_bus_t *bus;
    int rc;
    int64_t ms; /* how long the fetch took */
} waiter_t;

static void *wait_fetch(void *arg)
{
    waiter_t *w = arg;
    toro_bus_msg_t m;
    int64_t t0 = toro_mono_ms();
    w->rc = toro_bus_fetch(w->bus, TORO_TOPIC_PROCESS, 15000, &m);
    w->ms = toro_mono_ms() - t0;
    toro_bus_msg_clear(&m);
    return NULL;
}

/* interrupt ends a fetch in the middle of a 20 s long poll (the request is
 * aborted, not waited out). */
static void test_sns_interrupt_long_poll(void **state)
{
    fixture_t *f = fixture_or_skip(state);
    char url[512], *err = NULL;
    waiter_t w = {0};
    pthread_t t;
    snprintf(url, sizeof url, "sns://us-east-1?endpoint=%s&prefix=%s&wait_s=20", moto_endpoint, f->sns_prefix);
    assert_int_equal(toro_bus_open(url, NULL, &w.bus, &err), 0);
    assert_int_equal(pthread_create(&t, NULL, wait_fetch, &w), 0);
    toro_sleep_ms(1500); /* the long poll is under way */
    toro_bus_interrupt(w.bus);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, TORO_EEMPTY);
    assert_true(w.ms >= 1400 && w.ms < 5000);
    toro_bus_close(w.bus);
}

static void test_sns_bad_urls(void **state)
{
    (void)state;
    const char *bad[] = {"sns://us-east-1?bogus=1", "sns://us-east-1?prefix=a.b", "sns://US_EAST?prefix=a",
                         "sns://us-east-1?retries=0", "sns://us-east-1?wait_s=21", "sns://us-east-1?prefix"};
    assert_int_equal(toro_bus_url_kind("sns://eu-west-1"), TORO_BUS_URL_SNS);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        toro_bus_t *b = NULL;
        char *err = NULL;
        assert_int_equal(toro_bus_open(bad[i], NULL, &b, &err), TORO_EINVAL);
        assert_null(b);
        assert_non_null(err);
        free(err);
    }
}

#define ALL(t)                                                                                                        \
    cmocka_unit_test_setup_teardown(t, setup_local, teardown), cmocka_unit_test_setup_teardown(t, setup_nats, teardown), \
        cmocka_unit_test_setup_teardown(t, setup_sns, teardown)
#define SNS(t) cmocka_unit_test_setup_teardown(t, setup_sns, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        ALL(test_fetch_ack),        ALL(test_nack_redelivers),    ALL(test_dead_is_final),
        ALL(test_order_and_topics), ALL(test_unacked_comes_back), ALL(test_interrupt),
        ALL(test_batch_fetch_ack),  ALL(test_consumer_dies_holding_batch),
        cmocka_unit_test_setup_teardown(test_publish_batch, setup_nats, teardown), SNS(test_publish_batch),
        cmocka_unit_test_setup_teardown(test_relay_partial_failure, setup_nats, teardown),
        cmocka_unit_test_setup_teardown(test_kick_hook, setup_nats, teardown),
        cmocka_unit_test_setup_teardown(test_sns_redrive, setup_sns_redrive, teardown),
        SNS(test_sns_dead_reason),  SNS(test_sns_open_existing),  SNS(test_sns_interrupt_long_poll),
        cmocka_unit_test(test_sns_bad_urls),
    };
    peer_fake_credentials();
    moto_start();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    peer_stop(moto_pid);
    return rc;
}
