/* pg_db.h: a PostgreSQL database of a test's own, on TORO_TEST_PG (default
 * postgres://postgres@127.0.0.1:5432/postgres): created fresh, dropped by
 * the test. Header-only: each integration test includes it once. */
#ifndef TORO_TEST_PG_DB_H
#define TORO_TEST_PG_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void pg_db_admin_exec(const char *admin, const char *sql)
{
    PGconn *c = PQconnectdb(admin);
    PQclear(PQexec(c, sql));
    PQfinish(c);
}

/* Fills admin (the server's admin URL) and, when the server answers,
 * creates database db (dropped first if a crashed run left it) and writes
 * its URL to url. Returns 0, or -1 when PostgreSQL is not reachable. */
static inline int pg_db_create(const char *db, char admin[512], char url[640])
{
    const char *env = getenv("TORO_TEST_PG");
    snprintf(admin, 512, "%s", env ? env : "postgres://postgres@127.0.0.1:5432/postgres");
    PGconn *c = PQconnectdb(admin);
    bool up = PQstatus(c) == CONNECTION_OK;
    PQfinish(c);
    if (!up)
        return -1;
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db);
    pg_db_admin_exec(admin, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    pg_db_admin_exec(admin, sql);
    const char *slash = strrchr(admin, '/');
    snprintf(url, 640, "%.*s/%s", (int)(slash - admin), admin, db);
    return 0;
}

/* Drops db, closing whatever sessions still use it. */
static inline void pg_db_drop(const char *admin, const char *db)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    pg_db_admin_exec(admin, sql);
}

#endif
