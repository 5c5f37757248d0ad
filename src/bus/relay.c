/* relay.c: the transactional outbox relay. postgres.c commits each state
 * change together with its event in table outbox and NOTIFYs channel
 * toro_outbox; this thread wakes on that notification (or every POLL_MS as a
 * fallback), locks a batch of rows with FOR UPDATE SKIP LOCKED, publishes
 * them to JetStream in id order with the row's msg_id as Nats-Msg-Id, and
 * deletes them in the same transaction once JetStream acknowledged them.
 *
 * Why a thread in every writing process rather than a separate `toro relay`:
 * nothing extra to deploy or monitor, the outbox drains whenever any process
 * is up, and SKIP LOCKED lets the relays of all processes share the table
 * without handing one row to two of them. A relay that dies after the publish
 * ack but before its DELETE commits leaves the rows to another relay, whose
 * re-publish carries the same Nats-Msg-Id and is dropped by JetStream's
 * duplicate window; past that window the duplicate event is harmless because
 * every stage is idempotent and guarded.
 *
 * While PostgreSQL or NATS is down it retries every POLL_MS; nothing is lost
 * because rows leave the table only after the publish ack. */
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/relay.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"

#define POLL_MS 500
#define BATCH 256

struct toro_relay {
    char *url;            /* owned libpq URL */
    toro_bus_t *bus;      /* borrowed nats bus */
    PGconn *conn;         /* owned; used only by the relay thread */
    pthread_t thread;
    int wake[2];          /* self-pipe: stop() writes to end the wait */
    atomic_int stop;
    atomic_long published;
    int down_logged;      /* 1 after "PostgreSQL unreachable" was logged */
};

static bool connect_listen(toro_relay_t *r)
{
    if (!r->conn)
        r->conn = PQconnectdb(r->url);
    else if (PQstatus(r->conn) != CONNECTION_OK)
        PQreset(r->conn);
    if (!r->conn || PQstatus(r->conn) != CONNECTION_OK) {
        if (!r->down_logged)
            toro_log_warn("relay", NULL, "PostgreSQL unreachable; retrying");
        r->down_logged = 1;
        return false;
    }
    PGresult *res = PQexec(r->conn, "LISTEN " TORO_OUTBOX_CHANNEL);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (ok && r->down_logged) {
        toro_log_info("relay", NULL, "PostgreSQL reachable again");
        r->down_logged = 0;
    }
    return ok;
}

static bool exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    return ok;
}

/* One batch. Returns rows published, or TORO_EIO when the database or the
 * broker failed (rows not acknowledged stay in the outbox). */
static int drain_batch(toro_relay_t *r)
{
    PGconn *c = r->conn;
    PGresult *rows = NULL;
    char *ids = NULL;
    int published = 0, rc = TORO_EIO;
    if (!exec_ok(c, "BEGIN"))
        return TORO_EIO;
    rows = PQexec(c, "SELECT id, msg_id, topic, payload FROM outbox ORDER BY id LIMIT 256 FOR UPDATE SKIP LOCKED");
    if (PQresultStatus(rows) != PGRES_TUPLES_OK)
        goto out;
    int n = PQntuples(rows);
    if (n == 0) {
        rc = 0;
        goto out;
    }
    size_t cap = (size_t)n * 21 + 3, len = 0;
    ids = malloc(cap);
    if (!ids)
        goto out;
    ids[len++] = '{';
    for (int i = 0; i < n; i++) {
        if (toro_bus_nats_publish(r->bus, PQgetvalue(rows, i, 2), PQgetvalue(rows, i, 3), PQgetvalue(rows, i, 1)) != 0)
            break;
        int w = snprintf(ids + len, cap - len, "%s%s", published ? "," : "", PQgetvalue(rows, i, 0));
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
        published++;
    }
    ids[len++] = '}';
    ids[len] = '\0';
    if (published > 0) {
        const char *p[] = {ids};
        PGresult *del = PQexecParams(c, "DELETE FROM outbox WHERE id = ANY($1::bigint[])", 1, NULL, p, NULL, NULL, 0);
        bool ok = PQresultStatus(del) == PGRES_COMMAND_OK;
        PQclear(del);
        if (!ok)
            goto out;
    }
    rc = published == n ? published : (published > 0 ? published : TORO_EIO);
out:
    PQclear(rows);
    free(ids);
    if (rc >= 0 && published > 0) {
        if (!exec_ok(c, "COMMIT"))
            rc = TORO_EIO;
    } else {
        exec_ok(c, "ROLLBACK");
    }
    if (rc > 0)
        atomic_fetch_add(&r->published, rc);
    return rc;
}

/* Waits for a NOTIFY, a stop request or the poll interval. */
static void wait_for_work(toro_relay_t *r, int ms)
{
    struct pollfd fds[2] = {{.fd = r->wake[0], .events = POLLIN}, {.fd = -1, .events = POLLIN}};
    if (r->conn && PQstatus(r->conn) == CONNECTION_OK)
        fds[1].fd = PQsocket(r->conn);
    if (poll(fds, 2, ms) > 0 && fds[1].fd >= 0 && (fds[1].revents & POLLIN)) {
        PQconsumeInput(r->conn);
        PGnotify *nt;
        while ((nt = PQnotifies(r->conn)) != NULL)
            PQfreemem(nt);
    }
}

static void *relay_main(void *arg)
{
    toro_relay_t *r = arg;
    bool listening = false;
    while (!atomic_load(&r->stop)) {
        if (!listening || PQstatus(r->conn) != CONNECTION_OK) {
            listening = connect_listen(r);
            if (!listening) {
                wait_for_work(r, POLL_MS);
                continue;
            }
        }
        /* drain notifications that arrived while we worked */
        PQconsumeInput(r->conn);
        PGnotify *nt;
        while ((nt = PQnotifies(r->conn)) != NULL)
            PQfreemem(nt);
        int n = drain_batch(r);
        if (n == BATCH)
            continue;
        if (n < 0 && PQstatus(r->conn) != CONNECTION_OK)
            listening = false;
        wait_for_work(r, n < 0 ? POLL_MS / 2 : POLL_MS);
    }
    return NULL;
}

int toro_relay_start(const char *store_url, toro_bus_t *bus, toro_relay_t **out, char **err)
{
    toro_relay_t *r = calloc(1, sizeof *r);
    if (!r)
        return TORO_ENOMEM;
    r->wake[0] = r->wake[1] = -1;
    r->url = strdup(store_url);
    r->bus = bus;
    if (!r->url || pipe(r->wake) != 0 || pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        if (err)
            *err = strdup("cannot start the outbox relay");
        if (r->wake[0] >= 0) {
            close(r->wake[0]);
            close(r->wake[1]);
        }
        free(r->url);
        free(r);
        return TORO_EIO;
    }
    *out = r;
    return 0;
}

void toro_relay_stop(toro_relay_t *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, 1);
    ssize_t w = write(r->wake[1], "x", 1);
    (void)w;
    pthread_join(r->thread, NULL);
    close(r->wake[0]);
    close(r->wake[1]);
    PQfinish(r->conn);
    free(r->url);
    free(r);
}

long toro_relay_published(const toro_relay_t *r) { return r ? atomic_load(&((toro_relay_t *)r)->published) : 0; }
