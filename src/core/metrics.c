/* metrics.c: atomic counters and fixed-bucket histograms (see metrics.h). */
#include "core/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static const double bounds[] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
#define N_BUCKETS (sizeof bounds / sizeof bounds[0])
static const char *hist_names[TORO_HIST_COUNT] = {"process", "notify", "end_to_end", "http"};
static struct {
    atomic_long buckets[N_BUCKETS + 1];
    atomic_long count;
    atomic_llong sum_us;
} hists[TORO_HIST_COUNT];

/* Per-answerer figures: a small table claimed by name on first use (under
 * a mutex, rare); the counts themselves are atomics. */
#define N_ANSWERER 8
#define ANSWERER_NAME_MAX 32
static pthread_mutex_t answerer_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int n_answerers;
static struct {
    char name[ANSWERER_NAME_MAX];
    atomic_long calls, errors;
    atomic_long buckets[N_BUCKETS + 1];
    atomic_llong sum_us;
} answerers[N_ANSWERER];
static atomic_long answers_found, answers_refused;
static atomic_long feedback_up, feedback_down;

static atomic_long ws_current;
static atomic_long counters[TORO_CTR_COUNT];
static const char *counter_names[TORO_CTR_COUNT] = {"toro_process_retries_total", "toro_dead_letters_total",
                                                    "toro_ws_messages_sent_total", "toro_ws_messages_dropped_total",
                                                    "toro_store_statements_total"};

void toro_metrics_answer(bool found_relevant_docs)
{
    atomic_fetch_add(found_relevant_docs ? &answers_found : &answers_refused, 1);
}

void toro_metrics_feedback(bool up) { atomic_fetch_add(up ? &feedback_up : &feedback_down, 1); }

/* The slot of an answerer name; the last slot takes "other" once the table is full. */
static int answerer_slot(const char *name)
{
    if (!name || !*name)
        name = "unknown";
    int n = atomic_load(&n_answerers);
    for (int i = 0; i < n; i++)
        if (strcmp(answerers[i].name, name) == 0)
            return i;
    pthread_mutex_lock(&answerer_lock);
    n = atomic_load(&n_answerers);
    int slot = -1;
    for (int i = 0; i < n && slot < 0; i++)
        if (strcmp(answerers[i].name, name) == 0)
            slot = i;
    if (slot < 0 && n < N_ANSWERER) {
        slot = n;
        snprintf(answerers[slot].name, ANSWERER_NAME_MAX, "%s", n == N_ANSWERER - 1 ? "other" : name);
        atomic_store(&n_answerers, n + 1); /* published after the name is written */
    }
    pthread_mutex_unlock(&answerer_lock);
    return slot >= 0 ? slot : N_ANSWERER - 1;
}

void toro_metrics_answerer_call(const char *answerer, bool failed, double ms)
{
    int s = answerer_slot(answerer);
    size_t i = 0;
    while (i < N_BUCKETS && ms > bounds[i])
        i++;
    atomic_fetch_add(&answerers[s].calls, 1);
    if (failed)
        atomic_fetch_add(&answerers[s].errors, 1);
    atomic_fetch_add(&answerers[s].buckets[i], 1);
    atomic_fetch_add(&answerers[s].sum_us, (long long)(ms * 1000.0));
}

void toro_metrics_observe_ms(toro_hist_t h, double ms)
{
    size_t i = 0;
    while (i < N_BUCKETS && ms > bounds[i])
        i++;
    atomic_fetch_add(&hists[h].buckets[i], 1);
    atomic_fetch_add(&hists[h].count, 1);
    atomic_fetch_add(&hists[h].sum_us, (long long)(ms * 1000.0));
}

void toro_metrics_ws_delta(int delta) { atomic_fetch_add(&ws_current, delta); }
long toro_metrics_ws_current(void) { return atomic_load(&ws_current); }
void toro_metrics_inc(toro_counter_t c) { atomic_fetch_add(&counters[c], 1); }

#define APPEND(...)                                                                                                    \
    do {                                                                                                               \
        int n_ = snprintf(buf + off, cap - off, __VA_ARGS__);                                                          \
        if (n_ < 0 || (size_t)n_ >= cap - off)                                                                         \
            return -1;                                                                                                 \
        off += (size_t)n_;                                                                                             \
    } while (0)

