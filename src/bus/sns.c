/* sns.c: the bus on Amazon SNS + SQS, for toro on AWS (issue 16). Each topic
 * T is an SNS topic <prefix>-T; its consumers read the SQS queue
 * <prefix>-T, subscribed to the topic with raw message delivery, whose
 * redrive policy moves a message received `retries` times to the
 * dead-letter queue <prefix>-T-dead.
 *
 *   publish  SNS Publish (query protocol, XML reply)
 *   fetch    SQS ReceiveMessage, one message, long polls of at most wait_s
 *   ack      DeleteMessage;  nack  ChangeMessageVisibility(delay, whole seconds)
 *   dead     SendMessage to the dead-letter queue (attribute "reason"), then
 *            DeleteMessage;  depth  ApproximateNumberOfMessages(+NotVisible)
 *
 * SQS is called with its JSON protocol (application/x-amz-json-1.0). A
 * message's id is local: a slot ring maps it to the receipt handle that ack,
 * nack and dead need (a handle never acked is overwritten N_SLOTS fetches
 * later; its message simply comes back after the visibility timeout). SNS
 * standard topics neither order nor deduplicate: a re-published event (the
 * relay after a crash) is delivered twice, which the idempotent stages
 * absorb; msg_id is not used. kick wakes only the outbox relay of this
 * process (on_kick), as on NATS: consumers long-poll. */
#include <assert.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bus/bus.h"
#include "core/aws_http.h"
#include "core/error.h"
#include "core/log.h"
#include "core/question.h"
#include "core/util.h"

#define N_TOPICS 2
#define N_SLOTS 1024
#define URL_CAP 512
/* what SQS queue and SNS topic names may hold */
#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

static const char *const topics[N_TOPICS] = {TORO_TOPIC_PROCESS, TORO_TOPIC_NOTIFY};

typedef struct sq_topic {
    char queue_url[URL_CAP];
    char dlq_url[URL_CAP];
    char topic_arn[URL_CAP];
} sq_topic_t;

typedef struct handle_slot {
    int64_t id;   /* 0 when free */
    char *handle; /* SQS receipt handle */
} handle_slot_t;

typedef struct sns_bus {
    toro_bus_t base; /* ops first */
    toro_aws_creds_t cred;
    char region[64];
    char sns_ep[256], sqs_ep[256];
    char prefix[64];
    int declare, retries, visibility_s, wait_s;
    sq_topic_t t[N_TOPICS];
    atomic_int interrupted;
    pthread_mutex_t lock; /* guards slots and next_id */
    handle_slot_t slots[N_SLOTS];
    int64_t next_id;
    toro_kick_hook_t kick; /* on_kick's: the relay of this process */
} sns_bus_t;

static int topic_index(const char *topic)
{
    for (int i = 0; i < N_TOPICS; i++)
        if (strcmp(topic, topics[i]) == 0)
            return i;
    return -1;
}

/* ---- calls ---------------------------------------------------------------- */

/* One SQS JSON call. 0 with *resp (caller decrefs; may be NULL) on HTTP 200;
 * TORO_EIO otherwise (the AWS error is logged). */
static int sqs_call(sns_bus_t *b, const char *action, json_t *req, long timeout_ms, json_t **resp)
{
    char target[64], *err = NULL, *body = NULL;
    snprintf(target, sizeof target, "AmazonSQS.%s", action);
    toro_aws_header_t h[1] = {{"x-amz-target", target}};
    char *payload = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (resp)
        *resp = NULL;
    if (!payload)
        return TORO_ENOMEM;
    toro_aws_request_t r = {.url = b->sqs_ep, .service = "sqs", .region = b->region,
                            .content_type = "application/x-amz-json-1.0", .headers = h, .n_headers = 1,
                            .body = payload, .body_len = strlen(payload), .timeout_ms = timeout_ms,
                            .cancel = &b->interrupted};
    long status = 0;
    int rc = toro_aws_post(&r, &b->cred, &status, &body, &err);
    free(payload);
    if (rc == 0 && status != 200) {
        toro_log(TORO_LOG_WARN, "sns", NULL, "sqs %s: HTTP %ld: %.300s", action, status, body);
        rc = TORO_EIO;
    } else if (rc != 0 && !atomic_load(&b->interrupted)) {
        toro_log(TORO_LOG_WARN, "sns", NULL, "sqs %s: %s", action, err ? err : "failed");
    }
    if (rc == 0 && resp)
        *resp = json_loads(body, 0, NULL);
    free(body);
    free(err);
    return rc == TORO_ENOMEM ? rc : rc ? TORO_EIO : 0;
}

