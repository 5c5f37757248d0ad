/* cli.h: the one option parser and the messages every toro command shares.
 * A command describes its options in a table (toro_opt_t, NULL-terminated)
 * and its positional arguments by name; toro_cli_parse() answers --help/-h
 * with the command's usage on stdout, and names the argument in every error
 * ("toro ask: --kb needs a value (FILE)", "toro kb build: missing -o FILE")
 * on stderr. Exit statuses: 0 ok (help included), 1 failure, 2 usage error.
 * It does not know what the options mean: commands check required options
 * and combinations themselves, with toro_cli_fail() for the message. */
#ifndef TORO_CLI_CLI_H
#define TORO_CLI_CLI_H

#include <stdio.h>

typedef enum {
    TORO_OPT_FLAG,   /* no value: *(int *)dest = 1 */
    TORO_OPT_STR,    /* one value: *(const char **)dest = the argv string (borrowed) */
    TORO_OPT_LONG,   /* an integer from min to max: *(long *)dest */
    TORO_OPT_CHOICE, /* one of the words of choices ("normal|full"): *(const char **)dest */
} toro_opt_kind_t;

typedef struct toro_opt {
    const char *name;    /* "--kb"; NULL ends the table */
    const char *alias;   /* "-k", or NULL */
    toro_opt_kind_t kind;
    void *dest;          /* borrowed; type given by kind */
    const char *arg;     /* the value's name in messages ("FILE", "N"); NULL for flags */
    long min, max;       /* TORO_OPT_LONG bounds, inclusive */
    const char *choices; /* TORO_OPT_CHOICE: '|'-separated words */
} toro_opt_t;

/* Options parsed by another module (the gateway's, shared by serve and api):
 * 1 consumed (*i advanced past its value), 0 not ours, -1 bad value (message
 * already printed). */
typedef int (*toro_opt_extra_fn)(void *ud, int argc, char **argv, int *i);

typedef struct toro_cmd {
    const char *name;             /* "toro kb build": the prefix of every message */
    void (*usage)(FILE *f);       /* the full usage text */
    const toro_opt_t *opts;       /* NULL-terminated table */
    const char **pos;             /* receives the positional arguments, in order (borrowed) */
    int max_pos;                  /* how many positional arguments are accepted */
    toro_opt_extra_fn extra;      /* optional */
    void *extra_ud;
} toro_cmd_t;

enum {
    TORO_CLI_OK = 0,     /* parsed; go on */
    TORO_CLI_HELP = 1,   /* usage printed on stdout: exit 0 */
    TORO_CLI_ERROR = 2,  /* message printed on stderr: exit 2 */
};

/* Why: every command parses the same way. Parses argv[0..argc) (argv[0] is
 * the first argument after the command words) into the table's dests and
 * cmd->pos; "--" ends the options. *n_pos (may be NULL) gets the number of
 * positional arguments. Returns a TORO_CLI_* value. */
int toro_cli_parse(const toro_cmd_t *cmd, int argc, char **argv, int *n_pos);

/* Why: one shape for usage errors: "<cmd>: <message>" and a pointer to
 * --help on stderr. Returns 2 (the exit status). */
int toro_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Why: "--help" and "-h" mean the same everywhere. */
int toro_cli_is_help(const char *arg);

/* Why: a file about to be written should fail with its directory's name and
 * the reason ("directory nodir does not exist"), not a library's message.
 * Returns 0 when the directory of path exists and is a directory; otherwise
 * prints "<cmd>: ..." and returns 1. */
int toro_cli_check_parent_dir(const char *cmd, const char *path);

/* Why: likewise for a directory that is read ("directory docs does not
 * exist", "docs is not a directory"). Returns 0 or 1 (message printed). */
int toro_cli_check_dir(const char *cmd, const char *path);

/* Why: serve, api and the workers take --log-level or TORO_LOG_LEVEL.
 * Sets the level from value (NULL: leave it); what names the source in the
 * message ("--log-level", "TORO_LOG_LEVEL"). Returns 0 or 2 (message printed). */
int toro_cli_log_level(const char *cmd, const char *what, const char *value);

/* Why: the toro_gateway_parse_option adapter for toro_cmd_t.extra;
 * ud is the toro_gateway_config_t. */
int toro_cli_gateway_option(void *ud, int argc, char **argv, int *i);

/* Why: serve and the workers name the knowledge-base file in their errors;
 * the kb engine's message already names it, so this prints it once. */
void toro_cli_print_err(const char *cmd, const char *err, const char *fallback);

#endif