/* Per-answerer calls, errors and latency histogram. */
static long render_answerers(char *buf, size_t cap)
{
    size_t off = 0;
    int n = atomic_load(&n_answerers);
    APPEND("# HELP toro_answerer_calls_total Calls to each answerer (provider).\n"
           "# TYPE toro_answerer_calls_total counter\n");
    for (int a = 0; a < n; a++)
        APPEND("toro_answerer_calls_total{answerer=\"%s\"} %ld\n", answerers[a].name, atomic_load(&answerers[a].calls));
    APPEND("# HELP toro_answerer_errors_total Failed calls to each answerer (each failed attempt).\n"
           "# TYPE toro_answerer_errors_total counter\n");
    for (int a = 0; a < n; a++)
        APPEND("toro_answerer_errors_total{answerer=\"%s\"} %ld\n", answerers[a].name,
               atomic_load(&answerers[a].errors));
    APPEND("# HELP toro_answerer_latency_seconds Latency of each answerer call.\n"
           "# TYPE toro_answerer_latency_seconds histogram\n");
    for (int a = 0; a < n; a++) {
        long cum = 0;
        for (size_t i = 0; i < N_BUCKETS; i++) {
            cum += atomic_load(&answerers[a].buckets[i]);
            APPEND("toro_answerer_latency_seconds_bucket{answerer=\"%s\",le=\"%g\"} %ld\n", answerers[a].name,
                   bounds[i] / 1000.0, cum);
        }
        cum += atomic_load(&answerers[a].buckets[N_BUCKETS]);
        APPEND("toro_answerer_latency_seconds_bucket{answerer=\"%s\",le=\"+Inf\"} %ld\n", answerers[a].name, cum);
        APPEND("toro_answerer_latency_seconds_sum{answerer=\"%s\"} %.6f\n", answerers[a].name,
               (double)atomic_load(&answerers[a].sum_us) / 1e6);
        APPEND("toro_answerer_latency_seconds_count{answerer=\"%s\"} %ld\n", answerers[a].name, cum);
    }
    return (long)off;
}

long toro_metrics_render(char *buf, size_t cap)
{
    size_t off = 0;
    APPEND("# HELP toro_stage_latency_seconds Latency of each stage and of the whole pipeline.\n"
           "# TYPE toro_stage_latency_seconds histogram\n");
    for (int h = 0; h < TORO_HIST_COUNT; h++) {
        long cum = 0;
        for (size_t i = 0; i < N_BUCKETS; i++) {
            cum += atomic_load(&hists[h].buckets[i]);
            APPEND("toro_stage_latency_seconds_bucket{stage=\"%s\",le=\"%g\"} %ld\n", hist_names[h], bounds[i] / 1000.0,
                   cum);
        }
        cum += atomic_load(&hists[h].buckets[N_BUCKETS]);
        APPEND("toro_stage_latency_seconds_bucket{stage=\"%s\",le=\"+Inf\"} %ld\n", hist_names[h], cum);
        APPEND("toro_stage_latency_seconds_sum{stage=\"%s\"} %.6f\n", hist_names[h],
               (double)atomic_load(&hists[h].sum_us) / 1e6);
        APPEND("toro_stage_latency_seconds_count{stage=\"%s\"} %ld\n", hist_names[h], atomic_load(&hists[h].count));
    }
    APPEND("# HELP toro_websocket_connections Open WebSocket connections.\n"
           "# TYPE toro_websocket_connections gauge\ntoro_websocket_connections %ld\n",
           atomic_load(&ws_current));
    for (int c = 0; c < TORO_CTR_COUNT; c++)
        APPEND("# TYPE %s counter\n%s %ld\n", counter_names[c], counter_names[c], atomic_load(&counters[c]));
    APPEND("# HELP toro_answers_total Completed answers by whether relevant documents were found "
           "(found_relevant_docs=false is a refusal).\n# TYPE toro_answers_total counter\n"
           "toro_answers_total{found_relevant_docs=\"true\"} %ld\n"
           "toro_answers_total{found_relevant_docs=\"false\"} %ld\n"
           "# HELP toro_refusals_total Answers that found no relevant documents.\n# TYPE toro_refusals_total counter\n"
           "toro_refusals_total %ld\n",
           atomic_load(&answers_found), atomic_load(&answers_refused), atomic_load(&answers_refused));
    APPEND("# HELP toro_feedback_total Ratings of answers by the askers (a replaced rating counts again).\n"
           "# TYPE toro_feedback_total counter\ntoro_feedback_total{rating=\"up\"} %ld\n"
           "toro_feedback_total{rating=\"down\"} %ld\n",
           atomic_load(&feedback_up), atomic_load(&feedback_down));
    long rc = render_answerers(buf + off, cap - off);
    if (rc < 0)
        return -1;
    off += (size_t)rc;
    return (long)off;
}
