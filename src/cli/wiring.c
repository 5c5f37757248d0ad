/* wiring.c: options, environment, backends by URL and the shutdown model of
 * serve, api and worker (see wiring.h). */
#include "cli/wiring.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "answer/factory.h"
#include "answer/faulty.h"
#include "answer/live.h"
#include "bus/open.h"
#include "bus/post.h"
#include "bus/relay.h"
#include "cli/cli.h"
#include "core/error.h"
#include "core/kbinfo.h"
#include "core/log.h"
#include "core/util.h"
#include "store/open.h"

#define DEFAULT_NATS "nats://127.0.0.1:4222"

/* ---- options and environment ---- */

/* The variable's value, or NULL when unset or empty. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static bool has_gateway(toro_role_t r) { return r == TORO_ROLE_SERVE || r == TORO_ROLE_API; }
static bool is_worker(toro_role_t r) { return r == TORO_ROLE_PROCESS || r == TORO_ROLE_NOTIFY; }
static bool answers(toro_role_t r) { return r == TORO_ROLE_SERVE || r == TORO_ROLE_PROCESS; }

int toro_wiring_init(toro_wiring_t *w, toro_role_t role, const char *cmd)
{
    memset(w, 0, sizeof *w);
    w->role = role;
    w->cmd = cmd;
    w->log_name = role == TORO_ROLE_SERVE ? "serve" : role == TORO_ROLE_API ? "api" : "worker";
    w->env_data = env("TORO_DATA") ? env("TORO_DATA") : "data";
    w->env_store = env("TORO_STORE");
    w->env_bus = env("TORO_BUS");
    w->kb_path = env("TORO_KB");
    w->answerer = env("TORO_ANSWERER");
    w->fault = env("TORO_FAULT_ANSWERER");
    w->log_level = env("TORO_LOG_LEVEL");
    w->sync = "normal";
    w->n_process = 2;
    w->n_notify = 1;
    w->worker_nice = 10;
    w->concurrency = 2;
    w->max_attempts = 3;
    w->retry_base_ms = 200;
    w->max_deliveries = 10;
    w->health_port = -1;
    if (!has_gateway(role))
        return 0;
    toro_gateway_config_defaults(&w->gcfg);
    w->gcfg.host = env("TORO_HOST") ? env("TORO_HOST") : "127.0.0.1";
    const char *port = env("TORO_PORT");
    long p;
    if (port) {
        if (toro_parse_long(port, 0, 65535, &p) != 0) {
            fprintf(stderr, "%s: TORO_PORT needs an integer from 0 to 65535, not '%s'\n", cmd, port);
            return 2;
        }
        w->gcfg.port = (int)p;
    }
    return 0;
}

enum { R_SERVE = 1, R_API = 2, R_PROCESS = 4, R_NOTIFY = 8, R_WORKER = R_PROCESS | R_NOTIFY, R_ALL = 15 };

typedef struct role_opt {
    unsigned roles;  /* R_* bits of the roles that take the option */
    toro_opt_t opt;
} role_opt_t;

#define MAX_ROWS 32

