/* metrics.c: atomic counters and fixed-bucket histograms (see metrics.h). */
#include "core/metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static const int statuses[] = {200, 202, 204, 400, 401, 403, 404, 405, 408, 411, 413, 414, 415, 429, 431, 500, 503};
#define N_STATUS (sizeof statuses / sizeof statuses[0])
static const char *route_names[TORO_ROUTE_COUNT] = {"POST /questions", "GET /questions", "GET /questions/{id}",
                                                    "GET /healthz", "GET /metrics", "GET /ws", "GET /static", "other"};
static atomic_long requests[TORO_ROUTE_COUNT][N_STATUS + 1];

static const double bounds[] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
#define N_BUCKETS (sizeof bounds / sizeof bounds[0])
static const char *hist_names[TORO_HIST_COUNT] = {"process", "notify", "end_to_end", "http"};
static struct {
    atomic_long buckets[N_BUCKETS + 1];
    atomic_long count;
    atomic_llong sum_us;
} hists[TORO_HIST_COUNT];

static atomic_long ws_current;
static atomic_long counters[TORO_CTR_COUNT];
static const char *counter_names[TORO_CTR_COUNT] = {"toro_process_retries_total", "toro_dead_letters_total",
                                                    "toro_ws_messages_sent_total", "toro_ws_messages_dropped_total"};

void toro_metrics_request(toro_route_t route, int status)
{
    size_t i = 0;
    while (i < N_STATUS && statuses[i] != status)
        i++;
    atomic_fetch_add(&requests[route][i], 1);
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

long toro_metrics_render(char *buf, size_t cap)
{
    size_t off = 0;
    APPEND("# HELP toro_http_requests_total HTTP requests by route and status code.\n"
           "# TYPE toro_http_requests_total counter\n");
    for (int r = 0; r < TORO_ROUTE_COUNT; r++) {
        for (size_t i = 0; i <= N_STATUS; i++) {
            long v = atomic_load(&requests[r][i]);
            if (!v)
                continue;
            if (i < N_STATUS)
                APPEND("toro_http_requests_total{route=\"%s\",status=\"%d\"} %ld\n", route_names[r], statuses[i], v);
            else
                APPEND("toro_http_requests_total{route=\"%s\",status=\"other\"} %ld\n", route_names[r], v);
        }
    }
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
    return (long)off;
}
