/* commands.h: the subcommands of the toro binary. main.c parses the first
 * word and hands the rest of argv to one of these; each returns the process
 * exit status (0 ok, 1 failure, 2 usage error). serve, api and worker share
 * their wiring: cli/wiring.h. */
#ifndef TORO_CLI_COMMANDS_H
#define TORO_CLI_COMMANDS_H

int toro_cmd_serve(int argc, char **argv); /* toro serve ... (cli/serve_cmd.c) */
int toro_cmd_kb(int argc, char **argv);    /* toro kb build|search|eval|info ... (cli/kb_cmd.c) */
int toro_cmd_ask(int argc, char **argv);   /* toro ask --kb FILE "question" (cli/kb_cmd.c) */
int toro_cmd_api(int argc, char **argv);    /* toro api --store postgres://.. --bus nats://.. (cli/api_cmd.c) */
int toro_cmd_worker(int argc, char **argv); /* toro worker process|notify ... (cli/worker_cmd.c) */
int toro_cmd_db(int argc, char **argv);     /* toro db migrate --store postgres://.. (cli/db_cmd.c) */
int toro_cmd_lambda(int argc, char **argv); /* toro lambda [HANDLER]: AWS Lambda custom runtime (cli/lambda_cmd.c) */
int toro_cmd_feedback(int argc, char **argv); /* toro feedback export --store URL (cli/feedback_cmd.c) */

#endif