/* The option table of w->role in out (NULL-terminated). */
static void build_table(toro_wiring_t *w, toro_opt_t *out)
{
    const role_opt_t rows[] = {
        {R_ALL, {"--store", NULL, TORO_OPT_STR, &w->store_opt, "URL", 0, 0, NULL}},
        {R_ALL, {"--bus", NULL, TORO_OPT_STR, &w->bus_opt, "URL", 0, 0, NULL}},
        {R_SERVE, {"--data", NULL, TORO_OPT_STR, &w->data_opt, "DIR", 0, 0, NULL}},
        {R_ALL, {"--kb", NULL, TORO_OPT_STR, &w->kb_path, "FILE", 0, 0, NULL}},
        {R_SERVE, {"--process-workers", NULL, TORO_OPT_LONG, &w->n_process, "N", 1, TORO_WIRING_MAX_WORKERS, NULL}},
        {R_SERVE, {"--notify-workers", NULL, TORO_OPT_LONG, &w->n_notify, "N", 1, TORO_WIRING_MAX_WORKERS, NULL}},
        {R_SERVE, {"--worker-nice", NULL, TORO_OPT_LONG, &w->worker_nice, "N", 0, 19, NULL}},
        {R_WORKER, {"--concurrency", NULL, TORO_OPT_LONG, &w->concurrency, "N", 1, TORO_WIRING_MAX_WORKERS, NULL}},
        {R_SERVE | R_WORKER, {"--max-attempts", NULL, TORO_OPT_LONG, &w->max_attempts, "N", 1, 100, NULL}},
        {R_SERVE | R_WORKER, {"--retry-base-ms", NULL, TORO_OPT_LONG, &w->retry_base_ms, "MS", 1, 600000, NULL}},
        {R_SERVE | R_WORKER, {"--max-deliveries", NULL, TORO_OPT_LONG, &w->max_deliveries, "N", 1, 1000, NULL}},
        {R_WORKER, {"--health-port", NULL, TORO_OPT_LONG, &w->health_port, "PORT", 0, 65535, NULL}},
        {R_SERVE | R_PROCESS, {"--kb-watch", NULL, TORO_OPT_LONG, &w->kb_watch_s, "SECONDS", 0, 86400, NULL}},
        {R_SERVE, {"--sync", NULL, TORO_OPT_CHOICE, &w->sync, "MODE", 0, 0, "normal|full"}},
        {R_SERVE | R_PROCESS, {"--answerer", NULL, TORO_OPT_STR, &w->answerer, "NAME", 0, 0, NULL}},
        {R_ALL, {"--log-level", NULL, TORO_OPT_STR, &w->log_level_opt, "LEVEL", 0, 0, NULL}},
    };
    const toro_opt_t kb_rows[] = {TORO_KB_OPTS_ROWS(&w->kopts)};
    unsigned bit = 1u << w->role;
    size_t n = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].roles & bit)
            out[n++] = rows[i].opt;
    for (size_t i = 0; i < sizeof kb_rows / sizeof kb_rows[0]; i++)
        out[n++] = kb_rows[i];
    assert(n < MAX_ROWS);
    out[n] = (toro_opt_t){0};
}

/* Chooses the store URL: --store; for serve --data, else sqlite://$TORO_DATA
 * (serve never follows TORO_STORE: its default stays embedded); for api and
 * workers TORO_STORE. Returns 0 or 2 (message printed). */
static int resolve_store(toro_wiring_t *w)
{
    if (w->role != TORO_ROLE_SERVE) {
        w->store_url = w->store_opt ? w->store_opt : w->env_store;
        if (!w->store_url)
            return toro_cli_fail(w->cmd, "--store postgres://HOST:PORT/DB is required (or env TORO_STORE)");
        return 0;
    }
    if (w->store_opt && w->data_opt)
        return toro_cli_fail(w->cmd, "--data DIR and --store URL both choose the store; give one "
                                     "(--data DIR means --store sqlite://DIR/toro.db)");
    if (w->store_opt) {
        w->store_url = w->store_opt;
        return 0;
    }
    const char *dir = w->data_opt ? w->data_opt : w->env_data;
    int len = snprintf(w->store_buf, sizeof w->store_buf, "sqlite://%s/toro.db", dir);
    if (len < 0 || (size_t)len >= sizeof w->store_buf)
        return toro_cli_fail(w->cmd, "--data path too long");
    w->store_url = w->store_buf;
    return 0;
}

/* Refuses a store and bus that cannot work together, or in this role.
 * Returns 0 or 2 (message printed). */
static int check_pair(const toro_wiring_t *w, toro_store_url_kind_t s, toro_bus_url_kind_t b)
{
    if (s == TORO_STORE_URL_BAD)
        return toro_cli_fail(w->cmd,
                             "--store must be sqlite://PATH or postgres://HOST:PORT/DB (or dynamodb://REGION?…), "
                             "not '%s'",
                             w->store_url);
    if (b == TORO_BUS_URL_BAD)
        return toro_cli_fail(w->cmd, "--bus must be local, nats://HOST:PORT or sns://REGION?…, not '%s'", w->bus_url);
    if (b == TORO_BUS_URL_SNS && w->role != TORO_ROLE_SERVE)
        return toro_cli_fail(w->cmd, "--bus sns:// cannot carry updates from a worker to another process's "
                                     "sockets (it has no node-to-node post); use nats:// for api and worker "
                                     "processes (sns:// serves one `toro serve` node, or `toro lambda`)");
    if (w->role != TORO_ROLE_SERVE && (s == TORO_STORE_URL_SQLITE || b == TORO_BUS_URL_LOCAL))
        return toro_cli_fail(w->cmd, "%s %s belongs to one process: %s; run `toro serve` (gateway and workers "
                                     "in one process), or use --store postgres://… --bus nats://…",
                             s == TORO_STORE_URL_SQLITE ? "--store" : "--bus",
                             s == TORO_STORE_URL_SQLITE ? w->store_url : w->bus_url,
                             w->role == TORO_ROLE_API ? "a worker in another process would never see this api's "
                                                        "questions"
                                                      : "this worker would never see the questions of a toro api "
                                                        "in another process");
    if (s == TORO_STORE_URL_SQLITE && b != TORO_BUS_URL_LOCAL)
        return toro_cli_fail(w->cmd, "--store sqlite:// keeps its events in its own file, which only --bus local "
                                     "reads; with --bus %s use --store postgres://… or dynamodb://… (their outbox "
                                     "is relayed to the bus)",
                             w->bus_url);
    if ((s == TORO_STORE_URL_POSTGRES || s == TORO_STORE_URL_DYNAMODB) && b == TORO_BUS_URL_LOCAL)
        return toro_cli_fail(w->cmd, "--bus local reads events from a SQLite file, but --store %s writes "
                                     "them to its outbox, which is relayed to a nats:// or sns:// bus; use --bus nats://HOST:PORT",
                             s == TORO_STORE_URL_POSTGRES ? "postgres://" : "dynamodb://");
    return 0;
}

