/* metrics.h: process-wide counters and histograms rendered as Prometheus
 * text by GET /metrics. Lock-free (atomics); values that live elsewhere
 * (questions by status, queue depth, requests by route) are added by the
 * caller at scrape time. */
#ifndef TORO_CORE_METRICS_H
#define TORO_CORE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TORO_HIST_PROCESS,    /* process stage: fetch to ack */
    TORO_HIST_NOTIFY,     /* notify stage: fetch to ack */
    TORO_HIST_END_TO_END, /* question accepted to completed update pushed */
    TORO_HIST_HTTP,       /* request parsed to response queued */
    TORO_HIST_COUNT
} toro_hist_t;

/* Why: answers that found nothing relevant (found_relevant_docs=false) are
 * a product signal (knowledge-base gaps), counted apart from completions. */
void toro_metrics_answer(bool found_relevant_docs);
/* Why: each provider behaves differently: calls, errors and latency per
 * answerer name (extractive, openai, bedrock...). Names beyond a small fixed
 * table are counted as "other". */
/* Why: ratings of answers (POST /questions/{id}/feedback) are the product's
 * quality signal: toro_feedback_total{rating="up|down"}, each accepted
 * rating counted (a replaced one too). */
void toro_metrics_feedback(bool up);
void toro_metrics_answerer_call(const char *answerer, bool failed, double ms);
void toro_metrics_observe_ms(toro_hist_t h, double ms);
void toro_metrics_ws_delta(int delta);
long toro_metrics_ws_current(void);
/* Why: named counters for events worth alerting on (retries, dead letters...). */
typedef enum {
    TORO_CTR_RETRIES,
    TORO_CTR_DEAD_LETTERS,
    TORO_CTR_WS_MESSAGES_SENT,
    TORO_CTR_WS_DROPPED,
    TORO_CTR_STORE_STATEMENTS, /* statements sent to PostgreSQL, each one round trip (store/postgres.c) */
    TORO_CTR_COUNT
} toro_counter_t;
void toro_metrics_inc(toro_counter_t c);

/* Appends the Prometheus text of every metric here to buf (cap bytes);
 * returns bytes written or -1 when cap is too small. */
long toro_metrics_render(char *buf, size_t cap);

#endif
