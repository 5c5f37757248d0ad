/* nats.c: the distributed bus on NATS JetStream (the SNS boxes of the
 * reference when toro runs as many processes). Each topic is a work-queue
 * stream (<prefix>_process on subject <prefix>.process, <prefix>_notify)
 * with one durable pull consumer shared by every worker of the stage, so each
 * event is handled by one worker; acks are explicit; nack is NakWithDelay
 * (retry with backoff); a worker that dies without acking gets its message
 * redelivered after ack_wait; dead() copies the event to <prefix>.dead.<topic>
 * (kept in stream <prefix>_dead) and acks the original. Delivery counting and
 * the max-deliveries decision stay in the process stage (the server's
 * MaxDeliver is unlimited), so the question is marked error when the event is
 * dead-lettered.
 *
 * It also carries gateway routing over core NATS: `toro api` answers requests
 * on <prefix>.gw.<node> by posting to its local sockets, and the notify
 * worker's post function sends such a request (toro_bus_nats_post, post.h).
 *
 * Round trips: a fetch asks the server for a batch (up to fetch_batch, no
 * more than the backlog the server reported with the last message, and no
 * more than the stage can handle within a quarter of ack_wait at the
 * handling time measured so far) and hands the rest out from a per-topic
 * buffer to the next fetches of the process; a buffered message that waited
 * past half of ack_wait is marked in progress before it is handed out, so it
 * is not redelivered to another worker meanwhile; close() naks what is still
 * buffered so other workers get it at once. Acks, naks and in-progress marks
 * are fire-and-forget publishes the library coalesces (no round trip each);
 * an ack lost with a dying connection only means one more delivery, which
 * the guarded stages absorb.
 *
 * Stages never publish: the outbox relay (relay.c) calls the publish op
 * with the outbox event's msg_id as Nats-Msg-Id, so the stream's duplicate
 * window drops an event published twice; its publish_batch sends a whole
 * batch with JetStream's async publish (on a context of its own) and waits
 * once for all the acks. kick() calls the hook the relay of the process
 * registered (on_kick), so the relay publishes what the process just
 * committed. The connection
 * reconnects forever; streams and consumers are (re)declared lazily, so a
 * process starts and keeps running while NATS is down (ops return TORO_EIO). */
#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "bus/post.h"
#include "core/error.h"
#include "core/log.h"
#include "core/question.h"
#include "core/util.h"

#define N_TOPICS 2
#define API_WAIT_MS 2000
#define POST_TIMEOUT_MS 1000
#define FETCH_MAX 64      /* upper bound of fetch_batch (the buffer's size) */
#define FETCH_DEFAULT 16  /* default fetch_batch */
#define PUB_BATCH_MAX 1024 /* messages of one publish_batch call */

typedef struct sub_slot {
    natsSubscription *sub;
    struct sub_slot *next;
} sub_slot_t;

typedef struct inflight {
    int64_t id;
    natsMsg *msg; /* owned until ack/nack/dead */
    int ti;              /* topic index */
    int64_t handed_at;   /* toro_mono_ms() when fetch returned it */
    struct inflight *next;
} inflight_t;

/* Messages fetched in a batch and not handed out yet (a ring per topic). */
typedef struct fetch_buf {
    natsMsg *msgs[FETCH_MAX]; /* owned */
    int64_t at[FETCH_MAX];    /* toro_mono_ms() when each was fetched */
    int head, count;
    double handle_ms;         /* moving average of fetch-to-ack time; 0 until measured */
    uint64_t backlog;         /* messages the server still had after the last one handed out */
} fetch_buf_t;

/* The publish_batch in progress (guarded by pub_lock). */
typedef struct pub_batch {
    natsMsg **sent;     /* sent[i]: msgs[i] as given to the library, NULL once answered */
    unsigned char *ok;  /* the caller's */
    size_t n;
} pub_batch_t;

typedef struct nats_bus {
    toro_bus_t super;
    natsConnection *nc;
    jsCtx *js;
    char prefix[64];           /* subject prefix and stream name prefix */
    int64_t ack_wait_ms;       /* redelivery delay of an unacked message */
    int64_t dup_window_ms;     /* JetStream duplicate window (outbox re-publish) */
    int fetch_batch;           /* most messages one fetch asks the server for */
    jsCtx *pub_js;             /* async publishing (publish_batch): its ack handler is on_pub_ack */
    pthread_mutex_t pub_serial; /* one publish_batch at a time (pub_js's pending acks are all its own) */
    pthread_mutex_t pub_lock;  /* guards pub */
    pub_batch_t pub;
    pthread_mutex_t lock;      /* guards everything below */
    fetch_buf_t bufs[N_TOPICS]; /* fetched, not handed out */
    int ready;                 /* streams and consumers declared on the server */
    sub_slot_t *free_subs[N_TOPICS]; /* idle pull subscriptions, one per fetching thread */
    sub_slot_t *retired_subs;  /* failed ones: kept until close, their messages may still be acked */
    inflight_t *inflight;      /* fetched, not yet acked */
    int64_t next_id;
    atomic_int interrupted;
    pthread_cond_t closed_cond; /* signalled by on_closed */
    int closed;                /* the library delivered its last callback (guarded by lock) */
    int closing;               /* n_close began: a disconnect now is ours, not a fault (guarded by lock) */
    natsSubscription *gw_sub;  /* toro api: requests for this node */
    toro_post_fn gw_fn;
    void *gw_ctx;
    toro_kick_hook_t kick;     /* on_kick's: the relay of this process */
    void (*reconnect_fn)(void *ctx); /* called after every reconnect (guarded by lock) */
    void *reconnect_ctx;
} nats_bus_t;