/* Chooses the bus URL (--bus; else TORO_BUS or nats://127.0.0.1:4222, except
 * that serve on a sqlite:// store defaults to local) and checks the pair. */
static int resolve_backends(toro_wiring_t *w)
{
    int rc = resolve_store(w);
    if (rc)
        return rc;
    toro_store_url_kind_t s = toro_store_url_kind(w->store_url);
    if (w->bus_opt)
        w->bus_url = w->bus_opt;
    else if (w->role == TORO_ROLE_SERVE && s == TORO_STORE_URL_SQLITE)
        w->bus_url = "local";
    else
        w->bus_url = w->env_bus ? w->env_bus : DEFAULT_NATS;
    return check_pair(w, s, toro_bus_url_kind(w->bus_url));
}

/* What the options imply beyond their own values. Returns a TORO_CLI_* value. */
static int finish(toro_wiring_t *w)
{
    if (w->log_level_opt)
        w->log_level = w->log_level_opt;
    if (toro_cli_log_level(w->cmd, w->log_level_opt ? "--log-level" : "TORO_LOG_LEVEL", w->log_level))
        return TORO_CLI_ERROR;
    if (has_gateway(w->role) && toro_gateway_config_finish(&w->gcfg) != 0)
        return TORO_CLI_ERROR;
    if (answers(w->role) && !w->kb_path)
        return toro_cli_fail(w->cmd, "missing --kb FILE (the knowledge-base snapshot, or env TORO_KB; "
                                     "build one with: toro kb build kb/docs -o kb.toro)");
    if (is_worker(w->role)) {
        w->n_process = w->role == TORO_ROLE_PROCESS ? w->concurrency : 0;
        w->n_notify = w->role == TORO_ROLE_NOTIFY ? w->concurrency : 0;
    } else if (w->role == TORO_ROLE_API) {
        w->n_process = w->n_notify = 0;
    }
    return resolve_backends(w) ? TORO_CLI_ERROR : TORO_CLI_OK;
}

int toro_wiring_parse(toro_wiring_t *w, void (*usage)(FILE *f), int argc, char **argv)
{
    toro_opt_t table[MAX_ROWS];
    build_table(w, table);
    toro_cmd_t cmd = {.name = w->cmd, .usage = usage, .opts = table};
    if (has_gateway(w->role)) {
        cmd.extra = toro_cli_gateway_option;
        cmd.extra_ud = &w->gcfg;
    }
    int rc = toro_cli_parse(&cmd, argc, argv, NULL);
    return rc == TORO_CLI_OK ? finish(w) : rc;
}

int toro_wiring_setup(toro_wiring_t *w, toro_role_t role, const char *cmd, void (*usage)(FILE *f), int argc,
                      char **argv)
{
    int rc = toro_wiring_init(w, role, cmd);
    if (rc)
        return rc;
    rc = toro_wiring_parse(w, usage, argc, argv);
    return rc == TORO_CLI_OK ? -1 : rc == TORO_CLI_HELP ? 0 : 2;
}

/* ---- signals: blocked everywhere, taken by one thread ---- */

static void signal_set(sigset_t *s)
{
    sigemptyset(s);
    sigaddset(s, SIGINT);
    sigaddset(s, SIGTERM);
    sigaddset(s, SIGHUP);
}

