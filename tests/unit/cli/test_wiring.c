/* test_wiring.c: backends chosen by URL (store/open.c, bus/open.c) and the
 * wiring of serve, api and worker (cli/wiring.c): which store and bus each
 * role resolves from options and environment, and which pairs it refuses
 * (exit status 2) before anything opens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/open.h"
#include "cli/wiring.h"
#include "core/error.h"
#include "store/open.h"

static void clear_env(void)
{
    const char *vars[] = {"TORO_STORE", "TORO_BUS", "TORO_DATA", "TORO_KB", "TORO_PORT", "TORO_HOST",
                          "TORO_LOG_LEVEL", "TORO_ANSWERER", "TORO_FAULT_ANSWERER"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static void no_usage(FILE *f) { fprintf(f, "usage: test\n"); }

/* toro_wiring_setup on a NULL-terminated argument list. */
static int setup(toro_wiring_t *w, toro_role_t role, const char **args)
{
    char *argv[32];
    int argc = 0;
    for (; args[argc]; argc++)
        argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    return toro_wiring_setup(w, role, "toro test", no_usage, argc, argv);
}

static void test_url_kinds(void **state)
{
    (void)state;
    assert_int_equal(toro_store_url_kind("sqlite:///var/lib/toro.db"), TORO_STORE_URL_SQLITE);
    assert_int_equal(toro_store_url_kind("postgres://h:5432/db"), TORO_STORE_URL_POSTGRES);
    assert_int_equal(toro_store_url_kind("postgresql://h/db"), TORO_STORE_URL_POSTGRES);
    assert_int_equal(toro_store_url_kind("mysql://h/db"), TORO_STORE_URL_BAD);
    assert_int_equal(toro_store_url_kind("sqlite:/x"), TORO_STORE_URL_BAD);
    assert_int_equal(toro_store_url_kind(NULL), TORO_STORE_URL_BAD);
    assert_string_equal(toro_store_sqlite_path("sqlite:///var/lib/toro.db"), "/var/lib/toro.db");
    assert_string_equal(toro_store_sqlite_path("sqlite://data/toro.db"), "data/toro.db");
    assert_null(toro_store_sqlite_path("sqlite://"));
    assert_null(toro_store_sqlite_path("postgres://h/db"));
    assert_int_equal(toro_bus_url_kind("local"), TORO_BUS_URL_LOCAL);
    assert_int_equal(toro_bus_url_kind("nats://127.0.0.1:4222?prefix=x"), TORO_BUS_URL_NATS);
    assert_int_equal(toro_bus_url_kind("localhost"), TORO_BUS_URL_BAD);
    assert_int_equal(toro_bus_url_kind("redis://x"), TORO_BUS_URL_BAD);
    assert_int_equal(toro_bus_url_kind(NULL), TORO_BUS_URL_BAD);
}

