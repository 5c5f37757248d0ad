/* commit.c: the group commit (see commit.h). */
#define _GNU_SOURCE /* pthread_setname_np: the gateway is Linux-only (epoll) */
#include "gateway/commit.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/health.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"

void gw_commit_answer(gw_response_t *r, const toro_ingest_item_t *item, int rc)
{
    r->route = GW_ROUTE_QUESTIONS;
    if (rc || !item) {
        toro_log_ratelimited(TORO_LOG_ERROR, "gateway", "ingest", "ingest failed: %s", toro_strerror(rc));
        gw_json_error(r, 503, "the question could not be stored; try again");
        gw_add_header(r, "Retry-After: 1");
        return;
    }
    const char *kv[] = {"user_id", item->q.user_id, "question_id", item->q.question_id, "status", "pending",
                        "conversation_id", item->q.conversation_id};
    char *body = toro_json_plain("{\"success\":true,\"data\":", kv, 4, "}"); /* what gw_http_ok writes */
    if (body) {
        gw_http_json_text(r, 202, body);
        return;
    }
    json_t *data = json_pack("{s:s, s:s, s:s}", "user_id", item->q.user_id, "question_id", item->q.question_id,
                             "status", "pending");
    if (data && item->q.conversation_id)
        json_object_set_new(data, "conversation_id", json_string(item->q.conversation_id));
    gw_http_ok(r, 202, data);
}

/* A commit that failed for the store (not for a question's own conflict)
 * marks the process degraded for /healthz; one that wrote clears it. */
static void note_health(const int *results, size_t n)
{
    bool wrote = false, failed = false;
    for (size_t i = 0; i < n; i++) {
        wrote |= results[i] == 0;
        failed |= results[i] == TORO_EIO || results[i] == TORO_EUNAVAIL;
    }
    if (failed)
        toro_health_fail("gateway");
    else if (wrote)
        toro_health_ok();
}

/* Answers d's socket with the result of its commit. 0, or -1 when it must close. */
static int answer(gw_commit_t *gc, gw_deferred_t *d, int result)
{
    gw_commit_answer(&d->resp, &d->item, result);
    toro_ingest_item_clear(&d->item);
    int rc = gw_http_send(gc->conns, d->cl, &d->resp, d->request_id);
    toro_metrics_observe_ms(TORO_HIST_HTTP, (double)(toro_mono_ms() - d->t0));
    return rc;
}

int gw_commit_defer(gw_commit_t *gc, gw_client_t *cl, gw_response_t *resp, toro_ingest_item_t *item,
                    const char *request_id, int64_t t0)
{
    if (gc->n == GW_BATCH_MAX) { /* a full round: this one commits alone, now */
        gw_deferred_t alone = {.cl = cl, .resp = *resp, .item = *item, .t0 = t0};
        int result = 0;
        toro_stage_ingest_commit(gc->ctx, &alone.item, 1, &result);
        note_health(&result, 1);
        snprintf(alone.request_id, sizeof alone.request_id, "%s", request_id);
        return answer(gc, &alone, result);
    }
    gw_deferred_t *d = &gc->batch[gc->n++];
    *d = (gw_deferred_t){.cl = cl, .resp = *resp, .item = *item, .t0 = t0};
    snprintf(d->request_id, sizeof d->request_id, "%s", request_id);
    cl->conn.waiting = true; /* no reading until its 202 is sent (paused lazily: conn_read.c read_room) */
    return 0;
}

/* Answers the n deferred of arr with their results (NULL: out of memory). */
static void answer_all(gw_commit_t *gc, gw_deferred_t *arr, size_t n, const int *results)
{
    for (size_t i = 0; i < n; i++) {
        gw_deferred_t *d = &arr[i];
        int result = results ? results[i] : TORO_ENOMEM;
        if (!d->cl) { /* the socket closed meanwhile: committed, nobody to answer */
            gw_commit_answer(&d->resp, &d->item, result);
            toro_ingest_item_clear(&d->item);
            free(d->resp.body);
            continue;
        }
        d->cl->conn.waiting = false;
        if (answer(gc, d, result) != 0) {
            gw_conn_close(gc->conns, &d->cl->conn);
            d->cl = NULL; /* not resumed below */
        }
    }
}