/* SIGHUP: the snapshot at --kb again; a refusal is logged and counted. */
static void reload_on_signal(toro_node_t *n)
{
    char *why = NULL;
    if (toro_node_reload_kb(n, &why) != 0)
        toro_log_error(n->w->log_name, NULL, "SIGHUP: knowledge base %s refused, the old one keeps serving: %s",
                       n->w->kb_path ? n->w->kb_path : "(none)", why ? why : "unknown error");
    free(why);
}

/* Whether st names another file, or the same file changed, since seen. */
static bool kb_changed(const struct stat *seen, const struct stat *st)
{
    return st->st_dev != seen->st_dev || st->st_ino != seen->st_ino || st->st_size != seen->st_size ||
           st->st_mtim.tv_sec != seen->st_mtim.tv_sec || st->st_mtim.tv_nsec != seen->st_mtim.tv_nsec;
}

/* --kb-watch: a snapshot moved over --kb (or rewritten) since the last
 * load or refusal is loaded as SIGHUP would; a file that cannot be read
 * yet is checked again next time. */
static void watch_kb(toro_node_t *n)
{
    struct stat st;
    if (!n->live || stat(n->w->kb_path, &st) != 0)
        return;
    pthread_mutex_lock(&n->reload_mu);
    bool changed = kb_changed(&n->kb_seen, &st);
    if (changed)
        n->kb_seen = st; /* a refused file is not retried until it changes again */
    pthread_mutex_unlock(&n->reload_mu);
    if (!changed)
        return;
    toro_log_info(n->w->log_name, NULL, "--kb-watch: %s changed; reloading", n->w->kb_path);
    reload_on_signal(n);
}

/* Waits for the next signal; with --kb-watch, checks --kb every interval
 * meanwhile. Returns the signal. */
static int next_signal(toro_node_t *n, const sigset_t *s)
{
    long every = n->w->kb_watch_s;
    for (;;) {
        if (every <= 0) {
            int sig = 0;
            sigwait(s, &sig);
            return sig;
        }
        struct timespec ts = {.tv_sec = every};
        int sig = sigtimedwait(s, NULL, &ts);
        if (sig > 0)
            return sig;
        pthread_mutex_lock(&n->mu);
        bool closing = n->closing;
        pthread_mutex_unlock(&n->mu);
        if (!closing)
            watch_kb(n);
    }
}

/* Reloads the knowledge base on each SIGHUP (and, with --kb-watch, when
 * the file changes); waits for SIGINT/SIGTERM, then stops the node (or ends
 * quietly when toro_node_close woke it). A later signal stays blocked:
 * ignored. */
static void *signal_main(void *arg)
{
    toro_node_t *n = arg;
    sigset_t s;
    signal_set(&s);
    int sig = 0;
    bool closing = false;
    for (;;) {
        sig = next_signal(n, &s);
        pthread_mutex_lock(&n->mu);
        closing = n->closing;
        bool hup = sig == SIGHUP && !closing;
        n->sig_fired = !hup;
        pthread_mutex_unlock(&n->mu);
        if (!hup)
            break;
        reload_on_signal(n);
    }
    if (!closing) {
        toro_log_info(n->w->log_name, NULL, "signal %d: shutting down, finishing messages in hand", sig);
        toro_node_stop(n);
    }
    return NULL;
}

/* Blocks the signals in this thread before any other starts (they inherit
 * the mask), so only signal_main takes them. */
static int start_signals(toro_node_t *n)
{
    sigset_t s;
    signal_set(&s);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    signal(SIGPIPE, SIG_IGN); /* a peer that went away is an error code, not a signal */
    if (pthread_create(&n->sig_thread, NULL, signal_main, n) != 0) {
        fprintf(stderr, "%s: cannot start the signal thread\n", n->w->cmd);
        return 1;
    }
    n->sig_started = true;
    return 0;
}

static void stop_signals(toro_node_t *n)
{
    if (!n->sig_started)
        return;
    pthread_mutex_lock(&n->mu);
    n->closing = true;
    bool fired = n->sig_fired;
    pthread_mutex_unlock(&n->mu);
    if (!fired)
        pthread_kill(n->sig_thread, SIGTERM); /* blocked here: taken by its sigwait */
    pthread_join(n->sig_thread, NULL);
    n->sig_started = false;
}