static const char *const topics[N_TOPICS] = {TORO_TOPIC_PROCESS, TORO_TOPIC_NOTIFY};

static int topic_index(const char *topic)
{
    for (int i = 0; i < N_TOPICS; i++)
        if (strcmp(topic, topics[i]) == 0)
            return i;
    return -1;
}

static bool connected(nats_bus_t *b) { return natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED; }

static void log_status(const char *what, natsStatus s, jsErrCode jerr)
{
    toro_log_error("bus", NULL, "nats: %s: %s (js error %d)", what, natsStatus_GetText(s), (int)jerr);
}

/* Declares the streams and durable consumers (idempotent). Caller holds lock. */
static int declare(nats_bus_t *b)
{
    char name[96], subj[96], dead_subj[96];
    natsStatus s = NATS_OK;
    jsErrCode jerr = 0;
    for (int i = 0; i <= N_TOPICS; i++) {
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        const char *subjects[1];
        if (i < N_TOPICS) {
            snprintf(name, sizeof name, "%s_%s", b->prefix, topics[i]);
            snprintf(subj, sizeof subj, "%s.%s", b->prefix, topics[i]);
            subjects[0] = subj;
            sc.Retention = js_WorkQueuePolicy;
        } else {
            snprintf(name, sizeof name, "%s_dead", b->prefix);
            snprintf(dead_subj, sizeof dead_subj, "%s.dead.>", b->prefix);
            subjects[0] = dead_subj;
            sc.Retention = js_LimitsPolicy;
            sc.MaxAge = (int64_t)7 * 24 * 3600 * 1000000000LL;
        }
        sc.Name = name;
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Duplicates = b->dup_window_ms * 1000000LL;
        jsStreamInfo *si = NULL;
        s = js_AddStream(&si, b->js, &sc, NULL, &jerr);
        if (s != NATS_OK) {
            jsStreamInfo_Destroy(si);
            si = NULL;
            s = js_UpdateStream(&si, b->js, &sc, NULL, &jerr);
        }
        jsStreamInfo_Destroy(si);
        if (s != NATS_OK) {
            log_status("declaring stream", s, jerr);
            return TORO_EIO;
        }
        if (i == N_TOPICS)
            break;
        jsConsumerConfig cc;
        jsConsumerConfig_Init(&cc);
        cc.Durable = topics[i];
        cc.AckPolicy = js_AckExplicit;
        cc.AckWait = b->ack_wait_ms * 1000000LL;
        cc.MaxDeliver = -1;
        cc.MaxAckPending = 10000;
        jsConsumerInfo *ci = NULL;
        s = js_AddConsumer(&ci, b->js, name, &cc, NULL, &jerr);
        if (s != NATS_OK) {
            jsConsumerInfo_Destroy(ci);
            ci = NULL;
            s = js_UpdateConsumer(&ci, b->js, name, &cc, NULL, &jerr);
        }
        jsConsumerInfo_Destroy(ci);
        if (s != NATS_OK) {
            log_status("declaring consumer", s, jerr);
            return TORO_EIO;
        }
    }
    return 0;
}

