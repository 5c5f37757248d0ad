/* local.c: the embedded durable bus. Messages are rows of bus_events in the
 * SQLite file that also holds the questions, so a state change and the event
 * announcing it commit together. fetch() leases the oldest ready row; ack
 * deletes it; nack pushes it into the future; rows leased by a crashed run are
 * released when the next run opens the file. Waiting consumers sleep on a
 * condition variable per bus, woken by kick() or every poll interval (delayed
 * retries become due without a kick). It does not span processes: one process
 * owns the data directory (the caller holds a lock file). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/db.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

#define POLL_MS 200

typedef struct local_bus {
    toro_bus_t super;
    toro_db_t *db;
    int lease_ms;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned long generation; /* bumped by every kick, guarded by lock */
    int interrupted;          /* guarded by lock */
} local_bus_t;

void toro_bus_msg_clear(toro_bus_msg_t *m)
{
    if (!m)
        return;
    free(m->payload);
    memset(m, 0, sizeof *m);
}

int toro_bus_local_enqueue(struct sqlite3 *conn, const char *topic, const char *payload)
{
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    int64_t now = toro_now_ms();
    if (toro_db_prepare(conn,
                           "INSERT INTO bus_events(topic, payload, created_at, available_at) VALUES (?1, ?2, ?3, ?3)",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, payload, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    if (sqlite3_step(st) == SQLITE_DONE)
        rc = 0;
out:
    if (rc)
        toro_db_report(conn, "bus", "bus-enqueue", "enqueue failed");
    toro_db_done(st);
    return rc;
}

static int try_fetch(local_bus_t *b, const char *topic, toro_bus_msg_t *out)
{
    sqlite3 *c = toro_db_conn(b->db);
    if (!c)
        return TORO_EIO;
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    int64_t now = toro_now_ms();
    if (toro_db_prepare(c,
                           "UPDATE bus_events SET leased_until = ?1, deliveries = deliveries + 1 WHERE id = ("
                           "SELECT id FROM bus_events WHERE topic = ?2 AND available_at <= ?3 AND leased_until <= ?3 "
                           "ORDER BY id LIMIT 1) RETURNING id, payload, deliveries, created_at",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(st, 1, now + b->lease_ms);
    sqlite3_bind_text(st, 2, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    toro_db_write_lock();
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        out->id = sqlite3_column_int64(st, 0);
        out->payload = strdup((const char *)sqlite3_column_text(st, 1));
        out->deliveries = sqlite3_column_int(st, 2);
        out->enqueued_at = sqlite3_column_int64(st, 3);
        rc = out->payload ? 0 : TORO_ENOMEM;
        while (sqlite3_step(st) == SQLITE_ROW) {
        }
    } else if (s == SQLITE_DONE) {
        rc = TORO_EEMPTY;
    }
    sqlite3_reset(st);
    toro_db_write_unlock();
out:
    if (rc == TORO_EIO)
        toro_db_report(c, "bus", "bus-fetch", "fetch failed");
    toro_db_done(st);
    return rc;
}

static int l_fetch(toro_bus_t *bus, const char *topic, int timeout_ms, toro_bus_msg_t *out)
{
    local_bus_t *b = (local_bus_t *)bus;
    int64_t deadline = toro_mono_ms() + timeout_ms;
    memset(out, 0, sizeof *out);
    for (;;) {
        pthread_mutex_lock(&b->lock);
        unsigned long gen = b->generation;
        int stop = b->interrupted;
        pthread_mutex_unlock(&b->lock);
        if (stop)
            return TORO_EEMPTY;
        int rc = try_fetch(b, topic, out);
        if (rc != TORO_EEMPTY)
            return rc;
        int64_t left = deadline - toro_mono_ms();
        if (left <= 0)
            return TORO_EEMPTY;
        if (left > POLL_MS)
            left = POLL_MS;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&b->lock);
        while (b->generation == gen && !b->interrupted) {
            if (pthread_cond_timedwait(&b->cond, &b->lock, &ts) != 0)
                break;
        }
        pthread_mutex_unlock(&b->lock);
    }
}

static int exec_id(local_bus_t *b, const char *sql, int64_t id, int64_t arg)
{
    sqlite3 *c = toro_db_conn(b->db);
    if (!c)
        return TORO_EIO;
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (toro_db_prepare(c, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, arg);
        if (sqlite3_step(st) == SQLITE_DONE)
            rc = 0;
    }
    if (rc)
        toro_db_report(c, "bus", sql, sql);
    toro_db_done(st);
    return rc;
}

/* exec_id as a write of its own, under the process writer lock. */
static int write_id(local_bus_t *b, const char *sql, int64_t id, int64_t arg)
{
    toro_db_write_lock();
    int rc = exec_id(b, sql, id, arg);
    toro_db_write_unlock();
    return rc;
}

static int l_ack(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *m)
{
    return write_id((local_bus_t *)bus, "DELETE FROM bus_events WHERE id = ?1 AND ?2 = ?2", m->id, 0);
}

static int l_nack(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *m, int delay_ms)
{
    int rc = write_id((local_bus_t *)bus, "UPDATE bus_events SET available_at = ?2, leased_until = 0 WHERE id = ?1",
                     m->id, toro_now_ms() + (delay_ms > 0 ? delay_ms : 0));
    if (rc == 0 && delay_ms <= 0)
        toro_bus_kick(bus, topic);
    return rc;
}

static int l_dead(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *m, const char *reason)
{
    local_bus_t *b = (local_bus_t *)bus;
    sqlite3 *c = toro_db_conn(b->db);
    if (!c)
        return TORO_EIO;
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (toro_db_begin(c))
        return TORO_EIO;
    if (toro_db_prepare(c,
                           "INSERT OR REPLACE INTO bus_dead(id, topic, payload, created_at, dead_at, deliveries, reason) "
                           "SELECT id, topic, payload, created_at, ?2, deliveries, ?3 FROM bus_events WHERE id = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int64(st, 1, m->id);
    sqlite3_bind_int64(st, 2, toro_now_ms());
    sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto out;
    rc = exec_id(b, "DELETE FROM bus_events WHERE id = ?1 AND ?2 = ?2", m->id, 0);
out:
    toro_db_done(st);
    return toro_db_end(c, rc);
}

static void l_kick(toro_bus_t *bus, const char *topic)
{
    local_bus_t *b = (local_bus_t *)bus;
    pthread_mutex_lock(&b->lock);
    b->generation++;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static int l_depth(toro_bus_t *bus, const char *topic, long *out)
{
    local_bus_t *b = (local_bus_t *)bus;
    sqlite3 *c = toro_db_conn(b->db);
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO;
    if (c && toro_db_prepare(c, "SELECT count(*) FROM bus_events WHERE topic = ?1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, topic, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *out = (long)sqlite3_column_int64(st, 0);
            rc = 0;
        }
    }
    toro_db_done(st);
    return rc;
}

static void l_interrupt(toro_bus_t *bus)
{
    local_bus_t *b = (local_bus_t *)bus;
    pthread_mutex_lock(&b->lock);
    b->interrupted = 1;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static void l_close(toro_bus_t *bus)
{
    local_bus_t *b = (local_bus_t *)bus;
    toro_db_close(b->db);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static const toro_bus_ops_t local_ops = {
    .name = "local",
    .fetch = l_fetch,
    .ack = l_ack,
    .nack = l_nack,
    .dead = l_dead,
    .kick = l_kick,
    .depth = l_depth,
    .interrupt = l_interrupt,
    .close = l_close,
};

int toro_bus_local_open(const char *db_path, int lease_ms, toro_bus_t **out, char **err)
{
    local_bus_t *b = calloc(1, sizeof *b);
    if (!b)
        return TORO_ENOMEM;
    int rc = toro_db_open(db_path, TORO_BUS_LOCAL_SCHEMA "UPDATE bus_events SET leased_until = 0;",
                          TORO_DB_SYNC_NORMAL, &b->db, err);
    if (rc) {
        free(b);
        return rc;
    }
    b->super.ops = &local_ops;
    b->lease_ms = lease_ms > 0 ? lease_ms : 60000;
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = &b->super;
    return 0;
}