void toro_node_stop(toro_node_t *n)
{
    pthread_mutex_lock(&n->mu);
    atomic_store(&n->stop, 1);
    if (n->gw)
        toro_gateway_stop(n->gw);
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

/* ---- opening, in order ---- */

/* serve on sqlite://: the file's directory exists (created when missing) and
 * no other toro process uses it (toro.lock: the local bus has one owner).
 * Returns 0 or 1 (message printed). */
static int lock_data_dir(toro_node_t *n, const char *db_path)
{
    const char *cmd = n->w->cmd;
    char dir[4096], path[4200];
    const char *slash = strrchr(db_path, '/');
    size_t len = slash ? (size_t)(slash - db_path) + (slash == db_path) : 1;
    if (len >= sizeof dir) {
        fprintf(stderr, "%s: store path too long: %s\n", cmd, db_path);
        return 1;
    }
    memcpy(dir, slash ? db_path : ".", len);
    dir[len] = '\0';
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot create data directory %s: %s\n", cmd, dir, strerror(errno));
        return 1;
    }
    if (toro_cli_check_dir(cmd, dir))
        return 1;
    snprintf(path, sizeof path, "%s/toro.lock", dir);
    n->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (n->lock_fd < 0) { /* say what is wrong: only a held lock means another process */
        int e = errno;
        fprintf(stderr, "%s: cannot use data directory %s: %s\n", cmd, dir,
                e == ENOTDIR ? "it is not a directory"
                : e == EROFS ? "it is on a read-only file system"
                : e == EACCES || e == EPERM ? "it is not writable by this user (permission denied)"
                             : strerror(e));
        return 1;
    }
    if (flock(n->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "%s: data directory %s is in use by another toro process (%s)\n", cmd, dir,
                errno == EWOULDBLOCK ? "its toro.lock is held" : strerror(errno));
        return 1;
    }
    return 0;
}

/* api: opens the snapshot at --kb (with the retrieval options when given,
 * which checks the embedder) only to read its version into *version (caller
 * frees). Returns 0, or a negative code with *err (caller frees). */
static int probe_kb(const toro_wiring_t *w, char **version, char **err)
{
    const toro_kb_opts_t *o = &w->kopts;
    toro_kb_t *kb = NULL;
    toro_embedder_t *emb = NULL;
    bool apply = o->embedder || o->min_relevance || o->mode || o->fusion;
    int rc = apply ? toro_kb_opts_open(w->kb_path, o, &kb, &emb, err) : toro_kb_open(w->kb_path, &kb, err);
    if (rc == 0) {
        *version = strdup(toro_kb_version(kb));
        rc = *version ? 0 : TORO_ENOMEM;
    }
    toro_kb_close(kb);
    toro_embedder_free(emb);
    return rc;
}

/* serve and process keep the snapshot open; api opens it only to report its
 * version and check the retrieval options (answers come from the workers).
 * Returns 0 or 1 (message printed). */
static int open_kb(toro_node_t *n, char **err)
{
    toro_wiring_t *w = n->w;
    const toro_kb_opts_t *o = &w->kopts;
    if (answers(w->role)) {
        if (toro_kb_opts_open(w->kb_path, o, &n->kb, &n->embedder, err) != 0) {
            toro_cli_print_err(w->cmd, *err, "cannot open the knowledge base");
            return 1;
        }
        n->kb_version = strdup(toro_kb_version(n->kb));
    } else if (w->role == TORO_ROLE_API && w->kb_path) {
        if (probe_kb(w, &n->kb_version, err) != 0) {
            toro_cli_print_err(w->cmd, *err, "cannot open the knowledge base");
            return 1;
        }
    } else {
        return 0;
    }
    toro_kbinfo_set(n->kb_version);
    return n->kb_version ? 0 : 1;
}

/* Store, bus and (postgres:// or dynamodb:// + nats:// or sns://) the outbox relay.
 * Returns 0 or 1. */
static int open_backends(toro_node_t *n, char **err)
{
    toro_wiring_t *w = n->w;
    toro_store_url_kind_t kind = toro_store_url_kind(w->store_url);
    bool shared = kind == TORO_STORE_URL_POSTGRES || kind == TORO_STORE_URL_DYNAMODB; /* a shared store: relayed */
    toro_db_sync_t sync = strcmp(w->sync, "full") == 0 ? TORO_DB_SYNC_FULL : TORO_DB_SYNC_NORMAL;
    if (toro_store_open(w->store_url, sync, &n->store, err) != 0 ||
        toro_bus_open(w->bus_url, shared ? NULL : toro_store_outbox(n->store), &n->bus, err) != 0 ||
        (shared && toro_relay_start(toro_store_outbox(n->store), n->bus, &n->relay, err) != 0)) {
        fprintf(stderr, "%s: %s\n", w->cmd, *err ? *err : "cannot open the store or the bus");
        return 1;
    }
    if (shared && toro_store_ping(n->store) != 0)
        toro_log_warn(w->log_name, NULL, "%s is not reachable (or `toro db migrate` has not run); retrying",
                      kind == TORO_STORE_URL_POSTGRES ? "PostgreSQL" : "DynamoDB");
    return 0;
}