/* One SNS query call (form already holds Action and its parameters). 0 with
 * *xml (caller frees) on HTTP 200; TORO_EIO otherwise. */
static int sns_call(sns_bus_t *b, toro_strbuf_t *form, char **xml)
{
    char *err = NULL, *body = NULL;
    toro_aws_form_add(form, "Version", "2010-03-31");
    *xml = NULL;
    if (form->err) {
        free(form->s);
        return form->err;
    }
    toro_aws_request_t r = {.url = b->sns_ep, .service = "sns", .region = b->region,
                            .content_type = "application/x-www-form-urlencoded; charset=utf-8",
                            .body = form->s, .body_len = form->n};
    long status = 0;
    int rc = toro_aws_post(&r, &b->cred, &status, &body, &err);
    free(form->s);
    if (rc == 0 && status != 200) {
        toro_log(TORO_LOG_WARN, "sns", NULL, "sns: HTTP %ld: %.300s", status, body);
        rc = TORO_EIO;
    } else if (rc != 0) {
        toro_log(TORO_LOG_WARN, "sns", NULL, "sns: %s", err ? err : "failed");
    }
    free(err);
    if (rc == 0)
        *xml = body;
    else
        free(body);
    return rc == TORO_ENOMEM ? rc : rc ? TORO_EIO : 0;
}

/* Copies the text of the first <tag>…</tag> in xml to out; 0 or TORO_EFORMAT. */
static int xml_text(const char *xml, const char *tag, char *out, size_t cap)
{
    char open[64], close[64];
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    const char *s = xml ? strstr(xml, open) : NULL;
    const char *e = s ? strstr(s, close) : NULL;
    if (!e)
        return TORO_EFORMAT;
    s += strlen(open);
    if ((size_t)(e - s) >= cap)
        return TORO_EFORMAT;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    return 0;
}

