/* main.c: entry point of the toro binary; dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

#ifndef TORO_VERSION
#define TORO_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "toro %s - the Toro AI Assistant\n"
            "usage:\n"
            "  toro serve [--port 8080] [--data DIR] [--kb FILE]   run the whole service in one process\n"
            "  toro kb build SRC_DIR -o FILE                         build a knowledge-base snapshot\n"
            "  toro kb search FILE \"query\" [-k 10] [--json]         retrieve chunks\n"
            "  toro kb eval FILE QUESTIONS | --beir DIR              score retrieval\n"
            "  toro kb info FILE [--json]                            what a snapshot holds\n"
            "  toro ask --kb FILE \"question\" [--json]               answer one question now\n"
            "  toro api --store postgres://.. --bus nats://.. [--port N]   REST + WebSocket (distributed)\n"
            "  toro worker process|notify --store .. --bus .. [--kb FILE]   a stage worker (distributed)\n"
            "  toro db migrate --store postgres://..                  create or upgrade the schema\n"
            "  toro lambda [HANDLER]                                 AWS Lambda custom runtime (Run on AWS)\n"
            "  toro feedback export --store URL [--since DATE] [-o FILE]   down-rated answers as eval cases\n"
            "  toro version\n"
            "Each command answers --help with its options.\n",
            TORO_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "toro: missing command\n");
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return toro_cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "kb") == 0)
        return toro_cmd_kb(argc - 1, argv + 1);
    if (strcmp(cmd, "ask") == 0)
        return toro_cmd_ask(argc - 1, argv + 1);
    if (strcmp(cmd, "api") == 0)
        return toro_cmd_api(argc - 1, argv + 1);
    if (strcmp(cmd, "worker") == 0)
        return toro_cmd_worker(argc - 1, argv + 1);
    if (strcmp(cmd, "db") == 0)
        return toro_cmd_db(argc - 1, argv + 1);
    if (strcmp(cmd, "lambda") == 0)
        return toro_cmd_lambda(argc - 1, argv + 1);
    if (strcmp(cmd, "feedback") == 0)
        return toro_cmd_feedback(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("toro %s\n", TORO_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "toro: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