/* The sockets answered go on with what they have queued (which may add to
 * the collecting batch, or close sockets: forget clears their entries). */
static void resume_all(gw_commit_t *gc, gw_deferred_t *arr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        gw_client_t *cl = arr[i].cl;
        if (!cl)
            continue;
        arr[i].cl = NULL;
        gw_conn_resume(gc->conns, &cl->conn);
    }
}

/* Commits the first n of the batch in one transaction on this thread and answers them. */
static void commit_round(gw_commit_t *gc, size_t n)
{
    toro_ingest_item_t *items = malloc(n * sizeof *items);
    int *results = malloc(n * sizeof *results);
    if (items && results) {
        for (size_t i = 0; i < n; i++)
            items[i] = gc->batch[i].item; /* shallow: the batch keeps ownership */
        toro_stage_ingest_commit(gc->ctx, items, n, results);
        note_health(results, n);
    }
    answer_all(gc, gc->batch, n, items && results ? results : NULL);
    free(items);
    free(results);
}

/* f landed (its committer is idle again): answers it. */
static void land(gw_commit_t *gc, gw_flight_t *f)
{
    atomic_store(&f->landed, false);
    answer_all(gc, f->batch, f->n, f->results);
    resume_all(gc, f->batch, f->n);
    f->n = 0;
}

/* Waits for the flights in the air, if any, and answers them. */
static void land_wait(gw_commit_t *gc)
{
    for (size_t i = 0; i < GW_FLIGHTS; i++) {
        gw_flight_t *f = &gc->flights[i];
        if (!f->n)
            continue;
        pthread_mutex_lock(&gc->mu);
        while (!atomic_load(&f->landed))
            pthread_cond_wait(&gc->cv, &gc->mu);
        pthread_mutex_unlock(&gc->mu);
        land(gc, f);
    }
}

void gw_commit_flush(gw_commit_t *gc)
{
    land_wait(gc);
    while (gc->n > 0) {
        size_t n = gc->n;
        commit_round(gc, n);
        resume_all(gc, gc->batch, n);
        memmove(gc->batch, gc->batch + n, (gc->n - n) * sizeof *gc->batch);
        gc->n -= n;
    }
}

/* Hands the collected batch to a free committer, if one is. */
static void launch(gw_commit_t *gc)
{
    gw_flight_t *f = NULL;
    for (size_t i = 0; i < GW_FLIGHTS && !f; i++)
        if (gc->flights[i].n == 0)
            f = &gc->flights[i];
    if (!f || gc->n == 0)
        return;
    memcpy(f->batch, gc->batch, gc->n * sizeof *gc->batch);
    f->n = gc->n;
    gc->n = 0;
    for (size_t i = 0; i < f->n; i++)
        f->items[i] = f->batch[i].item; /* shallow: the flight keeps ownership */
    pthread_mutex_lock(&gc->mu);
    f->has_work = true;
    pthread_cond_broadcast(&gc->cv);
    pthread_mutex_unlock(&gc->mu);
}

/* Frees what gw_commit_start made (the threads have ended or never started). */
static void release(gw_commit_t *gc)
{
    pthread_mutex_destroy(&gc->mu);
    pthread_cond_destroy(&gc->cv);
    for (size_t i = 0; i < GW_FLIGHTS; i++) {
        gw_flight_t *f = &gc->flights[i];
        free(f->batch);
        free(f->items);
        free(f->results);
        f->batch = NULL;
        f->items = NULL;
        f->results = NULL;
    }
}