static int copy_str(json_t *j, const char *key, char *out, size_t cap)
{
    const char *v = json_string_value(json_object_get(j, key));
    if (!v || strlen(v) >= cap)
        return TORO_EFORMAT;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

/* ---- declaring and resolving ------------------------------------------------ */

static void queue_name(const sns_bus_t *b, int ti, int dead, char *out, size_t cap)
{
    snprintf(out, cap, "%s-%s%s", b->prefix, topics[ti], dead ? "-dead" : "");
}

/* GetQueueUrl (declare 0) or CreateQueue (declare 1) of name into url. */
static int queue_url(sns_bus_t *b, const char *name, int create, char *url)
{
    json_t *resp = NULL;
    int rc = sqs_call(b, create ? "CreateQueue" : "GetQueueUrl", json_pack("{ss}", "QueueName", name), 0, &resp);
    if (rc == 0)
        rc = copy_str(resp, "QueueUrl", url, URL_CAP);
    json_decref(resp);
    return rc;
}

static int queue_arn(sns_bus_t *b, const char *url, char *arn)
{
    json_t *resp = NULL;
    int rc = sqs_call(b, "GetQueueAttributes", json_pack("{ss s[s]}", "QueueUrl", url, "AttributeNames", "QueueArn"),
                      0, &resp);
    if (rc == 0)
        rc = copy_str(json_object_get(resp, "Attributes"), "QueueArn", arn, URL_CAP);
    json_decref(resp);
    return rc;
}

/* The queue's timeouts, its redrive to dlq_arn and a policy that lets the
 * topic send to it. */
static int queue_setup(sns_bus_t *b, sq_topic_t *t, const char *arn, const char *dlq_arn)
{
    char redrive[URL_CAP + 64], vis[16];
    snprintf(redrive, sizeof redrive, "{\"deadLetterTargetArn\":\"%s\",\"maxReceiveCount\":\"%d\"}", dlq_arn,
             b->retries);
    snprintf(vis, sizeof vis, "%d", b->visibility_s);
    json_t *pol = json_pack("{ss s[{ss s{ss} ss ss s{s{ss}}}]}", "Version", "2012-10-17", "Statement", "Effect",
                            "Allow", "Principal", "Service", "sns.amazonaws.com", "Action", "sqs:SendMessage",
                            "Resource", arn, "Condition", "ArnEquals", "aws:SourceArn", t->topic_arn);
    char *policy = pol ? json_dumps(pol, JSON_COMPACT) : NULL;
    json_decref(pol);
    if (!policy)
        return TORO_ENOMEM;
    json_t *req = json_pack("{ss s{ss ss ss}}", "QueueUrl", t->queue_url, "Attributes", "VisibilityTimeout", vis,
                            "RedrivePolicy", redrive, "Policy", policy);
    free(policy);
    return sqs_call(b, "SetQueueAttributes", req, 0, NULL);
}

static int subscribe(sns_bus_t *b, const sq_topic_t *t, const char *arn)
{
    toro_strbuf_t f = {0};
    char *xml = NULL;
    toro_aws_form_add(&f, "Action", "Subscribe");
    toro_aws_form_add(&f, "TopicArn", t->topic_arn);
    toro_aws_form_add(&f, "Protocol", "sqs");
    toro_aws_form_add(&f, "Endpoint", arn);
    toro_aws_form_add(&f, "Attributes.entry.1.key", "RawMessageDelivery");
    toro_aws_form_add(&f, "Attributes.entry.1.value", "true");
    toro_aws_form_add(&f, "ReturnSubscriptionArn", "true");
    int rc = sns_call(b, &f, &xml);
    free(xml);
    return rc;
}

/* Creates (idempotently) the dead-letter queue, the queue, the topic and the
 * subscription of topic ti. */
static int declare_topic(sns_bus_t *b, int ti)
{
    sq_topic_t *t = &b->t[ti];
    char name[128], arn[URL_CAP], dlq_arn[URL_CAP], *xml = NULL;
    int rc;
    queue_name(b, ti, 1, name, sizeof name);
    if ((rc = queue_url(b, name, 1, t->dlq_url)) || (rc = queue_arn(b, t->dlq_url, dlq_arn)))
        return rc;
    /* dead letters are kept as long as SQS allows (14 days) */
    json_t *keep = json_pack("{ss s{ss}}", "QueueUrl", t->dlq_url, "Attributes", "MessageRetentionPeriod", "1209600");
    if ((rc = sqs_call(b, "SetQueueAttributes", keep, 0, NULL)))
        return rc;
    queue_name(b, ti, 0, name, sizeof name);
    if ((rc = queue_url(b, name, 1, t->queue_url)) || (rc = queue_arn(b, t->queue_url, arn)))
        return rc;
    toro_strbuf_t f = {0};
    toro_aws_form_add(&f, "Action", "CreateTopic");
    toro_aws_form_add(&f, "Name", name);
    if ((rc = sns_call(b, &f, &xml)) == 0)
        rc = xml_text(xml, "TopicArn", t->topic_arn, sizeof t->topic_arn);
    free(xml);
    if (rc || (rc = queue_setup(b, t, arn, dlq_arn)))
        return rc;
    return subscribe(b, t, arn);
}

/* Finds existing queues; the topic's ARN is the queue's with sqs -> sns. */
static int resolve_topic(sns_bus_t *b, int ti)
{
    sq_topic_t *t = &b->t[ti];
    char name[128], arn[URL_CAP];
    int rc;
    queue_name(b, ti, 1, name, sizeof name);
    if ((rc = queue_url(b, name, 0, t->dlq_url)))
        return rc;
    queue_name(b, ti, 0, name, sizeof name);
    if ((rc = queue_url(b, name, 0, t->queue_url)) || (rc = queue_arn(b, t->queue_url, arn)))
        return rc;
    /* arn:aws:sqs:REGION:ACCOUNT:NAME -> arn:aws:sns:REGION:ACCOUNT:NAME */
    const char *p = strstr(arn, ":sqs:");
    if (!p || strncmp(arn, "arn:", 4) != 0)
        return TORO_EFORMAT;
    snprintf(t->topic_arn, sizeof t->topic_arn, "%.*s:sns:%s", (int)(p - arn), arn, p + 5);
    return 0;
}

/* ---- receipt handles ---------------------------------------------------------- */

static int64_t slot_put(sns_bus_t *b, const char *handle)
{
    char *h = strdup(handle);
    if (!h)
        return 0;
    pthread_mutex_lock(&b->lock);
    int64_t id = ++b->next_id;
    handle_slot_t *s = &b->slots[id % N_SLOTS];
    free(s->handle);
    s->id = id;
    s->handle = h;
    pthread_mutex_unlock(&b->lock);
    return id;
}

/* Removes and returns id's receipt handle (caller frees), NULL when unknown. */
static char *slot_take(sns_bus_t *b, int64_t id)
{
    char *h = NULL;
    pthread_mutex_lock(&b->lock);
    handle_slot_t *s = &b->slots[(id % N_SLOTS + N_SLOTS) % N_SLOTS];
    if (id > 0 && s->id == id) {
        h = s->handle;
        s->handle = NULL;
        s->id = 0;
    }
    pthread_mutex_unlock(&b->lock);
    return h;
}

/* ---- ops ------------------------------------------------------------------------ */

/* Fills out from a ReceiveMessage reply; TORO_EEMPTY when it holds none. */
static int take_message(sns_bus_t *b, json_t *resp, toro_bus_msg_t *out)
{
    if (!json_is_object(resp))
        return TORO_EIO; /* not the JSON reply of SQS */
    json_t *m = json_array_get(json_object_get(resp, "Messages"), 0);
    if (!m)
        return TORO_EEMPTY;
    json_t *attrs = json_object_get(m, "Attributes");
    const char *body = json_string_value(json_object_get(m, "Body"));
    const char *handle = json_string_value(json_object_get(m, "ReceiptHandle"));
    const char *count = json_string_value(json_object_get(attrs, "ApproximateReceiveCount"));
    const char *sent = json_string_value(json_object_get(attrs, "SentTimestamp"));
    long n = 1, ts = 0;
    if (!body || !handle)
        return TORO_EIO;
    if (count)
        toro_parse_long(count, 1, 1000000, &n);
    if (sent)
        toro_parse_long(sent, 0, 0x7fffffffffffffffL, &ts);
    out->payload = strdup(body);
    out->id = out->payload ? slot_put(b, handle) : 0;
    if (out->id == 0) {
        toro_bus_msg_clear(out);
        return TORO_ENOMEM;
    }
    out->deliveries = (int)n;
    out->enqueued_at = ts ? ts : toro_now_ms();
    return 0;
}

static int s_fetch(toro_bus_t *bus, const char *topic, int timeout_ms, toro_bus_msg_t *out)
{
    sns_bus_t *b = (sns_bus_t *)bus;
    int ti = topic_index(topic);
    memset(out, 0, sizeof *out);
    if (ti < 0)
        return TORO_EINVAL;
    int64_t deadline = toro_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (atomic_load(&b->interrupted))
            return TORO_EEMPTY;
        int64_t left = deadline - toro_mono_ms();
        int wait_s = left >= 1000 ? (int)(left / 1000) : 0;
        if (wait_s > b->wait_s)
            wait_s = b->wait_s;
        json_t *resp = NULL;
        json_t *req = json_pack("{ss si si s[s] s[s]}", "QueueUrl", b->t[ti].queue_url, "MaxNumberOfMessages", 1,
                                "WaitTimeSeconds", wait_s, "AttributeNames", "All", "MessageSystemAttributeNames",
                                "All");
        int rc = sqs_call(b, "ReceiveMessage", req, wait_s * 1000L + 10000L, &resp);
        if (rc == 0)
            rc = take_message(b, resp, out);
        json_decref(resp);
        if (rc != TORO_EEMPTY)
            return atomic_load(&b->interrupted) && rc == TORO_EIO ? TORO_EEMPTY : rc;
        left = deadline - toro_mono_ms();
        if (left <= 0)
            return TORO_EEMPTY;
        if (wait_s == 0)
            toro_sleep_ms(left < 100 ? left : 100);
    }
}

