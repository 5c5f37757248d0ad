/* open.c: --store URL to a store engine (see open.h). It only dispatches:
 * what each engine does with its URL lives in sqlite.c, postgres.c and
 * dynamodb.c. */
#include "store/open.h"

#include <assert.h>
#include <string.h>

#include "core/error.h"

#define SQLITE_SCHEME "sqlite://"

toro_store_url_kind_t toro_store_url_kind(const char *url)
{
    if (!url)
        return TORO_STORE_URL_BAD;
    if (strncmp(url, SQLITE_SCHEME, strlen(SQLITE_SCHEME)) == 0)
        return TORO_STORE_URL_SQLITE;
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return TORO_STORE_URL_POSTGRES;
    if (strncmp(url, "dynamodb://", 11) == 0)
        return TORO_STORE_URL_DYNAMODB;
    return TORO_STORE_URL_BAD;
}

const char *toro_store_sqlite_path(const char *url)
{
    if (toro_store_url_kind(url) != TORO_STORE_URL_SQLITE)
        return NULL;
    const char *path = url + strlen(SQLITE_SCHEME);
    return *path ? path : NULL;
}

int toro_store_open(const char *url, toro_db_sync_t sync, toro_store_t **out, char **err)
{
    assert(out);
    *out = NULL;
    switch (toro_store_url_kind(url)) {
    case TORO_STORE_URL_SQLITE: {
        const char *path = toro_store_sqlite_path(url);
        if (!path) {
            toro_set_err(err, "--store %s names no file (sqlite:///abs/path/toro.db or sqlite://rel/toro.db)", url);
            return TORO_EINVAL;
        }
        return toro_store_sqlite_open(path, sync, out, err);
    }
    case TORO_STORE_URL_POSTGRES:
        return toro_store_postgres_open(url, out, err);
    case TORO_STORE_URL_DYNAMODB:
        return toro_store_dynamodb_open(url, out, err);
    case TORO_STORE_URL_BAD:
        break;
    }
    toro_set_err(err, "--store must be sqlite://PATH or postgres://HOST:PORT/DB (or dynamodb://REGION?...), not '%s'",
                 url ? url : "");
    return TORO_EINVAL;
}