static void *committer_main(void *arg)
{
    gw_flight_t *f = arg;
    gw_commit_t *gc = f->gc;
    pthread_setname_np(pthread_self(), "toro-commit"); /* for top -H, perf */
    pthread_mutex_lock(&gc->mu);
    for (;;) {
        while (!f->has_work && !gc->stopping)
            pthread_cond_wait(&gc->cv, &gc->mu);
        if (!f->has_work)
            break; /* stopping, nothing left */
        size_t n = f->n;
        pthread_mutex_unlock(&gc->mu);
        toro_stage_ingest_commit(gc->ctx, f->items, n, f->results);
        note_health(f->results, n);
        pthread_mutex_lock(&gc->mu);
        f->has_work = false;
        atomic_store(&f->landed, true);
        pthread_cond_broadcast(&gc->cv);
        gc->wake(gc->wake_arg);
    }
    pthread_mutex_unlock(&gc->mu);
    return NULL;
}

/* Ends the committer threads of the first n flights (their batches landed). */
static void join_committers(gw_commit_t *gc, size_t n)
{
    pthread_mutex_lock(&gc->mu);
    gc->stopping = true;
    pthread_cond_broadcast(&gc->cv);
    pthread_mutex_unlock(&gc->mu);
    for (size_t i = 0; i < n; i++)
        pthread_join(gc->flights[i].thread, NULL);
}

int gw_commit_start(gw_commit_t *gc, void (*wake)(void *), void *arg)
{
    gc->wake = wake;
    gc->wake_arg = arg;
    gc->stopping = false;
    pthread_mutex_init(&gc->mu, NULL);
    pthread_cond_init(&gc->cv, NULL);
    size_t started = 0;
    for (size_t i = 0; i < GW_FLIGHTS; i++) {
        gw_flight_t *f = &gc->flights[i];
        *f = (gw_flight_t){.gc = gc,
                           .batch = malloc(GW_BATCH_MAX * sizeof *f->batch),
                           .items = malloc(GW_BATCH_MAX * sizeof *f->items),
                           .results = malloc(GW_BATCH_MAX * sizeof *f->results)};
        atomic_store(&f->landed, false);
    }
    for (size_t i = 0; i < GW_FLIGHTS; i++) {
        gw_flight_t *f = &gc->flights[i];
        if (!f->batch || !f->items || !f->results || pthread_create(&f->thread, NULL, committer_main, f) != 0)
            break;
        started++;
    }
    if (started == GW_FLIGHTS) {
        gc->started = true;
        return 0;
    }
    toro_log_warn("gateway", NULL, "no committer threads: the loop commits questions itself");
    join_committers(gc, started);
    release(gc);
    return -1;
}

void gw_commit_round(gw_commit_t *gc)
{
    if (!gc->started) {
        gw_commit_flush(gc);
        return;
    }
    gw_commit_landed(gc);
    launch(gc);
}

void gw_commit_landed(gw_commit_t *gc)
{
    if (!gc->started)
        return;
    for (size_t i = 0; i < GW_FLIGHTS; i++) {
        gw_flight_t *f = &gc->flights[i];
        if (f->n && atomic_load(&f->landed)) {
            land(gc, f);
            launch(gc);
        }
    }
}

void gw_commit_stop(gw_commit_t *gc)
{
    gw_commit_flush(gc);
    if (!gc->started)
        return;
    join_committers(gc, GW_FLIGHTS);
    gc->started = false;
    release(gc);
}

void gw_commit_forget(gw_commit_t *gc, gw_client_t *cl)
{
    if (!cl->conn.waiting)
        return;
    for (size_t i = 0; i < gc->n; i++)
        if (gc->batch[i].cl == cl)
            gc->batch[i].cl = NULL;
    for (size_t f = 0; f < GW_FLIGHTS; f++) /* the committers never touch cl */
        for (size_t i = 0; i < gc->flights[f].n; i++)
            if (gc->flights[f].batch[i].cl == cl)
                gc->flights[f].batch[i].cl = NULL;
}
