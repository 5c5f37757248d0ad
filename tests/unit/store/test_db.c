/* test_db.c: the writer thread of store/db.c. Writes queued while the
 * writer is busy commit together in one batch, and a write that fails is
 * rolled back alone: its rows are gone, the others of its batch stay, and
 * each caller gets its own code. Writes from many threads at once all land
 * (none lost, none run twice), and the checkpointer leaves the data intact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/util.h"
#include "store/db.h"

typedef struct job {
    toro_db_t *db;
    int value;     /* the row it inserts */
    int sleep_ms;  /* held inside the write (keeps the writer busy) */
    int fail_with; /* returned after inserting: 0 keeps the row */
    int rc;        /* toro_db_write's result */
} job_t;

/* toro_db_write_fn: inserts job->value, then fails when asked to. */
static int insert_fn(sqlite3 *c, void *arg)
{
    job_t *j = arg;
    char sql[64];
    snprintf(sql, sizeof sql, "INSERT INTO t(x) VALUES (%d)", j->value);
    if (toro_db_exec(c, sql) != 0)
        return TORO_EIO;
    if (j->sleep_ms)
        toro_sleep_ms(j->sleep_ms);
    return j->fail_with;
}

static void *run_job(void *arg)
{
    job_t *j = arg;
    j->rc = toro_db_write(j->db, insert_fn, j);
    return NULL;
}

static int row_count(toro_db_t *db, const char *where)
{
    char sql[128];
    sqlite3_stmt *st = NULL;
    int n = -1;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM t WHERE %s", where);
    sqlite3 *c = toro_db_conn(db);
    assert_non_null(c);
    assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

static toro_db_t *open_db(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/toro-test-db-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/t.db", dir);
    toro_db_t *db = NULL;
    char *err = NULL;
    assert_int_equal(toro_db_open(path, "CREATE TABLE t(x INTEGER PRIMARY KEY);", TORO_DB_SYNC_NORMAL, &db, &err), 0);
    return db;
}

static void remove_db(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* One slow write keeps the writer busy while eight others queue: they run
 * as the next batch, where the odd ones fail after inserting. */
static void test_failed_write_rolls_back_alone(void **state)
{
    (void)state;
    char dir[64];
    toro_db_t *db = open_db(dir, sizeof dir);
    enum { N = 9 };
    job_t jobs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++)
        jobs[i] = (job_t){.db = db, .value = i + 1, .sleep_ms = i == 0 ? 200 : 0,
                          .fail_with = i % 2 ? TORO_ECONFLICT : 0};
    assert_int_equal(pthread_create(&th[0], NULL, run_job, &jobs[0]), 0);
    toro_sleep_ms(50); /* the writer is inside jobs[0] now */
    for (int i = 1; i < N; i++)
        assert_int_equal(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++)
        assert_int_equal(jobs[i].rc, jobs[i].fail_with);
    assert_int_equal(row_count(db, "x % 2 = 1"), 5); /* 1, 3, 5, 7, 9: the writes that kept their row */
    assert_int_equal(row_count(db, "x % 2 = 0"), 0); /* the failed ones left nothing */
    /* a write that breaks a constraint fails alone too */
    job_t dup = {.db = db, .value = 1};
    assert_int_equal(toro_db_write(db, insert_fn, &dup), TORO_EIO);
    assert_int_equal(row_count(db, "1"), 5);
    toro_db_close(db);
    remove_db(dir);
}

typedef struct many {
    toro_db_t *db;
    int base, n;
    int failures;
} many_t;

static void *write_many(void *arg)
{
    many_t *m = arg;
    for (int i = 0; i < m->n; i++) {
        job_t j = {.db = m->db, .value = m->base + i};
        m->failures += toro_db_write(m->db, insert_fn, &j) != 0;
    }
    return NULL;
}

/* Four threads write 3,000 rows each (enough WAL for several checkpoints):
 * every row is there once, and the file reopens with all of them. */
static void test_many_threads_lose_nothing(void **state)
{
    (void)state;
    char dir[64];
    toro_db_t *db = open_db(dir, sizeof dir);
    enum { T = 4, PER = 3000 };
    many_t m[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        m[i] = (many_t){.db = db, .base = i * PER + 1, .n = PER};
        assert_int_equal(pthread_create(&th[i], NULL, write_many, &m[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(m[i].failures, 0);
    }
    assert_int_equal(row_count(db, "1"), T * PER);
    toro_db_close(db);
    char path[300];
    snprintf(path, sizeof path, "%s/t.db", dir);
    char *err = NULL;
    assert_int_equal(toro_db_open(path, NULL, TORO_DB_SYNC_NORMAL, &db, &err), 0);
    assert_int_equal(row_count(db, "1"), T * PER);
    toro_db_close(db);
    remove_db(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_write_rolls_back_alone),
        cmocka_unit_test(test_many_threads_lose_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