static int change_visibility(sns_bus_t *b, int ti, const char *handle, int seconds)
{
    json_t *req = json_pack("{ss ss si}", "QueueUrl", b->t[ti].queue_url, "ReceiptHandle", handle,
                            "VisibilityTimeout", seconds);
    return sqs_call(b, "ChangeMessageVisibility", req, 0, NULL);
}

static int delete_message(sns_bus_t *b, int ti, const char *handle)
{
    json_t *req = json_pack("{ss ss}", "QueueUrl", b->t[ti].queue_url, "ReceiptHandle", handle);
    return sqs_call(b, "DeleteMessage", req, 0, NULL);
}

static int s_ack(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *msg)
{
    sns_bus_t *b = (sns_bus_t *)bus;
    int ti = topic_index(topic);
    char *h = ti < 0 ? NULL : slot_take(b, msg->id);
    int rc = h ? delete_message(b, ti, h) : TORO_ENOTFOUND;
    free(h);
    return rc;
}

/* A nack's delay as a visibility timeout: whole seconds, at most SQS's 12 hours. */
static int delay_seconds(int delay_ms)
{
    long s = delay_ms <= 0 ? 0 : (delay_ms + 999L) / 1000;
    return (int)(s > 43200 ? 43200 : s);
}

static int s_nack(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *msg, int delay_ms)
{
    sns_bus_t *b = (sns_bus_t *)bus;
    int ti = topic_index(topic);
    char *h = ti < 0 ? NULL : slot_take(b, msg->id);
    int rc = h ? change_visibility(b, ti, h, delay_seconds(delay_ms)) : TORO_ENOTFOUND;
    free(h);
    return rc;
}