static int ensure(nats_bus_t *b)
{
    int rc = 0;
    if (!connected(b))
        return TORO_EIO;
    pthread_mutex_lock(&b->lock);
    if (!b->ready) {
        rc = declare(b);
        b->ready = rc == 0;
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

static natsSubscription *take_sub(nats_bus_t *b, int ti)
{
    natsSubscription *sub = NULL;
    pthread_mutex_lock(&b->lock);
    sub_slot_t *slot = b->free_subs[ti];
    if (slot) {
        b->free_subs[ti] = slot->next;
        sub = slot->sub;
        free(slot);
    }
    pthread_mutex_unlock(&b->lock);
    if (sub)
        return sub;
    char stream[96], subj[96];
    snprintf(stream, sizeof stream, "%s_%s", b->prefix, topics[ti]);
    snprintf(subj, sizeof subj, "%s.%s", b->prefix, topics[ti]);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Consumer = topics[ti];
    jsErrCode jerr = 0;
    natsStatus s = js_PullSubscribe(&sub, b->js, subj, topics[ti], NULL, &so, &jerr);
    if (s != NATS_OK) {
        log_status("pull subscribe", s, jerr);
        return NULL;
    }
    return sub;
}

static void give_sub(nats_bus_t *b, int ti, natsSubscription *sub)
{
    sub_slot_t *slot = calloc(1, sizeof *slot);
    if (!slot)
        return; /* out of memory: leaked, not destroyed under messages fetched through it */
    slot->sub = sub;
    pthread_mutex_lock(&b->lock);
    slot->next = b->free_subs[ti];
    b->free_subs[ti] = slot;
    pthread_mutex_unlock(&b->lock);
}

/* Takes a failed subscription out of use. It is not destroyed before close:
 * a message fetched through it (in hand, or buffered) acks through it, and
 * the library does not keep it alive for them. */
static void retire_sub(nats_bus_t *b, natsSubscription *sub)
{
    sub_slot_t *slot = calloc(1, sizeof *slot);
    if (!slot)
        return; /* out of memory: leaked rather than freed under a live message */
    slot->sub = sub;
    pthread_mutex_lock(&b->lock);
    slot->next = b->retired_subs;
    b->retired_subs = slot;
    pthread_mutex_unlock(&b->lock);
}

/* How many messages the next fetch of topic ti asks for: fetch_batch, or
 * fewer when the stage is slow, so a batch is handled well within ack_wait
 * (the buffer's messages wait their turn on the server's clock), and no
 * more than the backlog the server reported with the last message: a
 * request for more than is there costs the server an extra status message,
 * so an idle stage asks for one at a time, as it always did. */
static int batch_size(nats_bus_t *b, int ti)
{
    pthread_mutex_lock(&b->lock);
    double per = b->bufs[ti].handle_ms;
    uint64_t backlog = b->bufs[ti].backlog;
    pthread_mutex_unlock(&b->lock);
    if (per <= 0 || backlog == 0)
        return 1; /* nothing measured yet, or nothing waiting */
    double fit = (double)b->ack_wait_ms / 4.0 / per;
    int n = fit < 1 ? 1 : (fit > b->fetch_batch ? b->fetch_batch : (int)fit);
    return backlog + 1 < (uint64_t)n ? (int)backlog + 1 : n;
}

/* Takes the oldest buffered message of ti, or NULL (caller owns it). */
static natsMsg *buf_pop(nats_bus_t *b, int ti)
{
    natsMsg *m = NULL;
    int64_t at = 0;
    pthread_mutex_lock(&b->lock);
    fetch_buf_t *fb = &b->bufs[ti];
    if (fb->count > 0) {
        m = fb->msgs[fb->head];
        at = fb->at[fb->head];
        fb->msgs[fb->head] = NULL;
        fb->head = (fb->head + 1) % FETCH_MAX;
        fb->count--;
    }
    pthread_mutex_unlock(&b->lock);
    if (m && toro_mono_ms() - at > b->ack_wait_ms / 2)
        natsMsg_InProgress(m, NULL); /* restart its ack_wait: it is being handled now */
    return m;
}

/* Buffers msgs[from..n) of a fetch of ti (taking them from the list). */
static void buf_push(nats_bus_t *b, int ti, natsMsgList *list, int from)
{
    int64_t now = toro_mono_ms();
    pthread_mutex_lock(&b->lock);
    fetch_buf_t *fb = &b->bufs[ti];
    for (int i = from; i < list->Count; i++) {
        if (fb->count == FETCH_MAX)
            break; /* cannot happen (batch <= FETCH_MAX per empty buffer); left unacked: redelivered */
        int slot = (fb->head + fb->count) % FETCH_MAX;
        fb->msgs[slot] = list->Msgs[i];
        fb->at[slot] = now;
        fb->count++;
        list->Msgs[i] = NULL;
    }
    pthread_mutex_unlock(&b->lock);
}

static void mark_unready(nats_bus_t *b)
{
    pthread_mutex_lock(&b->lock);
    b->ready = 0; /* the consumer may have vanished: declare again */
    pthread_mutex_unlock(&b->lock);
}

/* One pull request for a batch of ti: 0 with *out (caller owns) and the
 * rest buffered, TORO_EEMPTY on timeout, TORO_EIO. */
static int fetch_server(nats_bus_t *b, int ti, int timeout_ms, natsMsg **out)
{
    natsSubscription *sub = take_sub(b, ti);
    if (!sub) {
        mark_unready(b);
        return TORO_EIO;
    }
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    natsStatus s = natsSubscription_Fetch(&list, sub, batch_size(b, ti), timeout_ms > 0 ? timeout_ms : 1, &jerr);
    if (s == NATS_TIMEOUT || (s == NATS_OK && list.Count == 0)) {
        natsMsgList_Destroy(&list);
        give_sub(b, ti, sub);
        return TORO_EEMPTY;
    }
    if (s != NATS_OK) {
        natsMsgList_Destroy(&list);
        retire_sub(b, sub);
        if (connected(b))
            log_status("fetch", s, jerr);
        mark_unready(b);
        return TORO_EIO;
    }
    give_sub(b, ti, sub);
    *out = list.Msgs[0];
    list.Msgs[0] = NULL;
    buf_push(b, ti, &list, 1);
    natsMsgList_Destroy(&list);
    return 0;
}

static int n_fetch(toro_bus_t *bus, const char *topic, int timeout_ms, toro_bus_msg_t *out)
{
    nats_bus_t *b = (nats_bus_t *)bus;
    int ti = topic_index(topic);
    memset(out, 0, sizeof *out);
    if (ti < 0)
        return TORO_EINVAL;
    if (atomic_load(&b->interrupted))
        return TORO_EEMPTY;
    natsMsg *m = buf_pop(b, ti);
    if (!m) {
        int rc = ensure(b);
        if (rc) {
            toro_sleep_ms(timeout_ms < 500 ? timeout_ms : 500); /* do not spin while NATS is away */
            return rc;
        }
        rc = fetch_server(b, ti, timeout_ms, &m);
        if (rc)
            return rc;
    }
    jsMsgMetaData *meta = NULL;
    inflight_t *f = calloc(1, sizeof *f);
    out->payload = strndup(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
    if (!f || !out->payload) {
        free(f);
        free(out->payload);
        out->payload = NULL;
        natsMsg_Destroy(m); /* not acked: redelivered after ack_wait */
        return TORO_ENOMEM;
    }
    out->deliveries = 1;
    out->enqueued_at = toro_now_ms();
    uint64_t backlog = 0;
    if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
        out->deliveries = (int)meta->NumDelivered;
        out->enqueued_at = meta->Timestamp / 1000000LL;
        backlog = meta->NumPending;
        jsMsgMetaData_Destroy(meta);
    }
    f->msg = m;
    f->ti = ti;
    f->handed_at = toro_mono_ms();
    pthread_mutex_lock(&b->lock);
    b->bufs[ti].backlog = backlog;
    f->id = ++b->next_id;
    f->next = b->inflight;
    b->inflight = f;
    pthread_mutex_unlock(&b->lock);
    out->id = f->id;
    return 0;
}

/* Removes and returns the in-flight natsMsg of id (caller destroys), and
 * counts its handling time into the topic's average. */
static natsMsg *take_inflight(nats_bus_t *b, int64_t id)
{
    natsMsg *m = NULL;
    int64_t now = toro_mono_ms();
    pthread_mutex_lock(&b->lock);
    for (inflight_t **pp = &b->inflight; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            inflight_t *f = *pp;
            *pp = f->next;
            m = f->msg;
            double took = (double)(now - f->handed_at) + 0.5; /* ms resolution: never 0 */
            fetch_buf_t *fb = &b->bufs[f->ti];
            fb->handle_ms = fb->handle_ms > 0 ? 0.8 * fb->handle_ms + 0.2 * took : took;
            free(f);
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
    return m;
}

static int n_ack(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *msg)
{
    natsMsg *m = take_inflight((nats_bus_t *)bus, msg->id);
    if (!m)
        return TORO_ENOTFOUND;
    natsStatus s = natsMsg_Ack(m, NULL);
    natsMsg_Destroy(m);
    return s == NATS_OK ? 0 : TORO_EIO;
}

static int n_nack(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *msg, int delay_ms)
{
    natsMsg *m = take_inflight((nats_bus_t *)bus, msg->id);
    if (!m)
        return TORO_ENOTFOUND;
    natsStatus s = delay_ms > 0 ? natsMsg_NakWithDelay(m, delay_ms, NULL) : natsMsg_Nak(m, NULL);
    natsMsg_Destroy(m);
    return s == NATS_OK ? 0 : TORO_EIO;
}

static int n_dead(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *msg, const char *reason)
{
    nats_bus_t *b = (nats_bus_t *)bus;
    natsMsg *m = take_inflight(b, msg->id);
    natsMsg *copy = NULL;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    char subj[128], deliveries[24];
    if (!m)
        return TORO_ENOTFOUND;
    snprintf(subj, sizeof subj, "%s.dead.%s", b->prefix, topic);
    snprintf(deliveries, sizeof deliveries, "%d", msg->deliveries);
    natsStatus s = natsMsg_Create(&copy, subj, NULL, natsMsg_GetData(m), natsMsg_GetDataLength(m));
    if (s == NATS_OK)
        s = natsMsgHeader_Set(copy, "Toro-Reason", reason ? reason : "");
    if (s == NATS_OK)
        s = natsMsgHeader_Set(copy, "Toro-Deliveries", deliveries);
    if (s == NATS_OK)
        s = js_PublishMsg(&pa, b->js, copy, NULL, &jerr);
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(copy);
    if (s == NATS_OK) {
        s = natsMsg_Ack(m, NULL); /* work queue: the original is removed */
    } else {
        log_status("dead-letter publish", s, jerr);
        natsMsg_Nak(m, NULL); /* keep it: the next delivery dead-letters it again */
    }
    natsMsg_Destroy(m);
    return s == NATS_OK ? 0 : TORO_EIO;
}

static void n_kick(toro_bus_t *bus, const char *topic)
{
    /* Consumers long-poll the server: nothing to wake there. The relay of
     * this process (on_kick) publishes the event just committed. */
    (void)topic;
    toro_kick_hook_call(&((nats_bus_t *)bus)->kick);
}

static void n_on_kick(toro_bus_t *bus, void (*fn)(void *ctx), void *ctx)
{
    toro_kick_hook_set(&((nats_bus_t *)bus)->kick, fn, ctx);
}

static int n_depth(toro_bus_t *bus, const char *topic, long *out)
{
    nats_bus_t *b = (nats_bus_t *)bus;
    int ti = topic_index(topic);
    char stream[96];
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    if (ti < 0)
        return TORO_EINVAL;
    int rc = ensure(b);
    if (rc)
        return rc;
    snprintf(stream, sizeof stream, "%s_%s", b->prefix, topics[ti]);
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = API_WAIT_MS;
    natsStatus s = js_GetConsumerInfo(&ci, b->js, stream, topics[ti], &o, &jerr);
    if (s != NATS_OK) {
        pthread_mutex_lock(&b->lock);
        b->ready = 0;
        pthread_mutex_unlock(&b->lock);
        return TORO_EIO;
    }
    *out = (long)ci->NumPending + (long)ci->NumAckPending;
    jsConsumerInfo_Destroy(ci);
    return 0;
}

static void n_interrupt(toro_bus_t *bus) { atomic_store(&((nats_bus_t *)bus)->interrupted, 1); }

/* Destroys the subscriptions of a slot list (their messages are gone). */
static void destroy_subs(sub_slot_t *slot)
{
    while (slot) {
        sub_slot_t *next = slot->next;
        natsSubscription_Destroy(slot->sub);
        free(slot);
        slot = next;
    }
}

static void n_close(toro_bus_t *bus)
{
    nats_bus_t *b = (nats_bus_t *)bus;
    if (b->gw_sub) {
        natsSubscription_Unsubscribe(b->gw_sub);
        natsSubscription_Destroy(b->gw_sub);
    }
    /* messages first: acking one needs its subscription alive */
    for (int i = 0; i < N_TOPICS; i++) { /* fetched, never handed out: to other workers at once */
        fetch_buf_t *fb = &b->bufs[i];
        for (; fb->count > 0; fb->count--, fb->head = (fb->head + 1) % FETCH_MAX) {
            natsMsg_Nak(fb->msgs[fb->head], NULL);
            natsMsg_Destroy(fb->msgs[fb->head]);
        }
    }
    inflight_t *f = b->inflight;
    while (f) {
        inflight_t *next = f->next;
        natsMsg_Destroy(f->msg); /* unacked: the server redelivers it */
        free(f);
        f = next;
    }
    for (int i = 0; i < N_TOPICS; i++)
        destroy_subs(b->free_subs[i]);
    destroy_subs(b->retired_subs);
    if (b->nc) {
        natsConnection_FlushTimeout(b->nc, 1000);
        pthread_mutex_lock(&b->lock);
        b->closing = 1;
        pthread_mutex_unlock(&b->lock);
        natsConnection_Close(b->nc);
        /* callbacks (disconnected, closed) run on a library thread and get b:
         * wait for the closed one, the last, before freeing b */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        pthread_mutex_lock(&b->lock);
        while (!b->closed)
            if (pthread_cond_timedwait(&b->closed_cond, &b->lock, &ts) != 0)
                break;
        pthread_mutex_unlock(&b->lock);
    }
    jsCtx_Destroy(b->pub_js);
    jsCtx_Destroy(b->js);
    natsConnection_Destroy(b->nc);
    pthread_mutex_destroy(&b->pub_serial);
    pthread_mutex_destroy(&b->pub_lock);
    pthread_cond_destroy(&b->closed_cond);
    pthread_mutex_destroy(&b->lock);
    toro_kick_hook_destroy(&b->kick);
    free(b);
}

static int n_publish(toro_bus_t *bus, const char *topic, const char *payload, const char *msg_id);
static int n_publish_batch(toro_bus_t *bus, const toro_bus_pub_t *msgs, size_t n, unsigned char *ok);
static const toro_bus_ops_t nats_ops = {
    .name = "nats",
    .fetch = n_fetch,
    .ack = n_ack,
    .nack = n_nack,
    .dead = n_dead,
    .kick = n_kick,
    .depth = n_depth,
    .interrupt = n_interrupt,
    .close = n_close,
    .publish = n_publish,
    .publish_batch = n_publish_batch,
    .on_kick = n_on_kick,
};

static void on_connected(natsConnection *nc, void *closure)
{
    (void)nc;
    (void)closure;
    toro_log_info("bus", NULL, "nats: connected");
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    nats_bus_t *b = closure;
    pthread_mutex_lock(&b->lock);
    int closing = b->closing;
    b->ready = 0; /* the server may have restarted empty: declare again */
    pthread_mutex_unlock(&b->lock);
    if (closing) /* a clean shutdown, not a lost server */
        toro_log_debug("bus", NULL, "nats: disconnected (closing)");
    else
        toro_log_warn("bus", NULL, "nats: disconnected; reconnecting");
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    nats_bus_t *b = closure;
    pthread_mutex_lock(&b->lock);
    b->closed = 1;
    pthread_cond_broadcast(&b->closed_cond);
    pthread_mutex_unlock(&b->lock);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    nats_bus_t *b = closure;
    toro_log_info("bus", NULL, "nats: reconnected");
    pthread_mutex_lock(&b->lock);
    void (*fn)(void *) = b->reconnect_fn;
    void *ctx = b->reconnect_ctx;
    pthread_mutex_unlock(&b->lock);
    if (fn)
        fn(ctx);
}

void toro_bus_nats_on_reconnect(toro_bus_t *bus, void (*fn)(void *ctx), void *ctx)
{
    nats_bus_t *b = (nats_bus_t *)bus;
    pthread_mutex_lock(&b->lock);
    b->reconnect_fn = fn;
    b->reconnect_ctx = ctx;
    pthread_mutex_unlock(&b->lock);
}

/* The library's answer to one async publish of publish_batch (on its
 * thread): a stored message (or a duplicate of one) is ok; an error, or an
 * answer for a batch already given up on, leaves ok 0. Destroys msg. */
static void on_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    nats_bus_t *b = closure;
    pthread_mutex_lock(&b->pub_lock);
    for (size_t i = 0; i < b->pub.n; i++) {
        if (b->pub.sent[i] == msg) {
            b->pub.sent[i] = NULL;
            b->pub.ok[i] = pa != NULL && pae == NULL;
            break;
        }
    }
    pthread_mutex_unlock(&b->pub_lock);
    if (pae)
        toro_log_ratelimited(TORO_LOG_WARN, "bus", "nats-async-publish", "nats: async publish failed: %s (%s)",
                             natsStatus_GetText(pae->Err), pae->ErrText ? pae->ErrText : "no detail");
    natsMsg_Destroy(msg);
}

/* Parses "nats://host:port[?prefix=P&ack_wait_ms=N&dup_window_ms=N&fetch_batch=N]". */
static int parse_url(nats_bus_t *b, const char *url, char *server, size_t cap, char **err)
{
    const char *q = strchr(url, '?');
    size_t n = q ? (size_t)(q - url) : strlen(url);
    if (n >= cap || strncmp(url, "nats://", 7) != 0)
        goto bad;
    memcpy(server, url, n);
    server[n] = '\0';
    snprintf(b->prefix, sizeof b->prefix, "toro");
    b->ack_wait_ms = 30000;
    b->dup_window_ms = 120000;
    b->fetch_batch = FETCH_DEFAULT;
    while (q && *q) {
        const char *key = q + 1, *amp = strchr(key, '&'), *eq = strchr(key, '=');
        size_t klen = (size_t)((amp ? amp : key + strlen(key)) - key);
        if (!eq || (amp && eq > amp))
            goto bad;
        char val[64];
        size_t vlen = (size_t)((amp ? amp : key + strlen(key)) - (eq + 1));
        if (vlen == 0 || vlen >= sizeof val)
            goto bad;
        memcpy(val, eq + 1, vlen);
        val[vlen] = '\0';
        long v;
        if ((size_t)(eq - key) == 6 && strncmp(key, "prefix", 6) == 0) {
            for (const char *p = val; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
                      *p == '-'))
                    goto bad;
            snprintf(b->prefix, sizeof b->prefix, "%s", val);
        } else if ((size_t)(eq - key) == 11 && strncmp(key, "ack_wait_ms", 11) == 0 &&
                   toro_parse_long(val, 100, 3600000, &v) == 0) {
            b->ack_wait_ms = v;
        } else if ((size_t)(eq - key) == 13 && strncmp(key, "dup_window_ms", 13) == 0 &&
                   toro_parse_long(val, 1000, 86400000, &v) == 0) {
            b->dup_window_ms = v;
        } else if ((size_t)(eq - key) == 11 && strncmp(key, "fetch_batch", 11) == 0 &&
                   toro_parse_long(val, 1, FETCH_MAX, &v) == 0) {
            b->fetch_batch = (int)v;
        } else {
            goto bad;
        }
        (void)klen;
        q = amp;
    }
    return 0;
bad:
    if (err)
        *err = strdup("bad --bus URL: expected nats://HOST:PORT[?prefix=NAME&ack_wait_ms=N&dup_window_ms=N&fetch_batch=1..64]");
    return TORO_EINVAL;
}

int toro_bus_nats_open(const char *url, toro_bus_t **out, char **err)
{
    nats_bus_t *b = calloc(1, sizeof *b);
    natsOptions *opts = NULL;
    char server[256];
    int rc = TORO_ENOMEM;
    if (!b)
        return rc;
    pthread_mutex_init(&b->lock, NULL);
    toro_kick_hook_init(&b->kick);
    pthread_mutex_init(&b->pub_serial, NULL);
    pthread_mutex_init(&b->pub_lock, NULL);
    pthread_cond_init(&b->closed_cond, NULL);
    b->super.ops = &nats_ops;
    rc = parse_url(b, url, server, sizeof server, err);
    if (rc)
        goto fail;
    rc = TORO_EIO;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(opts, server);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, "toro");
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, 250);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(opts, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(opts, 2);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, on_disconnected, b);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(opts, on_reconnected, b);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, on_closed, b);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(opts, true, on_connected, b);
    if (s == NATS_OK) {
        s = natsConnection_Connect(&b->nc, opts);
        if (s == NATS_NOT_YET_CONNECTED) {
            toro_log_warn("bus", NULL, "nats: %s not reachable yet; retrying in the background", server);
            s = NATS_OK;
        }
    }
    if (s == NATS_OK) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = API_WAIT_MS;
        s = natsConnection_JetStream(&b->js, b->nc, &jo);
        jo.PublishAsync.MaxPending = PUB_BATCH_MAX;
        jo.PublishAsync.AckHandler = on_pub_ack;
        jo.PublishAsync.AckHandlerClosure = b;
        if (s == NATS_OK)
            s = natsConnection_JetStream(&b->pub_js, b->nc, &jo);
    }
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        if (err) {
            char buf[384];
            snprintf(buf, sizeof buf, "nats %s: %s", server, natsStatus_GetText(s));
            *err = strdup(buf);
        }
        goto fail;
    }
    ensure(b); /* best effort now; retried by every op */
    *out = &b->super;
    return 0;
