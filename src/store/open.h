/* open.h: choosing the store by URL (--store). The one place that maps a URL
 * to an engine; the engines' own constructors stay in store.h. */
#ifndef TORO_STORE_OPEN_H
#define TORO_STORE_OPEN_H

#include "store/store.h"

typedef enum {
    TORO_STORE_URL_BAD = 0,  /* none of the schemes below */
    TORO_STORE_URL_SQLITE,   /* sqlite://PATH: the embedded file (one process owns it) */
    TORO_STORE_URL_POSTGRES, /* postgres://… or postgresql://… (shared by many processes) */
    TORO_STORE_URL_DYNAMODB, /* dynamodb://REGION?… (AWS; shared by many processes) */
} toro_store_url_kind_t;

/* Why: commands check a combination of store and bus before opening either.
 * url may be NULL (TORO_STORE_URL_BAD). */
toro_store_url_kind_t toro_store_url_kind(const char *url);

/* Why: the embedded store and the local bus share one file. The PATH of a
 * sqlite:// URL: everything after the scheme, so sqlite:///var/lib/toro.db is
 * absolute and sqlite://data/toro.db relative. Borrowed (points into url);
 * NULL when url is not a sqlite:// URL or its path is empty. */
const char *toro_store_sqlite_path(const char *url);

/* Why: `--store URL` everywhere. Opens the engine the scheme names; sync is
 * SQLite's durability (ignored by PostgreSQL). On failure *out is NULL,
 * nothing stays open and *err (caller frees) says why: TORO_EINVAL names the
 * URL when the scheme is not sqlite://, postgres:// or dynamodb://; other codes are
 * the engine's. */
int toro_store_open(const char *url, toro_db_sync_t sync, toro_store_t **out, char **err);

#endif