int toro_bus_sns_retry_in(toro_bus_t *bus, const char *topic, const char *receipt_handle, int delay_ms)
{
    assert(bus && topic && receipt_handle);
    int ti = topic_index(topic);
    if (strcmp(bus->ops->name, "sns") != 0 || ti < 0)
        return TORO_EINVAL;
    return change_visibility((sns_bus_t *)bus, ti, receipt_handle, delay_seconds(delay_ms));
}

static int s_dead(toro_bus_t *bus, const char *topic, const toro_bus_msg_t *msg, const char *reason)
{
    sns_bus_t *b = (sns_bus_t *)bus;
    int ti = topic_index(topic);
    char *h = ti < 0 ? NULL : slot_take(b, msg->id);
    if (!h)
        return TORO_ENOTFOUND;
    json_t *req = json_pack("{ss ss s{s{ss ss}}}", "QueueUrl", b->t[ti].dlq_url, "MessageBody", msg->payload,
                            "MessageAttributes", "reason", "DataType", "String", "StringValue",
                            reason && *reason ? reason : "unspecified");
    int rc = sqs_call(b, "SendMessage", req, 0, NULL);
    if (rc == 0)
        rc = delete_message(b, ti, h);
    free(h);
    return rc;
}

/* Consumers long-poll SQS: nothing to wake there. The relay of this
 * process (on_kick) publishes the event just committed. */