fail:
    n_close(&b->super);
    return rc;
}

static int n_publish(toro_bus_t *bus, const char *topic, const char *payload, const char *msg_id)
{
    nats_bus_t *b = (nats_bus_t *)bus;
    char subj[96];
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    if (topic_index(topic) < 0)
        return TORO_EINVAL;
    int rc = ensure(b);
    if (rc)
        return rc;
    snprintf(subj, sizeof subj, "%s.%s", b->prefix, topic);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    po.MaxWait = API_WAIT_MS;
    natsStatus s = js_Publish(&pa, b->js, subj, payload, (int)strlen(payload), &po, &jerr);
    jsPubAck_Destroy(pa);
    if (s != NATS_OK) {
        if (connected(b))
            log_status("publish", s, jerr);
        return TORO_EIO;
    }
    return 0;
}

/* Sends msgs[i] asynchronously; the library owns it from then on (its ack
 * comes to on_pub_ack). 0, or the library's status when it was not sent. */
static natsStatus send_async(nats_bus_t *b, const toro_bus_pub_t *msg, natsMsg **slot)
{
    char subj[96];
    natsMsg *m = NULL;
    snprintf(subj, sizeof subj, "%s.%s", b->prefix, msg->topic);
    natsStatus s = natsMsg_Create(&m, subj, NULL, msg->payload, (int)strlen(msg->payload));
    if (s != NATS_OK)
        return s;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg->msg_id;
    pthread_mutex_lock(&b->pub_lock);
    *slot = m; /* before the send: the ack may come before it returns */
    pthread_mutex_unlock(&b->pub_lock);
    natsMsg *give = m;
    s = js_PublishMsgAsync(b->pub_js, &give, &po);
    if (s != NATS_OK) {
        pthread_mutex_lock(&b->pub_lock);
        *slot = NULL;
        pthread_mutex_unlock(&b->pub_lock);
        natsMsg_Destroy(give); /* NULL (a no-op) when the library took it */
    }
    return s;
}