static void test_open_by_url(void **state)
{
    (void)state;
    char dir[] = "/tmp/toro-wiring-XXXXXX", url[300], path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.db", dir);
    snprintf(url, sizeof url, "sqlite://%s", path);
    toro_store_t *store = (toro_store_t *)1;
    toro_bus_t *bus = (toro_bus_t *)1;
    char *err = NULL;
    assert_int_equal(toro_store_open("mysql://x", TORO_DB_SYNC_NORMAL, &store, &err), TORO_EINVAL);
    assert_null(store);
    assert_non_null(strstr(err, "mysql://x"));
    free(err);
    err = NULL;
    assert_int_equal(toro_store_open("sqlite://", TORO_DB_SYNC_NORMAL, &store, &err), TORO_EINVAL);
    free(err);
    err = NULL;
    assert_int_equal(toro_bus_open("local", NULL, &bus, &err), TORO_EINVAL);
    assert_null(bus);
    assert_non_null(strstr(err, "sqlite://"));
    free(err);
    err = NULL;
    assert_int_equal(toro_bus_open("kafka://x", NULL, &bus, &err), TORO_EINVAL);
    free(err);
    err = NULL;
    assert_int_equal(toro_store_open(url, TORO_DB_SYNC_NORMAL, &store, &err), 0);
    assert_int_equal(toro_bus_open("local", toro_store_outbox(store), &bus, &err), 0);
    assert_null(err);
    assert_int_equal(toro_store_ping(store), 0);
    long depth = -1;
    assert_int_equal(toro_bus_depth(bus, TORO_TOPIC_PROCESS, &depth), 0);
    assert_int_equal(depth, 0);
    toro_bus_close(bus);
    toro_store_close(store);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_serve_defaults_stay_embedded(void **state)
{
    (void)state;
    toro_wiring_t w;
    clear_env();
    setenv("TORO_STORE", "postgres://ignored/db", 1); /* serve never follows it */
    setenv("TORO_BUS", "nats://ignored:4222", 1);     /* nor this, on a sqlite:// store */
    const char *a1[] = {"--kb", "k.toro", NULL};
    assert_int_equal(setup(&w, TORO_ROLE_SERVE, a1), -1);
    assert_string_equal(w.store_url, "sqlite://data/toro.db");
    assert_string_equal(w.bus_url, "local");
    assert_int_equal(w.n_process, 2);
    assert_int_equal(w.n_notify, 1);
    setenv("TORO_DATA", "/srv/toro", 1);
    assert_int_equal(setup(&w, TORO_ROLE_SERVE, a1), -1);
    assert_string_equal(w.store_url, "sqlite:///srv/toro/toro.db");
    const char *a2[] = {"--kb", "k.toro", "--data", "d", NULL};
    assert_int_equal(setup(&w, TORO_ROLE_SERVE, a2), -1);
    assert_string_equal(w.store_url, "sqlite://d/toro.db");
    /* a postgres:// store takes TORO_BUS, or NATS on this machine */
    const char *a3[] = {"--kb", "k.toro", "--store", "postgres://h/db", NULL};
    assert_int_equal(setup(&w, TORO_ROLE_SERVE, a3), -1);
    assert_string_equal(w.bus_url, "nats://ignored:4222");
    unsetenv("TORO_BUS");
    assert_int_equal(setup(&w, TORO_ROLE_SERVE, a3), -1);
    assert_string_equal(w.bus_url, "nats://127.0.0.1:4222");
    clear_env();
}

static void test_api_and_workers_take_the_environment(void **state)
{
    (void)state;
    toro_wiring_t w;
    clear_env();
    const char *none[] = {NULL};
    assert_int_equal(setup(&w, TORO_ROLE_API, none), 2); /* no store at all */
    setenv("TORO_STORE", "postgres://h/db", 1);
    setenv("TORO_KB", "k.toro", 1);
    assert_int_equal(setup(&w, TORO_ROLE_API, none), -1);
    assert_string_equal(w.store_url, "postgres://h/db");
    assert_string_equal(w.bus_url, "nats://127.0.0.1:4222");
    assert_int_equal(w.n_process + w.n_notify, 0);
    const char *c[] = {"--concurrency", "5", "--bus", "nats://n:4222", NULL};
    assert_int_equal(setup(&w, TORO_ROLE_PROCESS, c), -1);
    assert_int_equal(w.n_process, 5);
    assert_int_equal(w.n_notify, 0);
    assert_string_equal(w.bus_url, "nats://n:4222");
    assert_int_equal(setup(&w, TORO_ROLE_NOTIFY, c), -1);
    assert_int_equal(w.n_notify, 5);
    /* each role takes only its own options */
    const char *pw[] = {"--process-workers", "3", NULL};
    assert_int_equal(setup(&w, TORO_ROLE_PROCESS, pw), 2);
    const char *hp[] = {"--health-port", "0", NULL};
    assert_int_equal(setup(&w, TORO_ROLE_API, hp), 2);
    const char *help[] = {"--help", NULL};
    assert_int_equal(setup(&w, TORO_ROLE_API, help), 0);
    setenv("TORO_PORT", "http", 1);
    assert_int_equal(setup(&w, TORO_ROLE_API, none), 2);
    clear_env();
}

typedef struct pair_case {
    toro_role_t role;
    const char *store, *bus; /* NULL: not given */
    int want;                /* -1 accepted, 2 refused */
} pair_case_t;

static void test_pairs(void **state)
{
    (void)state;
    static const pair_case_t cases[] = {
        {TORO_ROLE_SERVE, "sqlite:///tmp/a.db", "local", -1},
        {TORO_ROLE_SERVE, "sqlite:///tmp/a.db", NULL, -1},
        {TORO_ROLE_SERVE, "postgres://h/db", "nats://n:4222", -1},
        {TORO_ROLE_SERVE, "sqlite:///tmp/a.db", "nats://n:4222", 2},
        {TORO_ROLE_SERVE, "postgres://h/db", "local", 2},
        {TORO_ROLE_SERVE, "redis://h", NULL, 2},
        {TORO_ROLE_SERVE, NULL, "kafka://k", 2},
        {TORO_ROLE_API, "postgres://h/db", "nats://n:4222", -1},
        {TORO_ROLE_API, "sqlite:///tmp/a.db", "local", 2},
        {TORO_ROLE_API, "sqlite:///tmp/a.db", NULL, 2},
        {TORO_ROLE_API, "postgres://h/db", "local", 2},
        {TORO_ROLE_PROCESS, "postgres://h/db", "nats://n:4222", -1},
        {TORO_ROLE_PROCESS, "sqlite:///tmp/a.db", "local", 2},
        {TORO_ROLE_NOTIFY, "postgres://h/db", "local", 2},
    };
    clear_env();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const pair_case_t *c = &cases[i];
        const char *args[8] = {"--kb", "k.toro"};
        int n = 2;
        if (c->store) {
            args[n++] = "--store";
            args[n++] = c->store;
        }
        if (c->bus) {
            args[n++] = "--bus";
            args[n++] = c->bus;
        }
        args[n] = NULL;
        toro_wiring_t w;
        int got = setup(&w, c->role, args);
        if (got != c->want)
            fail_msg("case %zu (role %d, %s + %s): got %d, want %d", i, (int)c->role, c->store ? c->store : "-",
                     c->bus ? c->bus : "-", got, c->want);
    }
    /* --data and --store name the same thing */
    const char *both[] = {"--kb", "k.toro", "--data", "d", "--store", "sqlite://x.db", NULL};
    toro_wiring_t w;
    assert_int_equal(setup(&w, TORO_ROLE_SERVE, both), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_kinds),
        cmocka_unit_test(test_open_by_url),
        cmocka_unit_test(test_serve_defaults_stay_embedded),
        cmocka_unit_test(test_api_and_workers_take_the_environment),
        cmocka_unit_test(test_pairs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