static void s_kick(toro_bus_t *bus, const char *topic)
{
    (void)topic;
    toro_kick_hook_call(&((sns_bus_t *)bus)->kick);
}

static void s_on_kick(toro_bus_t *bus, void (*fn)(void *ctx), void *ctx)
{
    toro_kick_hook_set(&((sns_bus_t *)bus)->kick, fn, ctx);
}

static long attr_long(json_t *attrs, const char *key)
{
    long v = 0;
    const char *s = json_string_value(json_object_get(attrs, key));
    if (s)
        toro_parse_long(s, 0, 0x7fffffffL, &v);
    return v;
}

static int s_depth(toro_bus_t *bus, const char *topic, long *out)
{
    sns_bus_t *b = (sns_bus_t *)bus;
    int ti = topic_index(topic);
    if (ti < 0)
        return TORO_EINVAL;
    json_t *resp = NULL;
    json_t *req = json_pack("{ss s[ss]}", "QueueUrl", b->t[ti].queue_url, "AttributeNames",
                            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible");
    int rc = sqs_call(b, "GetQueueAttributes", req, 0, &resp);
    if (rc == 0) {
        json_t *a = json_object_get(resp, "Attributes");
        *out = attr_long(a, "ApproximateNumberOfMessages") + attr_long(a, "ApproximateNumberOfMessagesNotVisible");
    }
    json_decref(resp);
    return rc;
}

static int s_publish(toro_bus_t *bus, const char *topic, const char *payload, const char *msg_id)
{
    sns_bus_t *b = (sns_bus_t *)bus;
    int ti = topic_index(topic);
    char *xml = NULL;
    (void)msg_id; /* standard topics do not deduplicate (see the top) */
    if (ti < 0)
        return TORO_EINVAL;
    toro_strbuf_t f = {0};
    toro_aws_form_add(&f, "Action", "Publish");
    toro_aws_form_add(&f, "TopicArn", b->t[ti].topic_arn);
    toro_aws_form_add(&f, "Message", payload);
    int rc = sns_call(b, &f, &xml);
    free(xml);
    return rc == 0 ? 0 : TORO_EIO;
}

static void s_interrupt(toro_bus_t *bus) { atomic_store(&((sns_bus_t *)bus)->interrupted, 1); }

static void s_close(toro_bus_t *bus)
{
    sns_bus_t *b = (sns_bus_t *)bus;
    for (int i = 0; i < N_SLOTS; i++)
        free(b->slots[i].handle);
    toro_aws_creds_clear(&b->cred);
    pthread_mutex_destroy(&b->lock);
    toro_kick_hook_destroy(&b->kick);
    free(b);
}

static const toro_bus_ops_t SNS_OPS = {.name = "sns",
                                       .fetch = s_fetch,
                                       .ack = s_ack,
                                       .nack = s_nack,
                                       .dead = s_dead,
                                       .kick = s_kick,
                                       .depth = s_depth,
                                       .interrupt = s_interrupt,
                                       .close = s_close,
                                       .publish = s_publish,
                                       .on_kick = s_on_kick};

/* ---- open ------------------------------------------------------------------------ */

#define URL_USAGE                                                                                                     \
    "bad --bus URL: expected sns://REGION[?endpoint=URL&prefix=NAME&declare=1&retries=N&visibility_s=N&wait_s=N]"

/* Applies one "key=value" of the URL's query; 0 or TORO_EINVAL. */
static int url_param(sns_bus_t *b, const char *key, size_t klen, const char *val)
{
    long v;
#define KEY(k) (klen == sizeof(k) - 1 && strncmp(key, k, klen) == 0)
    if (KEY("endpoint") && strlen(val) < sizeof b->sns_ep) {
        snprintf(b->sns_ep, sizeof b->sns_ep, "%s", val);
        snprintf(b->sqs_ep, sizeof b->sqs_ep, "%s", val);
    } else if (KEY("prefix") && *val && strlen(val) < 40 && strspn(val, NAME_CHARS) == strlen(val)) {
        snprintf(b->prefix, sizeof b->prefix, "%s", val);
    } else if (KEY("declare") && toro_parse_long(val, 0, 1, &v) == 0) {
        b->declare = (int)v;
    } else if (KEY("retries") && toro_parse_long(val, 1, 1000, &v) == 0) {
        b->retries = (int)v;
    } else if (KEY("visibility_s") && toro_parse_long(val, 0, 43200, &v) == 0) {
        b->visibility_s = (int)v;
    } else if (KEY("wait_s") && toro_parse_long(val, 0, 20, &v) == 0) {
        b->wait_s = (int)v;
    } else {
        return TORO_EINVAL;
    }
#undef KEY
    return 0;
}

/* Parses "sns://REGION[?k=v&…]"; the region may be empty (AWS_REGION). */
static int parse_url(sns_bus_t *b, const char *url)
{
    if (strncmp(url, "sns://", 6) != 0)
        return TORO_EINVAL;
    const char *r = url + 6, *q = strchr(r, '?');
    size_t rn = q ? (size_t)(q - r) : strlen(r);
    const char *env = getenv("AWS_REGION");
    if (rn == 0 && env && *env && strlen(env) < sizeof b->region)
        snprintf(b->region, sizeof b->region, "%s", env);
    else if (rn > 0 && rn < sizeof b->region)
        snprintf(b->region, sizeof b->region, "%.*s", (int)rn, r);
    if (!b->region[0] || strspn(b->region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(b->region))
        return TORO_EINVAL;
    while (q && *q) {
        const char *key = q + 1, *amp = strchr(key, '&'), *eq = strchr(key, '=');
        size_t end = amp ? (size_t)(amp - key) : strlen(key);
        char val[256];
        if (!eq || (size_t)(eq - key) >= end || end - (size_t)(eq - key) - 1 >= sizeof val)
            return TORO_EINVAL;
        snprintf(val, sizeof val, "%.*s", (int)(end - (size_t)(eq - key) - 1), eq + 1);
        if (url_param(b, key, (size_t)(eq - key), val) != 0)
            return TORO_EINVAL;
        q = amp;
    }
    return 0;
}

int toro_bus_sns_open(const char *url, toro_bus_t **out, char **err)
{
    assert(url && out);
    sns_bus_t *b = calloc(1, sizeof *b);
    if (!b)
        return TORO_ENOMEM;
    b->base.ops = &SNS_OPS;
    snprintf(b->prefix, sizeof b->prefix, "toro");
    b->retries = 5;
    b->visibility_s = 30;
    b->wait_s = 20;
    pthread_mutex_init(&b->lock, NULL);
    toro_kick_hook_init(&b->kick);
    int rc = parse_url(b, url);
    if (rc != 0) {
        toro_set_err(err, "%s, not '%s' (the region may come from AWS_REGION)", URL_USAGE, url);
    } else {
        if (!b->sns_ep[0]) {
            snprintf(b->sns_ep, sizeof b->sns_ep, "https://sns.%s.amazonaws.com/", b->region);
            snprintf(b->sqs_ep, sizeof b->sqs_ep, "https://sqs.%s.amazonaws.com/", b->region);
        }
        rc = toro_aws_creds_from_env(&b->cred, err);
    }
    for (int i = 0; rc == 0 && i < N_TOPICS; i++) {
        rc = b->declare ? declare_topic(b, i) : resolve_topic(b, i);
        if (rc)
            toro_set_err(err, "sns bus: cannot %s the queues of topic %s at %s (see the log)",
                         b->declare ? "declare" : "find", topics[i], b->sqs_ep);
    }
    if (rc != 0) {
        s_close(&b->base);
        return rc;
    }
    *out = &b->base;
    return 0;
}
