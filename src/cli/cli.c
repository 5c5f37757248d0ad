/* cli.c: the shared option parser and messages of the toro commands (see
 * cli.h). It only reads argv and prints; it never exits the process. */
#include "cli/cli.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/util.h"
#include "gateway/gateway.h"

#define MAX_PATH 4096

int toro_cli_is_help(const char *arg) { return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0; }

int toro_cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(%s --help shows the usage)\n", cmd);
    return TORO_CLI_ERROR;
}

static const toro_opt_t *find_opt(const toro_opt_t *opts, const char *a)
{
    for (const toro_opt_t *o = opts; o && o->name; o++)
        if (strcmp(a, o->name) == 0 || (o->alias && strcmp(a, o->alias) == 0))
            return o;
    return NULL;
}

/* Whether word is one of the '|'-separated choices. */
static int is_choice(const char *choices, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    return 0;
}

/* Stores the value v of option o (named a as typed). Returns a TORO_CLI_* value. */
static int set_value(const toro_cmd_t *cmd, const toro_opt_t *o, const char *a, const char *v)
{
    switch (o->kind) {
    case TORO_OPT_LONG: {
        long n;
        if (toro_parse_long(v, o->min, o->max, &n) != 0)
            return toro_cli_fail(cmd->name, "%s needs an integer from %ld to %ld, not '%s'", a, o->min, o->max, v);
        *(long *)o->dest = n;
        return TORO_CLI_OK;
    }
    case TORO_OPT_CHOICE:
        if (!is_choice(o->choices, v))
            return toro_cli_fail(cmd->name, "%s must be one of %s, not '%s'", a, o->choices, v);
        *(const char **)o->dest = v;
        return TORO_CLI_OK;
    case TORO_OPT_STR:
        *(const char **)o->dest = v;
        return TORO_CLI_OK;
    case TORO_OPT_FLAG:
        break;
    }
    assert(!"flags take no value");
    return TORO_CLI_ERROR;
}

int toro_cli_parse(const toro_cmd_t *cmd, int argc, char **argv, int *n_pos)
{
    int npos = 0, options_done = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int is_option = !options_done && a[0] == '-' && a[1] != '\0';
        if (!is_option) {
            if (npos >= cmd->max_pos)
                return toro_cli_fail(cmd->name, "unexpected argument '%s'%s", a,
                                     cmd->max_pos ? "" : " (this command takes only options)");
            cmd->pos[npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (toro_cli_is_help(a)) {
            cmd->usage(stdout);
            return TORO_CLI_HELP;
        }
        const toro_opt_t *o = find_opt(cmd->opts, a);
        if (!o && cmd->extra) {
            int used = cmd->extra(cmd->extra_ud, argc, argv, &i);
            if (used < 0)
                return TORO_CLI_ERROR;
            if (used > 0)
                continue;
        }
        if (!o)
            return toro_cli_fail(cmd->name, "unknown option '%s'", a);
        if (o->kind == TORO_OPT_FLAG) {
            *(int *)o->dest = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        /* "--kb --json": the next word is an option, not --kb's file. A
         * negative number still reaches the integer check. */
        if (!v || (o->kind != TORO_OPT_LONG && v[0] == '-' && v[1] != '\0'))
            return toro_cli_fail(cmd->name, "%s needs a value (%s)", a, o->arg ? o->arg : "VALUE");
        int rc = set_value(cmd, o, a, v);
        if (rc != TORO_CLI_OK)
            return rc;
        i++;
    }
    if (n_pos)
        *n_pos = npos;
    return TORO_CLI_OK;
}

/* Prints why path cannot be used as a directory; returns 1. */
static int dir_error(const char *cmd, const char *path, int err)
{
    if (err == ENOENT)
        fprintf(stderr, "%s: directory %s does not exist\n", cmd, path);
    else if (err == ENOTDIR)
        fprintf(stderr, "%s: %s is not a directory\n", cmd, path);
    else
        fprintf(stderr, "%s: directory %s: %s\n", cmd, path, strerror(err));
    return 1;
}

int toro_cli_check_dir(const char *cmd, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return dir_error(cmd, path, errno);
    if (!S_ISDIR(st.st_mode))
        return dir_error(cmd, path, ENOTDIR);
    return 0;
}

int toro_cli_check_parent_dir(const char *cmd, const char *path)
{
    char dir[MAX_PATH];
    const char *slash = strrchr(path, '/');
    if (!slash)
        return 0; /* the current directory */
    size_t n = (size_t)(slash - path);
    if (n == 0)
        return 0; /* "/file" */
    if (n >= sizeof dir) {
        fprintf(stderr, "%s: path too long: %s\n", cmd, path);
        return 1;
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    return toro_cli_check_dir(cmd, dir);
}

void toro_cli_print_err(const char *cmd, const char *err, const char *fallback)
{
    fprintf(stderr, "%s: %s\n", cmd, err && *err ? err : fallback);
}

int toro_cli_log_level(const char *cmd, const char *what, const char *value)
{
    toro_log_level_t level;
    if (!value)
        return 0;
    if (toro_log_level_parse(value, &level) != 0)
        return toro_cli_fail(cmd, "%s must be one of debug|info|warn|error, not '%s'", what, value);
    toro_log_set_level(level);
    return 0;
}

int toro_cli_gateway_option(void *ud, int argc, char **argv, int *i)
{
    return toro_gateway_parse_option(ud, argc, argv, i);
}