/* The answerer (--answerer, TORO_ANSWERER), wrapped for fault injection when
 * TORO_FAULT_ANSWERER says so. Returns 0 or 1 (message printed). */
static int open_answerer(toro_node_t *n, char **err)
{
    toro_wiring_t *w = n->w;
    if (!answers(w->role))
        return 0;
    toro_answerer_t *a = NULL;
    if (toro_answerer_create(w->answerer, n->kb, &a, err) != 0) {
        fprintf(stderr, "%s: cannot create the answerer: %s\n", w->cmd, *err ? *err : "unknown error");
        return 1;
    }
    if (toro_live_new(n->kb, n->embedder, a, &n->answerer) != 0) {
        toro_answerer_free(a);
        fprintf(stderr, "%s: out of memory\n", w->cmd);
        return 1;
    }
    pthread_mutex_lock(&n->reload_mu); /* a SIGHUP may already be reloading */
    n->live = n->answerer;             /* it owns the snapshot from now on */
    if (stat(n->w->kb_path, &n->kb_seen) != 0) /* --kb-watch starts from the file opened */
        memset(&n->kb_seen, 0, sizeof n->kb_seen);
    pthread_mutex_unlock(&n->reload_mu);
    n->kb = NULL;
    n->embedder = NULL;
    if (!w->fault)
        return 0;
    toro_answerer_t *wrapped = NULL;
    if (toro_answerer_faulty_new(n->answerer, w->fault, &wrapped) != 0) {
        fprintf(stderr, "%s: TORO_FAULT_ANSWERER: bad spec '%s' (KIND:N:MARKER;...)\n", w->cmd, w->fault);
        return 1;
    }
    n->answerer = wrapped;
    toro_log_warn(w->log_name, NULL, "fault injection is on (TORO_FAULT_ANSWERER=%s); for tests only", w->fault);
    return 0;
}

/* Notify's post: this process's gateway for its own sockets (and for every
 * socket on the local bus); another node's through NATS. */
static int node_post(void *arg, const char *connection_id, const char *node, const char *message)
{
    toro_node_t *n = arg;
    bool nats = toro_bus_url_kind(n->w->bus_url) == TORO_BUS_URL_NATS;
    if (n->gw && (!nats || !node || strcmp(node, n->node) == 0))
        return toro_gateway_post(n->gw, connection_id, node, message);
    return toro_bus_nats_post(n->bus, connection_id, node, message);
}

/* After a NATS outage, put back the rows of this node's sockets. */
static void resync_connections(void *gw) { toro_gateway_resync_connections(gw); }

static void fill_ctx(toro_node_t *n)
{
    toro_wiring_t *w = n->w;
    toro_stage_ctx_defaults(&n->ctx);
    n->ctx.store = n->store;
    n->ctx.bus = n->bus;
    n->ctx.answerer = n->answerer;
    n->ctx.max_attempts = (int)w->max_attempts;
    n->ctx.backoff_base_ms = (int)w->retry_base_ms;
    n->ctx.max_deliveries = (int)w->max_deliveries;
    n->ctx.post = node_post;
    n->ctx.post_ctx = n;
}

/* The gateway's POST /admin/kb/reload. */
static int gateway_reload(void *ud, char **why) { return toro_node_reload_kb(ud, why); }

/* The gateway (serve, api); on a nats:// bus it also answers other nodes'
 * notify workers for its sockets. Returns 0 or 1 (message printed). */
