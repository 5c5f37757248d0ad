/* db_cmd.c: `toro db migrate`: creates or upgrades the PostgreSQL schema of
 * the distributed mode, or creates the DynamoDB tables of `toro lambda`. It is the only command that changes the schema; the
 * api and worker processes expect it to have run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/error.h"
#include "store/open.h"
#include "store/store.h"

static void db_usage(FILE *f)
{
    fprintf(f, "usage: toro db migrate [--store postgres://HOST:PORT/DB | dynamodb://REGION?...]   (env TORO_STORE)\n"
               "  create or upgrade the PostgreSQL schema of the distributed mode,\n"
               "  or create the DynamoDB tables that do not exist yet\n");
}

static int migrate_dynamodb(const char *store)
{
    int created = 0;
    char *err = NULL;
    int rc = toro_store_dynamodb_migrate(store, &created, &err);
    if (rc)
        fprintf(stderr, "toro db migrate: %s\n", err && *err ? err : toro_strerror(rc));
    else
        printf("DynamoDB tables ready (%d created)\n", created);
    free(err);
    return rc ? 1 : 0;
}

int toro_cmd_db(int argc, char **argv)
{
    const char *store = getenv("TORO_STORE");
    if (argc < 2 || toro_cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        if (argc < 2)
            fprintf(stderr, "toro db: missing subcommand (migrate)\n");
        db_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "migrate") != 0)
        return toro_cli_fail("toro db", "unknown subcommand '%s' (migrate)", argv[1]);
    const toro_opt_t opts[] = {
        {"--store", NULL, TORO_OPT_STR, &store, "URL", 0, 0, NULL},
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    const toro_cmd_t cmd = {.name = "toro db migrate", .usage = db_usage, .opts = opts};
    int prc = toro_cli_parse(&cmd, argc - 2, argv + 2, NULL);
    if (prc != TORO_CLI_OK)
        return prc == TORO_CLI_HELP ? 0 : 2;
    if (toro_store_url_kind(store) == TORO_STORE_URL_DYNAMODB)
        return migrate_dynamodb(store);
    if (toro_store_url_kind(store) != TORO_STORE_URL_POSTGRES) {
        return toro_cli_fail("toro db migrate", store ? "--store must be a postgres:// URL or a dynamodb:// URL, "
                                                              "not '%s'"
                                                      : "missing --store postgres://HOST:PORT/DB (or env TORO_STORE)%s",
                             store ? store : "");
    }
    int from = 0, to = 0;
    char *err = NULL;
    int rc = toro_store_postgres_migrate(store, &from, &to, &err);
    if (rc) {
        fprintf(stderr, "toro db migrate: %s\n", err && *err ? err : toro_strerror(rc));
        free(err);
        return 1;
    }
    free(err);
    if (from == to)
        printf("schema is up to date (version %d)\n", to);
    else
        printf("schema migrated from version %d to %d\n", from, to);
    return 0;
}