/* Sends every message, then waits once (API_WAIT_MS) for all the acks;
 * messages not answered by then are taken back from the library and count
 * as failed (the caller re-publishes them with the same msg_id, which the
 * duplicate window drops if they were stored after all). */
static int n_publish_batch(toro_bus_t *bus, const toro_bus_pub_t *msgs, size_t n, unsigned char *ok)
{
    nats_bus_t *b = (nats_bus_t *)bus;
    memset(ok, 0, n);
    if (n > PUB_BATCH_MAX)
        return TORO_EINVAL;
    int rc = ensure(b);
    if (rc)
        return rc;
    natsMsg **sent = calloc(n, sizeof *sent);
    if (!sent)
        return TORO_ENOMEM;
    pthread_mutex_lock(&b->pub_serial);
    pthread_mutex_lock(&b->pub_lock);
    b->pub = (pub_batch_t){sent, ok, n};
    pthread_mutex_unlock(&b->pub_lock);
    natsStatus s = NATS_OK;
    for (size_t i = 0; i < n && s == NATS_OK; i++)
        if (topic_index(msgs[i].topic) >= 0)
            s = send_async(b, &msgs[i], &sent[i]);
    if (s != NATS_OK && connected(b))
        log_status("async publish", s, 0);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = API_WAIT_MS;
    if (js_PublishAsyncComplete(b->pub_js, &po) != NATS_OK) {
        natsMsgList late = {0};
        if (js_PublishAsyncGetPendingList(&late, b->pub_js) == NATS_OK)
            natsMsgList_Destroy(&late); /* no ack will be reported for them now */
    }
    size_t done = 0;
    pthread_mutex_lock(&b->pub_lock);
    b->pub = (pub_batch_t){0};
    for (size_t i = 0; i < n; i++)
        done += ok[i] != 0;
    pthread_mutex_unlock(&b->pub_lock);
    pthread_mutex_unlock(&b->pub_serial);
    free(sent);
    return (int)done;
}

