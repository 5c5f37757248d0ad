/* wiring.h: how `toro serve`, `toro api` and `toro worker` become a running
 * node. One module for the three commands: the environment (TORO_*) is read
 * here and nowhere else in them, one option table serves all three (each
 * role takes the rows that apply to it), the store and the bus are chosen by
 * URL (--store sqlite://…|postgres://…, --bus local|nats://…) and checked as a
 * pair before anything opens, and one shutdown model ends every role:
 *
 *   SIGHUP -> re-read --kb (serve, worker process; api re-checks it): the
 *     new snapshot serves new questions, those in flight finish on theirs
 *     (answer/live.h); a snapshot that does not open is refused, logged,
 *     and the old one keeps serving. POST /admin/kb/reload does the same.
 *   SIGINT/SIGTERM -> one stop flag (+ gateway stop, bus interrupt)
 *     -> workers finish the message in hand -> relay -> bus -> gateway
 *     -> answerer, store, knowledge base.
 *
 * Roles and what they run in this process:
 *   serve    gateway + process and notify workers (+ relay with postgres://)
 *   api      gateway only (ingest); answers come from workers elsewhere
 *   process  process workers;  notify  notify workers
 * A pair that cannot work is refused with a message and exit status 2: a
 * sqlite:// store with a nats:// bus (no relay reads the SQLite file), a
 * postgres:// store with the local bus (nothing moves its outbox into the
 * SQLite file), and api/worker on sqlite:// or local (one process owns that
 * file and bus: a worker in another process would never see the api's
 * questions). It only wires: no stage, store or bus logic lives here. */
#ifndef TORO_CLI_WIRING_H
#define TORO_CLI_WIRING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include "bus/relay.h"
#include "cli/kb_opts.h"
#include "gateway/gateway.h"
#include "stages/stages.h"

#define TORO_WIRING_MAX_WORKERS 64 /* threads per stage in one process */

typedef enum {
    TORO_ROLE_SERVE,   /* toro serve */
    TORO_ROLE_API,     /* toro api */
    TORO_ROLE_PROCESS, /* toro worker process */
    TORO_ROLE_NOTIFY,  /* toro worker notify */
} toro_role_t;

/* What the command asked for: defaults, then environment, then options. All
 * strings are borrowed from argv or the environment, except store_buf. */
typedef struct toro_wiring {
    toro_role_t role;
    const char *cmd;           /* "toro serve": the prefix of every message */
    const char *log_name;      /* log component: "serve", "api", "worker" */
    const char *store_url;     /* resolved by toro_wiring_parse */
    const char *bus_url;       /* resolved by toro_wiring_parse */
    const char *store_opt;     /* --store as given (NULL: not given) */
    const char *bus_opt;       /* --bus as given */
    const char *data_opt;      /* --data as given (serve) */
    const char *env_data;      /* TORO_DATA, or "data" */
    const char *env_store;     /* TORO_STORE (api, worker) */
    const char *env_bus;       /* TORO_BUS */
    const char *kb_path;       /* --kb or TORO_KB */
    toro_kb_opts_t kopts;      /* --embedder, --min-relevance, --mode, --fusion */
    const char *answerer;      /* --answerer or TORO_ANSWERER; NULL: extractive */
    const char *fault;         /* TORO_FAULT_ANSWERER (tests only) */
    const char *sync;          /* --sync normal|full (SQLite) */
    const char *log_level;     /* --log-level or TORO_LOG_LEVEL */
    const char *log_level_opt; /* --log-level as given */
    long n_process, n_notify;  /* threads per stage (worker: --concurrency) */
    long concurrency;          /* worker --concurrency */
    long worker_nice;          /* serve --worker-nice: process workers' nice increment */
    long max_attempts, retry_base_ms, max_deliveries;
    long health_port;          /* worker --health-port; -1 = off */
    long kb_watch_s;           /* serve, worker process --kb-watch: seconds between checks of --kb; 0 = off */
    toro_gateway_config_t gcfg;  /* serve, api */
    char store_buf[4096];      /* sqlite://DATA/toro.db when --data chose the store */
} toro_wiring_t;

/* Why: the one place the commands read TORO_* variables. Fills defaults for
 * role and the environment's values. Returns 0, or 2 after printing why
 * (TORO_PORT that is not a port). */
int toro_wiring_init(toro_wiring_t *w, toro_role_t role, const char *cmd);

/* Why: one option parser for the three commands. Parses argv[0..argc) (the
 * words after the command) with the rows of w->role, then applies the log
 * level, finishes the gateway configuration and resolves and checks the
 * store and bus pair. Returns TORO_CLI_OK, TORO_CLI_HELP (usage printed) or
 * TORO_CLI_ERROR (message printed on stderr: exit 2). */