static int open_gateway(toro_node_t *n, char **err)
{
    toro_wiring_t *w = n->w;
    if (!has_gateway(w->role))
        return 0;
    bool nats = toro_bus_url_kind(w->bus_url) == TORO_BUS_URL_NATS;
    if (nats && w->gcfg.auth_mode == TORO_AUTH_DEV && w->gcfg.auth.dev_key_random) /* nodes cannot share a random key */
        toro_log_warn(w->log_name, NULL,
                      "no shared secret (TORO_DEV_SECRET in development mode, --jwt-secret-file FILE or "
                      "TORO_JWT_SECRET in jwt mode): this node signs tokens with a random key of its own, so other "
                      "api nodes reject the tokens it issues and it rejects theirs; give every api node the same secret");
    w->gcfg.kb_version = n->kb_version;
    w->gcfg.kb_reload = gateway_reload;
    w->gcfg.kb_reload_ud = n;
    toro_gateway_t *gw = NULL;
    if (toro_gateway_new(&w->gcfg, &n->ctx, &gw, err) != 0) {
        fprintf(stderr, "%s: %s\n", w->cmd, *err ? *err : "cannot start the gateway");
        return 1;
    }
    snprintf(n->node, sizeof n->node, "%s", w->gcfg.node ? w->gcfg.node : "");
    if (!w->gcfg.node)
        snprintf(n->node, sizeof n->node, "%s:%d", w->gcfg.host, toro_gateway_port(gw));
    pthread_mutex_lock(&n->mu); /* the signal thread may stop it from now on */
    n->gw = gw;
    bool stopped = atomic_load(&n->stop);
    pthread_mutex_unlock(&n->mu);
    if (stopped)
        toro_gateway_stop(gw);
    if (nats && toro_bus_nats_serve_node(n->bus, n->node, toro_gateway_post, gw) != 0) {
        fprintf(stderr, "%s: cannot subscribe to notifications for node %s\n", w->cmd, n->node);
        return 1;
    }
    if (nats)
        toro_bus_nats_on_reconnect(n->bus, resync_connections, gw);
    return 0;
}