bool toro_bus_nats_connected(toro_bus_t *bus) { return connected((nats_bus_t *)bus); }

/* Subject tokens cannot hold '.', '*', '>' or blanks: node names like
 * "127.0.0.1:8081" are mapped to "127_0_0_1:8081". */
static void gw_subject(const nats_bus_t *b, const char *node, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s.gw.", b->prefix);
    size_t i = n > 0 ? (size_t)n : 0;
    for (const char *p = node; *p && i + 1 < cap; p++)
        out[i++] = (*p == '.' || *p == '*' || *p == '>' || *p == ' ' || *p == '\t') ? '_' : *p;
    out[i] = '\0';
}

int toro_bus_nats_post(void *bus, const char *connection_id, const char *node, const char *message)
{
    nats_bus_t *b = bus;
    char subj[256];
    natsMsg *reply = NULL;
    gw_subject(b, node, subj, sizeof subj);
    json_t *o = json_pack("{s:s, s:s, s:s}", "connection_id", connection_id, "node", node, "message", message);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!body)
        return TORO_ENOMEM;
    natsStatus s = natsConnection_Request(&reply, b->nc, subj, body, (int)strlen(body), POST_TIMEOUT_MS);
    free(body);
    int rc;
    if (s == NATS_NO_RESPONDERS) {
        rc = TORO_ENOTFOUND; /* no gateway process holds that node any more */
    } else if (s != NATS_OK) {
        rc = TORO_EIO;
    } else {
        const char *d = natsMsg_GetData(reply);
        rc = d && strncmp(d, "ok", 2) == 0 ? 0 : (d && strncmp(d, "gone", 4) == 0 ? TORO_ENOTFOUND : TORO_EIO);
    }
    natsMsg_Destroy(reply);
    return rc;
}