int toro_wiring_parse(toro_wiring_t *w, void (*usage)(FILE *f), int argc, char **argv);

/* Why: the three commands start alike. toro_wiring_init, then
 * toro_wiring_parse. Returns -1 when the command goes on, otherwise its exit
 * status: 0 after --help, 2 after a usage error (message printed). */
int toro_wiring_setup(toro_wiring_t *w, toro_role_t role, const char *cmd, void (*usage)(FILE *f), int argc,
                      char **argv);

/* A running node: what toro_node_open opened. Lives on the caller's stack
 * until toro_node_close returns (the gateway and workers borrow it). */
typedef struct toro_node {
    toro_wiring_t *w;           /* borrowed */
    toro_store_t *store;        /* owned */
    toro_bus_t *bus;            /* owned */
    toro_relay_t *relay;        /* owned; postgres:// + nats:// only */
    toro_kb_t *kb;              /* owned until the live answerer takes it (then NULL) */
    toro_embedder_t *embedder;  /* owned; attached to kb, freed after it; same */
    toro_answerer_t *answerer;  /* owned; serve and process: [fault wrapper of] live */
    toro_answerer_t *live;      /* borrowed from answerer: the swappable generations */
    pthread_mutex_t reload_mu;  /* one reload at a time (signal thread, gateway) */
    struct stat kb_seen;        /* --kb-watch: the file last loaded or refused (device, inode, size, mtime) */
    toro_gateway_t *gw;         /* owned; serve and api */
    char *kb_version;           /* owned copy (api reports it; its kb is closed) */
    toro_stage_ctx_t ctx;       /* the stages' collaborators (borrowed by gw and workers) */
    char node[256];             /* the gateway's node name */
    int lock_fd;                /* serve on sqlite://: the data directory's toro.lock */
    pthread_t threads[2 * TORO_WIRING_MAX_WORKERS];
    int n_threads;              /* started worker threads */
    toro_worker_t workers[2];   /* process, notify */
    atomic_int stop;            /* 1: every loop of this node ends */
    pthread_mutex_t mu;         /* guards the fields below and gw for the signal thread */
    pthread_cond_t cv;          /* signalled when stop becomes 1 */
    pthread_t sig_thread;       /* sigwait()s SIGINT/SIGTERM/SIGHUP */
    bool sig_started, sig_fired, closing;
    bool ran;                   /* toro_node_run was called: close logs "stopped" */
} toro_node_t;

/* Why: every role opens the same way, in one order: signals (blocked in all
 * threads, taken by one thread), the data directory lock, the knowledge base,
 * store, bus, relay, answerer, gateway. Returns 0, or an exit status (1, 2)
 * after printing why; either way call toro_node_close. */
int toro_node_open(toro_node_t *n, toro_wiring_t *w);

/* Why: starts the role's worker threads (n_process on the process topic,
 * n_notify on notify). Returns 0, or -1 when a thread could not be created
 * (those started keep running until toro_node_close). */
int toro_node_start_workers(toro_node_t *n);

/* Why: serve and api say the same once they serve: the authentication mode
 * and the "listening on URL" line on stdout that scripts wait for. */
void toro_node_announce(const toro_node_t *n);

/* Why: the foreground of every role: runs the gateway loop (serve, api) or
 * waits (workers) until a signal or toro_node_stop. Returns 0, or 1 when the
 * gateway loop failed. */
int toro_node_run(toro_node_t *n);

/* Sets the stop flag and wakes toro_node_run. Thread-safe. */
void toro_node_stop(toro_node_t *n);

/* Why: the ordered teardown of every role (see the top of this file); logs
 * "stopped" when the node had started. Safe after a failed open. */
void toro_node_close(toro_node_t *n);

/* Why: SIGHUP and POST /admin/kb/reload. Re-reads w->kb_path with the
 * retrieval options of the start. serve and process: opens it, builds its
 * answerer and swaps it in (questions in flight keep theirs); api: checks
 * it opens and reports its version (api answers nothing; workers reload on
 * their own SIGHUP). Counted in toro_kb_reloads_total. Returns 0, or a
 * negative code with *why (caller frees) when the snapshot was refused:
 * nothing changed and the old one keeps serving. Thread-safe. */
int toro_node_reload_kb(toro_node_t *n, char **why);

/* Why: a worker's /healthz (it has no gateway): store and bus reachability in
 * buf as the JSON body; returns 200 or 503. */
int toro_node_health(toro_node_t *n, char *buf, size_t cap);

#endif