int toro_node_open(toro_node_t *n, toro_wiring_t *w)
{
    memset(n, 0, sizeof *n);
    n->w = w;
    n->lock_fd = -1;
    pthread_mutex_init(&n->mu, NULL);
    pthread_mutex_init(&n->reload_mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    char *err = NULL;
    const char *db = toro_store_sqlite_path(w->store_url);
    int rc = start_signals(n);
    if (!rc && db)
        rc = lock_data_dir(n, db);
    if (!rc)
        rc = open_kb(n, &err);
    if (!rc)
        rc = open_backends(n, &err);
    if (!rc)
        rc = open_answerer(n, &err);
    if (!rc) {
        fill_ctx(n);
        rc = open_gateway(n, &err);
    }
    free(err);
    return rc;
}

/* ---- running and stopping ---- */

int toro_node_start_workers(toro_node_t *n)
{
    const toro_wiring_t *w = n->w;
    /* serve: the answering threads yield the CPU to the gateway's loop (the
     * backlog they leave is durable and drains when the load falls) */
    int nice = w->role == TORO_ROLE_SERVE ? (int)w->worker_nice : 0;
    n->workers[0] = (toro_worker_t){.ctx = &n->ctx, .topic = TORO_TOPIC_PROCESS, .stop = &n->stop, .nice = nice};
    n->workers[1] = (toro_worker_t){.ctx = &n->ctx, .topic = TORO_TOPIC_NOTIFY, .stop = &n->stop};
    long want[2] = {w->n_process, w->n_notify};
    for (int k = 0; k < 2; k++)
        for (long i = 0; i < want[k]; i++) {
            assert(n->n_threads < 2 * TORO_WIRING_MAX_WORKERS);
            if (pthread_create(&n->threads[n->n_threads], NULL, toro_worker_main, &n->workers[k]) != 0) {
                toro_log_error(w->log_name, NULL, "cannot start a worker thread: %s", strerror(errno));
                return -1;
            }
            n->n_threads++;
        }
    return 0;
}

void toro_node_announce(const toro_node_t *n)
{
    if (!n->gw)
        return;
    toro_gateway_config_announce(&n->w->gcfg);
    /* a parseable line on stdout for scripts that start us on port 0 */
    printf("listening on %s://%s:%d\n", toro_gateway_tls(n->gw) ? "https" : "http", n->w->gcfg.host,
           toro_gateway_port(n->gw));
    fflush(stdout);
}

int toro_node_run(toro_node_t *n)
{
    n->ran = true;
    if (n->gw)
        return toro_gateway_run(n->gw) == 0 ? 0 : 1;
    pthread_mutex_lock(&n->mu);
    while (!atomic_load(&n->stop))
        pthread_cond_wait(&n->cv, &n->mu);
    pthread_mutex_unlock(&n->mu);
    return 0;
}

void toro_node_close(toro_node_t *n)
{
    toro_node_stop(n);
    if (n->bus)
        toro_bus_interrupt(n->bus);
    for (int i = 0; i < n->n_threads; i++) /* each finishes the message in hand */
        pthread_join(n->threads[i], NULL);
    n->n_threads = 0;
    stop_signals(n);
    /* the relay and the bus before the gateway: a NATS thread may still be
     * posting into it; then the gateway, whose open sockets delete their rows
     * from the store; then the store */
    toro_relay_stop(n->relay);
    toro_bus_close(n->bus);
    pthread_mutex_lock(&n->mu);
    toro_gateway_t *gw = n->gw;
    n->gw = NULL;
    pthread_mutex_unlock(&n->mu);
    toro_gateway_free(gw);
    toro_answerer_free(n->answerer);
    toro_store_close(n->store);
    toro_kb_close(n->kb);
    toro_embedder_free(n->embedder);
    free(n->kb_version);
    if (n->lock_fd >= 0)
        close(n->lock_fd);
    n->relay = NULL;
    n->bus = NULL;
    n->answerer = NULL;
    n->live = NULL;
    n->store = NULL;
    n->kb = NULL;
    n->embedder = NULL;
    n->kb_version = NULL;
    n->lock_fd = -1;
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    pthread_mutex_destroy(&n->reload_mu);
    if (n->ran)
        toro_log_info(n->w->log_name, NULL, "stopped");
}

/* serve, process: the snapshot at --kb and its answerer, swapped in.
 * Returns 0 or a negative code with *why. */
static int reload_answering(toro_node_t *n, char **why)
{
    const toro_wiring_t *w = n->w;
    toro_kb_t *kb = NULL;
    toro_embedder_t *emb = NULL;
    toro_answerer_t *a = NULL;
    int rc = toro_kb_opts_open(w->kb_path, &w->kopts, &kb, &emb, why);
    if (rc == 0)
        rc = toro_answerer_create(w->answerer, kb, &a, why);
    if (rc == 0)
        rc = toro_live_swap(n->live, kb, emb, a);
    if (rc == 0)
        return 0;
    toro_answerer_free(a);
    toro_kb_close(kb);
    toro_embedder_free(emb);
    return rc;
}

int toro_node_reload_kb(toro_node_t *n, char **why)
{
    const toro_wiring_t *w = n->w;
    *why = NULL;
    pthread_mutex_lock(&n->reload_mu);
    if (!w->kb_path || (!n->live && w->role != TORO_ROLE_API)) {
        pthread_mutex_unlock(&n->reload_mu);
        *why = strdup("this process serves no knowledge base (yet): toro worker notify, api without --kb, "
                      "or still starting");
        return TORO_EINVAL;
    }
    struct stat st;
    if (stat(w->kb_path, &st) == 0)
        n->kb_seen = st; /* what this reload reads (--kb-watch compares with it) */
    char old[128], now[128];
    toro_kbinfo_get(old, sizeof old);
    char *version = NULL;
    bool answering = n->live != NULL;
    int rc = answering ? reload_answering(n, why) : probe_kb(w, &version, why);
    if (rc == 0 && answering)
        toro_live_version(n->live, now, sizeof now);
    else
        snprintf(now, sizeof now, "%s", version ? version : old);
    if (rc == 0)
        toro_kbinfo_set(now);
    toro_kbinfo_reload(rc == 0);
    pthread_mutex_unlock(&n->reload_mu);
    free(version);
    if (rc == 0)
        toro_log_info(w->log_name, NULL, "knowledge base reloaded from %s: version %s (was %s)%s", w->kb_path, now,
                      old, answering ? "; questions in flight finish on the old one" : "");
    else if (!*why)
        *why = strdup(toro_strerror(rc));
    return rc;
}

int toro_node_health(toro_node_t *n, char *buf, size_t cap)
{
    long depth = 0;
    bool store_ok = toro_store_ping(n->store) == 0;
    bool bus_ok = toro_bus_depth(n->bus, TORO_TOPIC_PROCESS, &depth) == 0;
    bool ok = store_ok && bus_ok;
    char kbv[128]; /* a snapshot version: hex digits, nothing to escape; none in a notify worker */
    bool has_kb = toro_kbinfo_get(kbv, sizeof kbv);
    snprintf(buf, cap, "{\"success\":%s,\"data\":{\"status\":\"%s\",\"store\":\"%s\",\"bus\":\"%s\"%s%s%s}}",
             ok ? "true" : "false", ok ? "ok" : "unhealthy", store_ok ? "ok" : "unreachable",
             bus_ok ? "ok" : "unreachable", has_kb ? ",\"kb_version\":\"" : "", has_kb ? kbv : "", has_kb ? "\"" : "");
    return ok ? 200 : 503;
}