static void on_gw_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    nats_bus_t *b = closure;
    json_error_t je;
    const char *id = NULL, *node = NULL, *message = NULL;
    json_t *o = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, &je);
    int rc = TORO_EINVAL;
    if (o && json_unpack(o, "{s:s, s:s, s:s}", "connection_id", &id, "node", &node, "message", &message) == 0)
        rc = b->gw_fn(b->gw_ctx, id, node, message);
    json_decref(o);
    const char *reply = natsMsg_GetReply(msg);
    if (reply)
        natsConnection_PublishString(nc, reply, rc == 0 ? "ok" : (rc == TORO_ENOTFOUND ? "gone" : "error"));
    natsMsg_Destroy(msg);
}

int toro_bus_nats_serve_node(toro_bus_t *bus, const char *node, toro_post_fn fn, void *ctx)
{
    nats_bus_t *b = (nats_bus_t *)bus;
    char subj[256];
    gw_subject(b, node, subj, sizeof subj);
    b->gw_fn = fn;
    b->gw_ctx = ctx;
    /* a subscription made while disconnected is sent on (re)connect */
    natsStatus s = natsConnection_Subscribe(&b->gw_sub, b->nc, subj, on_gw_request, b);
    if (s != NATS_OK) {
        log_status("subscribe to gateway subject", s, 0);
        return TORO_EIO;
    }
    return 0;
}
