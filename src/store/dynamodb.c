/* dynamodb.c: the store on Amazon DynamoDB (the reference's own tables),
 * `--store dynamodb://REGION?endpoint=URL&questions=T&connections=T&outbox=T`.
 * Every call is one JSON request (DynamoDB_20120810.*) signed with SigV4
 * (core/aws_http.c); credentials come from AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (the Lambda environment).
 *
 * Tables (created by toro_store_dynamodb_migrate, `toro db migrate`):
 * - questions: PK "USER#<user_id>", SK "QUESTION#<question_id>" (the
 *   reference's keys). History is a Query on PK through the local secondary
 *   index "history" (sort key created_key = "<created_at, 16 digits>#<id>"),
 *   newest first and strongly consistent; the token is the store-wide opaque
 *   cursor of core/question.h. A question found by id alone goes through a
 *   second, immutable item PK = SK = "QUESTION#<question_id>" holding its
 *   user_id, written in the same transaction: a strongly consistent GetItem
 *   (a GSI on question_id would be eventually consistent, so the process
 *   stage could miss a question it was just told about), and it makes ids
 *   unique across users as in the SQL stores. Feedback is kept on the
 *   question item and listed for export through the sparse GSI "feedback";
 *   a conversation's questions through the sparse LSI "conversation" (see
 *   the feedback and conversations sections). Tables created before those
 *   indexes must be recreated: an LSI can only be made with its table.
 * - connections: PK "USER#<user_id>", SK "CONN#<connection_id>" (several per
 *   user, listed by a strongly consistent Query); GSIs by_connection and
 *   by_node (keys only) find the items to delete by id or by gateway node.
 * - outbox: id (number, increasing per process: ms << 20 | random), with the
 *   GSI by_topic (topic, id) to claim oldest first; buried events keep their
 *   item but lose the topic attribute (dead_topic, reason), so they leave the
 *   index and every claim.
 *
 * No dual write: a question and its "process" event, and every guarded
 * status change and its event, are one TransactWriteItems (the item plus an
 * outbox item), with a ClientRequestToken so a retry after a lost reply is
 * not applied twice. DynamoDB Streams were the alternative: they deliver only
 * to Lambda or KCL readers, keep records 24 hours, cannot be leased,
 * released with a delay or buried per event, and would need a second
 * implementation of the relay; an outbox table gives the same
 * bus/outbox.h semantics as SQLite and PostgreSQL, so bus/relay.c and the
 * stages work unchanged. Claims are conditional updates of leased_until
 * (two relays never share an event).
 *
 * Guarded changes: read status and attempts (consistent read), refuse what
 * toro_status_can_move forbids (TORO_ECONFLICT), then write with
 * ConditionExpression "status = :from AND attempts = :att"; when another
 * writer won in between, read again and decide again (optimistic locking).
 * Errors: conditional check failed -> TORO_ECONFLICT; throttling, 5xx and
 * transaction conflicts are retried 3 times, then TORO_ERETRY; no answer
 * (network) -> TORO_EIO; a missing table -> TORO_EIO with a log line naming
 * `toro db migrate`. count_by_status scans the questions table (it serves
 * /metrics; fine for a queue-sized table, costly on a large one). The
 * local index caps one user's questions at 10 GB. Credentials are read once
 * at open (a Lambda container's do not change; no refresh of expiring ones).
 * Calls of one thread share a connection (core/aws_http.c). */
#include <assert.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "core/aws_http.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "store/store.h"

#define SCHEME "dynamodb://"
#define CALL_TRIES 3
#define MOVE_TRIES 8 /* re-reads after losing a guarded write to another writer */
#define CONFLICT_MOVED 1 /* private: the condition failed, read again */

typedef struct ddb_store {
    toro_store_t super;
    toro_outbox_t outbox;
    char *url, *region;
    char *t_questions, *t_connections, *t_outbox;
    toro_aws_creds_t cred; /* owned */
    long timeout_ms;
} ddb_t;

/* ---- attribute values ---- */

static char *fmt_dup(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_dup(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}

/* {"S": v}; NULL when v is NULL or out of memory. */
static json_t *av_s(const char *v) { return v ? json_pack("{s:s}", "S", v) : NULL; }

static json_t *av_s2(const char *prefix, const char *v)
{
    char *s = v ? fmt_dup("%s%s", prefix, v) : NULL;
    json_t *j = av_s(s);
    free(s);
    return j;
}

static json_t *av_n(int64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%lld", (long long)v);
    return json_pack("{s:s}", "N", b);
}

static const char *get_s(json_t *item, const char *k)
{
    return json_string_value(json_object_get(json_object_get(item, k), "S"));
}

static int64_t get_n(json_t *item, const char *k)
{
    const char *v = json_string_value(json_object_get(json_object_get(item, k), "N"));
    return v ? strtoll(v, NULL, 10) : 0;
}

static char *dup_s(json_t *item, const char *k)
{
    const char *v = get_s(item, k);
    return v ? strdup(v) : NULL;
}

static json_t *q_key(const char *user_id, const char *question_id)
{
    return json_pack("{s:o,s:o}", "PK", av_s2("USER#", user_id), "SK", av_s2("QUESTION#", question_id));
}

static json_t *ptr_key(const char *question_id)
{
    return json_pack("{s:o,s:o}", "PK", av_s2("QUESTION#", question_id), "SK", av_s2("QUESTION#", question_id));
}

static json_t *created_key(int64_t created_at, const char *question_id)
{
    char *s = fmt_dup("%016lld#%s", (long long)created_at, question_id);
    json_t *j = av_s(s);
    free(s);
    return j;
}

/* ---- one request ---- */

static const char *error_type(json_t *reply)
{
    const char *t = json_string_value(json_object_get(reply, "__type"));
    const char *h = t ? strrchr(t, '#') : NULL;
    return h ? h + 1 : t ? t : "";
}

/* Bit i set when transaction item i failed its condition; -1 when some item
 * failed for a transient reason (throttling, a conflicting transaction). */
static int tx_failed(json_t *reply)
{
    json_t *reasons = json_object_get(reply, "CancellationReasons"), *r;
    size_t i;
    int mask = 0;
    json_array_foreach(reasons, i, r) {
        const char *code = json_string_value(json_object_get(r, "Code"));
        if (code && strcmp(code, "ConditionalCheckFailed") == 0 && i < 31)
            mask |= 1 << i;
        else if (code && strcmp(code, "None") != 0)
            return -1;
    }
    return mask;
}

static int map_error(const ddb_t *d, const char *action, long status, json_t *reply)
{
    const char *type = error_type(reply);
    const char *msg = json_string_value(json_object_get(reply, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(reply, "Message"));
    if (strcmp(type, "ConditionalCheckFailedException") == 0 || strcmp(type, "ResourceInUseException") == 0)
        return TORO_ECONFLICT; /* a refused condition; a table that exists (CreateTable) */
    if (strcmp(type, "TransactionCanceledException") == 0) {
        int mask = tx_failed(reply);
        if (mask > 0)
            return TORO_ECONFLICT;
        if (mask < 0)
            return TORO_ERETRY;
    }
    if (status >= 500 || strstr(type, "Throttl") || strcmp(type, "ProvisionedThroughputExceededException") == 0 ||
        strcmp(type, "RequestLimitExceeded") == 0 || strcmp(type, "TransactionConflictException") == 0 ||
        strcmp(type, "TransactionInProgressException") == 0)
        return TORO_ERETRY;
    if (strcmp(type, "ResourceNotFoundException") == 0)
        toro_log_error("store", NULL, "dynamodb %s: a table is missing (%s, %s, %s): run `toro db migrate --store "
                       "dynamodb://...`: %s", action, d->t_questions, d->t_connections, d->t_outbox, msg ? msg : "");
    else
        toro_log_error("store", NULL, "dynamodb %s: HTTP %ld %s: %s", action, status, type, msg ? msg : "");
    return TORO_EIO;
}

/* Sends req (stolen) as DynamoDB_20120810.<action>, retrying throttling,
 * 5xx and network failures. On 0 *reply (optional, caller decrefs) is the
 * answer; on a refused condition (TORO_ECONFLICT) it is the error body. */
static int call(ddb_t *d, const char *action, json_t *req, json_t **reply)
{
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    char target[64];
    int rc = TORO_ENOMEM;
    json_decref(req);
    if (reply)
        *reply = NULL;
    snprintf(target, sizeof target, "DynamoDB_20120810.%s", action);
    const toro_aws_header_t amz_target = {"x-amz-target", target};
    toro_aws_request_t t = {.url = d->url, .service = "dynamodb", .region = d->region,
                            .content_type = "application/x-amz-json-1.0", .headers = &amz_target, .n_headers = 1,
                            .timeout_ms = d->timeout_ms};
    for (int attempt = 0; body && attempt < CALL_TRIES; attempt++) {
        if (attempt)
            toro_sleep_ms(50L << (2 * attempt));
        long status = 0;
        char *resp = NULL, *err = NULL;
        t.body = body;
        t.body_len = strlen(body);
        rc = toro_aws_post(&t, &d->cred, &status, &resp, &err);
        if (rc == TORO_EIO)
            toro_log_warn("store", NULL, "dynamodb %s: %s", action, err ? err : "no answer");
        free(err);
        if (rc == TORO_EIO)
            continue;
        if (rc)
            break;
        json_t *j = json_loads(resp, 0, NULL);
        free(resp);
        rc = status == 200 && j ? 0 : map_error(d, action, status, j);
        if (rc == TORO_ERETRY && attempt + 1 < CALL_TRIES) {
            json_decref(j);
            continue;
        }
        if (reply)
            *reply = j;
        else
            json_decref(j);
        break;
    }
    free(body);
    return rc;
}

/* TransactWriteItems of items (stolen), idempotent across retries. */
static int transact(ddb_t *d, json_t *items, json_t **reply)
{
    char token[37];
    toro_uuid4(token);
    return call(d, "TransactWriteItems", json_pack("{s:o,s:s}", "TransactItems", items, "ClientRequestToken", token),
                reply);
}

/* ---- outbox items ---- */

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t id_last;

/* Increasing in this process, roughly in time order across processes. */
static int64_t next_outbox_id(void)
{
    unsigned char r[4] = {0};
    if (RAND_bytes(r, sizeof r) != 1)
        r[0] = (unsigned char)clock();
    int64_t id = (toro_now_ms() << 20) | (int64_t)(((unsigned)r[0] << 12 | (unsigned)r[1] << 4 | r[2] >> 4) & 0xFFFFF);
    pthread_mutex_lock(&id_lock);
    if (id <= id_last)
        id = id_last + 1;
    id_last = id;
    pthread_mutex_unlock(&id_lock);
    return id;
}

/* The transaction item that writes ev (NULL when out of memory). */
static json_t *outbox_put(const ddb_t *d, const toro_event_t *ev)
{
    char msg_id[37];
    int64_t now = toro_now_ms();
    toro_uuid4(msg_id);
    json_t *item = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id", av_n(next_outbox_id()), "msg_id", av_s(msg_id),
                             "topic", av_s(ev->topic), "payload", av_s(ev->payload), "created_at", av_n(now),
                             "available_at", av_n(now), "leased_until", av_n(0), "deliveries", av_n(0));
    return json_pack("{s:{s:s,s:o,s:s}}", "Put", "TableName", d->t_outbox, "Item", item, "ConditionExpression",
                     "attribute_not_exists(id)");
}

/* ---- questions ---- */

/* The conversation index's sort key "<conversation_id>#<created_at, 16
 * digits>#<question_id>": one conversation's questions in time order. */
static json_t *conv_key(const char *conversation_id, int64_t created_at, const char *question_id)
{
    char *s = fmt_dup("%s#%016lld#%s", conversation_id, (long long)created_at, question_id);
    json_t *j = av_s(s);
    free(s);
    return j;
}

static json_t *question_item(const toro_question_t *q)
{
    json_t *it = q_key(q->user_id, q->question_id);
    if (it && json_object_update_new(it, json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "user_id", av_s(q->user_id),
                                                   "question_id", av_s(q->question_id), "question",
                                                   av_s(q->question), "status", av_s("pending"), "attempts",
                                                   av_n(0), "created_at", av_n(q->created_at), "updated_at",
                                                   av_n(q->created_at), "created_key",
                                                   created_key(q->created_at, q->question_id))) != 0) {
        json_decref(it);
        return NULL;
    }
    if (it && q->conversation_id &&
        json_object_update_new(it, json_pack("{s:o,s:o}", "conversation_id", av_s(q->conversation_id), "conv_key",
                                             conv_key(q->conversation_id, q->created_at, q->question_id))) != 0) {
        json_decref(it);
        return NULL;
    }
    return it;
}

static int s_create(toro_store_t *s, const toro_question_t *q, const toro_event_t *ev)
{
    ddb_t *d = (ddb_t *)s;
    int rc = TORO_ECONFLICT;
    for (int attempt = 0; attempt < 2 && rc == TORO_ECONFLICT; attempt++) {
        json_t *ptr = ptr_key(q->question_id);
        if (ptr)
            json_object_set_new(ptr, "user_id", av_s(q->user_id));
        json_t *items = json_pack("[{s:{s:s,s:o,s:s}},{s:{s:s,s:o,s:s}},o]", "Put", "TableName", d->t_questions,
                                  "Item", question_item(q), "ConditionExpression", "attribute_not_exists(PK)", "Put",
                                  "TableName", d->t_questions, "Item", ptr, "ConditionExpression",
                                  "attribute_not_exists(PK)", outbox_put(d, ev));
        if (!items)
            return TORO_ENOMEM;
        json_t *reply = NULL;
        rc = transact(d, items, &reply);
        int mask = rc == TORO_ECONFLICT ? tx_failed(reply) : 0;
        json_decref(reply);
        if (rc == TORO_ECONFLICT && mask != 4) /* the question or its id exists */
            return rc;
    } /* else an outbox id taken by another process in the same ms: new id */
    return rc;
}

static void item_to_question(json_t *it, toro_question_t *q)
{
    memset(q, 0, sizeof *q);
    q->user_id = dup_s(it, "user_id");
    q->question_id = dup_s(it, "question_id");
    q->question = dup_s(it, "question");
    const char *st = get_s(it, "status");
    if (!st || toro_status_parse(st, &q->status) != 0)
        q->status = TORO_STATUS_ERROR;
    q->answer = dup_s(it, "answer");
    if (toro_sources_load(get_s(it, "sources"), &q->sources, &q->n_sources) == TORO_EFORMAT)
        toro_log_warn("store", q->question_id, "stored sources are not a JSON array; shown as none");
    q->found_relevant_docs = json_is_true(json_object_get(json_object_get(it, "found_relevant_docs"), "BOOL"));
    q->model = dup_s(it, "model");
    q->kb_version = dup_s(it, "kb_version");
    q->error_message = dup_s(it, "error_message");
    q->attempts = (int)get_n(it, "attempts");
    q->created_at = get_n(it, "created_at");
    q->updated_at = get_n(it, "updated_at");
    q->processing_started_at = get_n(it, "processing_started_at");
    q->processed_at = get_n(it, "processed_at");
    if (toro_rating_parse(get_s(it, "feedback_rating"), &q->feedback.rating) == 0) {
        q->feedback.comment = dup_s(it, "feedback_comment");
        q->feedback.at = get_n(it, "feedback_at");
    }
    q->conversation_id = dup_s(it, "conversation_id");
    q->retrieval_query = dup_s(it, "retrieval_query");
}

/* GetItem (consistent) of key (stolen): *item borrowed from *reply. */
static int get_item(ddb_t *d, const char *table, json_t *key, const char *projection, json_t **reply, json_t **item)
{
    json_t *req = json_pack("{s:s,s:o,s:b}", "TableName", table, "Key", key, "ConsistentRead", 1);
    if (req && projection) {
        json_object_set_new(req, "ProjectionExpression", json_string(projection));
        if (strstr(projection, "#s"))
            json_object_set_new(req, "ExpressionAttributeNames", json_pack("{s:s}", "#s", "status"));
    }
    int rc = call(d, "GetItem", req, reply);
    *item = rc == 0 ? json_object_get(*reply, "Item") : NULL;
    if (rc == 0 && !json_is_object(*item))
        rc = TORO_ENOTFOUND;
    return rc;
}

static int s_get(toro_store_t *s, const char *question_id, toro_question_t *out)
{
    ddb_t *d = (ddb_t *)s;
    json_t *reply = NULL, *item = NULL;
    int rc = get_item(d, d->t_questions, ptr_key(question_id), "user_id", &reply, &item);
    char *user = rc == 0 ? dup_s(item, "user_id") : NULL;
    json_decref(reply);
    if (rc)
        return rc;
    if (!user)
        return TORO_ENOMEM;
    rc = get_item(d, d->t_questions, q_key(user, question_id), NULL, &reply, &item);
    free(user);
    if (rc == 0)
        item_to_question(item, out);
    json_decref(reply);
    return rc;
}

/* Sets ExclusiveStartKey of the Query req to the question of cursor (NULL:
 * none) in the index "history" (conversation_id NULL: sort key created_key)
 * or "conversation" (conv_key). TORO_EINVAL for a cursor never made here. */
static int set_start(json_t *req, const char *user_id, const char *conversation_id, const char *cursor)
{
    int64_t at = 0;
    char qid[64];
    if (!cursor)
        return 0;
    if (toro_history_cursor_decode(cursor, &at, qid) != 0)
        return TORO_EINVAL;
    json_t *start = q_key(user_id, qid);
    if (start && conversation_id)
        json_object_set_new(start, "conv_key", conv_key(conversation_id, at, qid));
    else if (start)
        json_object_set_new(start, "created_key", created_key(at, qid));
    return start && json_object_set_new(req, "ExclusiveStartKey", start) == 0 ? 0 : TORO_ENOMEM;
}

static json_t *history_query(const ddb_t *d, const char *user_id, int limit, const char *cursor, int *rc)
{
    json_t *req = json_pack("{s:s,s:s,s:s,s:{s:o},s:b,s:b,s:i}", "TableName", d->t_questions, "IndexName", "history",
                            "KeyConditionExpression", "PK = :pk", "ExpressionAttributeValues", ":pk",
                            av_s2("USER#", user_id), "ScanIndexForward", 0, "ConsistentRead", 1, "Limit", limit + 1);
    *rc = req ? set_start(req, user_id, NULL, cursor) : TORO_ENOMEM;
    if (*rc) {
        json_decref(req);
        return NULL;
    }
    return req;
}

/* Runs the Query req (stolen, Limit limit + 1) as one page of questions:
 * *next is the cursor of the last kept when there were more. */
static int query_page(ddb_t *d, json_t *req, int limit, toro_question_t **items, size_t *n, char **next)
{
    json_t *reply = NULL;
    int rc;
    *items = NULL;
    *n = 0;
    *next = NULL;
    if ((rc = call(d, "Query", req, &reply)) != 0) {
        json_decref(reply);
        return rc;
    }
    json_t *arr = json_object_get(reply, "Items");
    size_t rows = json_array_size(arr), count = rows > (size_t)limit ? (size_t)limit : rows;
    toro_question_t *qs = calloc(count + 1, sizeof *qs);
    if (!qs) {
        json_decref(reply);
        return TORO_ENOMEM;
    }
    for (size_t i = 0; i < count; i++)
        item_to_question(json_array_get(arr, i), &qs[i]);
    /* more: an item past the page, or a page cut short at 1 MB */
    if (count > 0 && (rows > count || json_object_get(reply, "LastEvaluatedKey")))
        *next = toro_history_cursor_encode(&qs[count - 1]);
    json_decref(reply);
    *items = qs;
    *n = count;
    return 0;
}

static int s_list(toro_store_t *s, const char *user_id, int limit, const char *cursor, toro_question_t **items,
                  size_t *n, char **next)
{
    int rc;
    *items = NULL;
    *n = 0;
    *next = NULL;
    json_t *req = history_query((ddb_t *)s, user_id, limit, cursor, &rc);
    return req ? query_page((ddb_t *)s, req, limit, items, n, next) : rc;
}

/* ---- guarded status changes ---- */

/* The Update of t's change (guarded by from and attempts), or NULL. */
static json_t *transition_update(const ddb_t *d, const toro_transition_t *t, const char *const *args, int64_t now)
{
    json_t *v = json_pack("{s:o,s:o,s:o,s:o}", ":to", av_s(toro_status_name(t->to)), ":from",
                          av_s(toro_status_name(t->from)), ":att", av_n(t->attempts), ":now", av_n(now));
    const char *expr = NULL;
    char buf[320];
    if (v && t->to == TORO_STATUS_PROCESSING) {
        expr = "SET #s = :to, attempts = attempts + :one, updated_at = :now,"
               " processing_started_at = if_not_exists(processing_started_at, :now)";
        json_object_set_new(v, ":one", av_n(1));
    } else if (v && t->to == TORO_STATUS_ERROR) {
        expr = "SET #s = :to, error_message = :e, updated_at = :now, processed_at = :now";
        json_object_set_new(v, ":e", av_s(args[0] ? args[0] : ""));
    } else if (v) {
        bool m = args[3] != NULL, k = args[4] != NULL, r = args[5] != NULL;
        snprintf(buf, sizeof buf, "SET #s = :to, answer = :a, sources = :src, found_relevant_docs = :f,"
                 " updated_at = :now, processed_at = :now%s%s%s REMOVE error_message%s%s%s", m ? ", model = :m" : "",
                 k ? ", kb_version = :k" : "", r ? ", retrieval_query = :rq" : "", m ? "" : ", model",
                 k ? "" : ", kb_version", r ? "" : ", retrieval_query");
        expr = buf;
        json_object_update_new(v, json_pack("{s:o,s:o,s:{s:b}}", ":a", av_s(args[0]), ":src", av_s(args[1]), ":f",
                                            "BOOL", strcmp(args[2], "1") == 0));
        if (m)
            json_object_set_new(v, ":m", av_s(args[3]));
        if (k)
            json_object_set_new(v, ":k", av_s(args[4]));
        if (r)
            json_object_set_new(v, ":rq", av_s(args[5]));
    }
    return json_pack("{s:{s:s,s:o,s:s,s:s,s:{s:s},s:o}}", "Update", "TableName", d->t_questions, "Key",
                     q_key(t->user_id, t->question_id), "UpdateExpression", expr ? expr : "",
                     "ConditionExpression", "#s = :from AND attempts = :att", "ExpressionAttributeNames", "#s",
                     "status", "ExpressionAttributeValues", v);
}

/* Reads the status, decides, writes change and event in one transaction.
 * CONFLICT_MOVED when another writer changed the item in between. */
static int transition_once(ddb_t *d, toro_transition_t *t, const char *const *args)
{
    json_t *reply = NULL, *item = NULL;
    int rc = get_item(d, d->t_questions, q_key(t->user_id, t->question_id), "#s, attempts", &reply, &item);
    if (rc == 0 && toro_status_parse(get_s(item, "status"), &t->from) != 0)
        rc = TORO_EFORMAT;
    t->attempts = rc == 0 ? (int)get_n(item, "attempts") : 0;
    json_decref(reply);
    if (rc)
        return rc;
    if (!toro_status_can_move(t->from, t->to))
        return TORO_ECONFLICT;
    json_t *items = json_array();
    if (!items || json_array_append_new(items, transition_update(d, t, args, toro_now_ms())) != 0 ||
        (t->ev && (!t->ev_if_pending || t->from == TORO_STATUS_PENDING) &&
         json_array_append_new(items, outbox_put(d, t->ev)) != 0)) {
        json_decref(items);
        return TORO_ENOMEM;
    }
    rc = transact(d, items, &reply);
    json_decref(reply);
    return rc == TORO_ECONFLICT ? CONFLICT_MOVED : rc; /* (or a taken outbox id: a new one next time) */
}

/* The guarded status change (store.h, toro_transition_t). On failure nothing
 * was written; t->from and t->attempts hold the last read. */
static int s_transition(toro_store_t *s, toro_transition_t *t)
{
    const char *args[TORO_TRANSITION_MAX_ARGS] = {NULL};
    char *owned = NULL;
    assert(t->to == TORO_STATUS_PROCESSING || t->to == TORO_STATUS_COMPLETED || t->to == TORO_STATUS_ERROR);
    int n_args = toro_transition_args(t, "1", "0", args, &owned);
    if (n_args < 0)
        return n_args;
    int rc = CONFLICT_MOVED;
    for (int i = 0; i < MOVE_TRIES && rc == CONFLICT_MOVED; i++)
        rc = transition_once((ddb_t *)s, t, args);
    free(owned);
    if (rc == CONFLICT_MOVED) {
        toro_log_warn("store", t->question_id, "dynamodb: %d writers raced for one question; try again", MOVE_TRIES);
        rc = TORO_ERETRY;
    }
    if (rc && rc != TORO_ECONFLICT)
        t->from = 0, t->attempts = 0;
    return rc;
}

/* ---- paging ---- */

#define EACH_STOP 1 /* an item callback's "enough" */

/* Runs the Query or Scan req (stolen) page after page: fn on every item,
 * *count (optional) += each page's Count. */
static int each_item(ddb_t *d, const char *action, json_t *req, int (*fn)(json_t *item, void *ud), void *ud,
                     long *count)
{
    int rc = req ? 0 : TORO_ENOMEM;
    while (rc == 0) {
        json_t *reply = NULL, *it;
        size_t i;
        json_incref(req);
        if ((rc = call(d, action, req, &reply)) != 0) {
            json_decref(reply);
            break;
        }
        if (count)
            *count += (long)json_integer_value(json_object_get(reply, "Count"));
        json_array_foreach(json_object_get(reply, "Items"), i, it) {
            if (rc == 0 && fn)
                rc = fn(it, ud);
        }
        json_t *lek = json_object_get(reply, "LastEvaluatedKey");
        if (rc == 0 && lek)
            json_object_set(req, "ExclusiveStartKey", lek);
        json_decref(reply);
        if (!lek)
            break;
    }
    json_decref(req);
    return rc == EACH_STOP ? 0 : rc;
}

/* ---- connections ---- */

static int add_key(json_t *item, void *ud)
{
    return json_array_append_new(ud, json_pack("{s:O,s:O}", "PK", json_object_get(item, "PK"), "SK",
                                               json_object_get(item, "SK"))) == 0 ? 0 : TORO_ENOMEM;
}

/* Keys {PK, SK} of the connections whose attr is value (GSI index). */
static int conn_keys(ddb_t *d, const char *index, const char *attr, const char *value, json_t **keys)
{
    *keys = json_array();
    json_t *req = json_pack("{s:s,s:s,s:s,s:{s:s},s:{s:o}}", "TableName", d->t_connections, "IndexName", index,
                            "KeyConditionExpression", "#k = :v", "ExpressionAttributeNames", "#k", attr,
                            "ExpressionAttributeValues", ":v", av_s(value));
    int rc = *keys ? each_item(d, "Query", req, add_key, *keys, NULL) : TORO_ENOMEM;
    if (rc) {
        json_decref(*keys);
        *keys = NULL;
    }
    return rc;
}

/* Deletes every key of keys except those whose PK is keep_pk. */
static int delete_keys(ddb_t *d, const char *table, json_t *keys, const char *keep_pk)
{
    json_t *k;
    size_t i;
    int rc = 0;
    json_array_foreach(keys, i, k) {
        const char *pk = get_s(k, "PK");
        if (rc == 0 && !(keep_pk && pk && strcmp(pk, keep_pk) == 0))
            rc = call(d, "DeleteItem", json_pack("{s:s,s:O}", "TableName", table, "Key", k), NULL);
    }
    return rc;
}

static int s_put_conn(toro_store_t *s, const toro_connection_t *c)
{
    ddb_t *d = (ddb_t *)s;
    json_t *keys = NULL;
    char *pk = fmt_dup("USER#%s", c->user_id);
    int rc = pk ? conn_keys(d, "by_connection", "connection_id", c->connection_id, &keys) : TORO_ENOMEM;
    if (rc == 0) /* the id moved to another user: drop the old item */
        rc = delete_keys(d, d->t_connections, keys, pk);
    json_decref(keys);
    if (rc == 0) {
        json_t *item = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", "PK", av_s(pk), "SK", av_s2("CONN#", c->connection_id),
                                 "connection_id", av_s(c->connection_id), "user_id", av_s(c->user_id), "node",
                                 av_s(c->node), "connected_at", av_n(c->connected_at));
        rc = item ? call(d, "PutItem", json_pack("{s:s,s:o}", "TableName", d->t_connections, "Item", item), NULL)
                  : TORO_ENOMEM;
    }
    free(pk);
    return rc;
}

static int delete_conns_by(toro_store_t *s, const char *index, const char *attr, const char *value)
{
    ddb_t *d = (ddb_t *)s;
    json_t *keys = NULL;
    int rc = conn_keys(d, index, attr, value, &keys);
    if (rc == 0)
        rc = delete_keys(d, d->t_connections, keys, NULL);
    json_decref(keys);
    return rc;
}

static int s_del_conn(toro_store_t *s, const char *id)
{
    return delete_conns_by(s, "by_connection", "connection_id", id);
}

static int s_del_node(toro_store_t *s, const char *node) { return delete_conns_by(s, "by_node", "node", node); }

typedef struct conn_list {
    toro_connection_t *arr;
    size_t n, cap;
} conn_list_t;

static int add_conn(json_t *item, void *ud)
{
    conn_list_t *l = ud;
    toro_connection_t *grown = toro_grow(l->arr, &l->cap, l->n, sizeof *l->arr, 8);
    if (!grown)
        return TORO_ENOMEM;
    l->arr = grown;
    toro_connection_t *c = &l->arr[l->n++];
    c->connection_id = dup_s(item, "connection_id");
    c->user_id = dup_s(item, "user_id");
    c->node = dup_s(item, "node");
    c->connected_at = get_n(item, "connected_at");
    return c->connection_id && c->user_id && c->node ? 0 : TORO_ENOMEM;
}

static int conn_cmp(const void *a, const void *b)
{
    const toro_connection_t *x = a, *y = b;
    if (x->connected_at != y->connected_at)
        return x->connected_at < y->connected_at ? -1 : 1;
    return strcmp(x->connection_id ? x->connection_id : "", y->connection_id ? y->connection_id : "");
}

static int s_list_conn(toro_store_t *s, const char *user_id, toro_connection_t **out, size_t *n)
{
    ddb_t *d = (ddb_t *)s;
    conn_list_t l = {0};
    *out = NULL;
    *n = 0;
    json_t *req = json_pack("{s:s,s:s,s:{s:o,s:o},s:b}", "TableName", d->t_connections, "KeyConditionExpression",
                            "PK = :pk AND begins_with(SK, :c)", "ExpressionAttributeValues", ":pk",
                            av_s2("USER#", user_id), ":c", av_s("CONN#"), "ConsistentRead", 1);
    int rc = each_item(d, "Query", req, add_conn, &l, NULL);
    if (rc) {
        toro_connections_free(l.arr, l.n);
        return rc;
    }
    if (l.n)
        qsort(l.arr, l.n, sizeof *l.arr, conn_cmp);
    *out = l.arr ? l.arr : calloc(1, sizeof *l.arr);
    *n = l.n;
    return *out ? 0 : TORO_ENOMEM;
}

/* ---- feedback (store.h, version 3) ---- */

/* Feedback lives on the question item (feedback_rating, feedback_comment,
 * feedback_at) with fb_pk = "FEEDBACK" and fb_key = "<at, 20 digits>#<id>",
 * the keys of the sparse global secondary index "feedback": only rated
 * questions are in it, in (feedback.at, question_id) order, which is the
 * export's order, so a page is one Query from a key (since or the previous
 * page's last), the rating a filter. A GSI because the export crosses users
 * (an LSI stays in one user's partition); one constant partition key is a
 * hot key only at rates a rating button never reaches. It is eventually
 * consistent: an export may miss a rating given a moment ago. */
#define FB_PK "FEEDBACK"

static char *fb_key_str(int64_t at, const char *question_id)
{
    return fmt_dup("%020lld#%s", (long long)(at > 0 ? at : 0), question_id);
}

/* One conditional UpdateItem (exists and completed); when refused, a read
 * tells a missing question (TORO_ENOTFOUND: also another user's, whose key
 * differs) from one not completed (TORO_ECONFLICT; completed is terminal). */
static int s_set_feedback(toro_store_t *s, const char *user_id, const char *question_id, const toro_feedback_t *fb)
{
    ddb_t *d = (ddb_t *)s;
    char *k = fb_key_str(fb->at, question_id);
    json_t *v = json_pack("{s:o,s:o,s:o,s:o,s:o}", ":r", av_s(toro_rating_name(fb->rating)), ":at", av_n(fb->at),
                          ":pk", av_s(FB_PK), ":k", av_s(k), ":done", av_s("completed"));
    free(k);
    if (v && fb->comment)
        json_object_set_new(v, ":c", av_s(fb->comment));
    const char *expr = fb->comment
                           ? "SET feedback_rating = :r, feedback_comment = :c, feedback_at = :at, fb_pk = :pk, fb_key = :k"
                           : "SET feedback_rating = :r, feedback_at = :at, fb_pk = :pk, fb_key = :k"
                             " REMOVE feedback_comment";
    json_t *req = v ? json_pack("{s:s,s:o,s:s,s:s,s:{s:s},s:o}", "TableName", d->t_questions, "Key",
                                q_key(user_id, question_id), "UpdateExpression", expr, "ConditionExpression",
                                "attribute_exists(PK) AND #s = :done", "ExpressionAttributeNames", "#s", "status",
                                "ExpressionAttributeValues", v)
                    : NULL;
    if (!req)
        return TORO_ENOMEM;
    int rc = call(d, "UpdateItem", req, NULL);
    if (rc != TORO_ECONFLICT)
        return rc;
    json_t *reply = NULL, *item = NULL;
    rc = get_item(d, d->t_questions, q_key(user_id, question_id), "#s", &reply, &item);
    json_decref(reply);
    return rc == 0 ? TORO_ECONFLICT : rc;
}

typedef struct q_list {
    toro_question_t *arr;
    size_t n, max;
} q_list_t;

static int add_question(json_t *item, void *ud)
{
    q_list_t *l = ud;
    assert(l->n < l->max);
    item_to_question(item, &l->arr[l->n++]);
    return l->n >= l->max ? EACH_STOP : 0;
}

static int s_list_feedback(toro_store_t *s, const toro_feedback_query_t *q, toro_question_t **items, size_t *n)
{
    ddb_t *d = (ddb_t *)s;
    char *since = fb_key_str(q->since, ""), *after = q->after_id ? fb_key_str(q->after_at, q->after_id) : NULL;
    bool use_after = after && since && strcmp(after, since) >= 0; /* the later of the two starts */
    q_list_t l = {calloc((size_t)q->limit, sizeof *l.arr), 0, (size_t)q->limit};
    json_t *req = json_pack("{s:s,s:s,s:s,s:{s:o,s:o},s:i}", "TableName", d->t_questions, "IndexName", "feedback",
                            "KeyConditionExpression", use_after ? "fb_pk = :pk AND fb_key > :k"
                                                                : "fb_pk = :pk AND fb_key >= :k",
                            "ExpressionAttributeValues", ":pk", av_s(FB_PK), ":k", av_s(use_after ? after : since),
                            "Limit", q->limit);
    free(since);
    free(after);
    if (req && q->rating != TORO_RATING_NONE) {
        json_object_set_new(req, "FilterExpression", json_string("feedback_rating = :r"));
        json_object_set_new(json_object_get(req, "ExpressionAttributeValues"), ":r",
                            av_s(toro_rating_name(q->rating)));
    }
    int rc = TORO_ENOMEM;
    if (l.arr)
        rc = each_item(d, "Query", req, add_question, &l, NULL);
    else
        json_decref(req);
    if (rc) {
        toro_questions_free(l.arr, l.n);
        return rc;
    }
    *items = l.arr;
    *n = l.n;
    return 0;
}

/* ---- conversations (store.h, version 4) ---- */

/* A question of a conversation carries conversation_id and conv_key (see
 * conv_key()), the sort key of the sparse local secondary index
 * "conversation" (PK, conv_key): a conversation's turns are one strongly
 * consistent Query (begins_with its id), either way round, so a follow-up
 * sees the turn just written, as history does. An LSI (not a GSI) for that
 * consistency and because every route reads one user's conversations; it
 * can only be made with the table, so tables created before conversations
 * must be recreated (`toro db migrate` creates them with it).
 * list_conversations reads the user's whole index (projected to three
 * attributes) and groups in memory: the items come grouped by conversation,
 * oldest first, so one pass gives title, created_at, count and latest
 * activity, then a sort by activity. Cost: one user's conversation
 * questions per page; a summary item per conversation would make it
 * O(page) but needs a read-modify-write of the latest activity with every
 * question (left for when histories grow that long). */

static int s_list_turns(toro_store_t *s, const char *user_id, const char *conversation_id, bool newest_first,
                        int limit, const char *cursor, toro_question_t **items, size_t *n, char **next)
{
    ddb_t *d = (ddb_t *)s;
    char *prefix = fmt_dup("%s#", conversation_id);
    json_t *req = json_pack("{s:s,s:s,s:s,s:{s:o,s:o},s:b,s:b,s:i}", "TableName", d->t_questions, "IndexName",
                            "conversation", "KeyConditionExpression", "PK = :pk AND begins_with(conv_key, :c)",
                            "ExpressionAttributeValues", ":pk", av_s2("USER#", user_id), ":c", av_s(prefix),
                            "ScanIndexForward", !newest_first, "ConsistentRead", 1, "Limit", limit + 1);
    free(prefix);
    int rc = req ? set_start(req, user_id, conversation_id, cursor) : TORO_ENOMEM;
    if (rc) {
        json_decref(req);
        return rc;
    }
    return query_page(d, req, limit, items, n, next);
}

typedef struct conv_acc {
    toro_conversation_t *arr;
    size_t n, cap;
    const char *user_id;
} conv_acc_t;

/* One question of the index (oldest first per conversation) into a. */
static int add_turn(json_t *item, void *ud)
{
    conv_acc_t *a = ud;
    const char *cid = get_s(item, "conversation_id");
    toro_conversation_t *c = a->n ? &a->arr[a->n - 1] : NULL;
    if (!cid)
        return 0;
    if (!c || strcmp(c->conversation_id, cid) != 0) {
        toro_conversation_t *grown = toro_grow(a->arr, &a->cap, a->n, sizeof *a->arr, 16);
        if (!grown)
            return TORO_ENOMEM;
        a->arr = grown;
        c = &a->arr[a->n++];
        memset(c, 0, sizeof *c);
        c->conversation_id = strdup(cid);
        c->user_id = strdup(a->user_id);
        c->title = dup_s(item, "question");
        c->created_at = get_n(item, "created_at");
        if (!c->conversation_id || !c->user_id || !c->title)
            return TORO_ENOMEM;
    }
    c->n_questions++;
    c->last_activity_at = get_n(item, "created_at");
    return 0;
}

/* Latest activity first, ties by conversation id descending (as SQL). */
static int conv_cmp(const void *x, const void *y)
{
    const toro_conversation_t *a = x, *b = y;
    if (a->last_activity_at != b->last_activity_at)
        return a->last_activity_at > b->last_activity_at ? -1 : 1;
    return -strcmp(a->conversation_id, b->conversation_id);
}

/* Moves the conversations after the cursor (at, id; id NULL: all), at most
 * limit + 1, out of a (cleared) into a new page array *out. */
static int conv_window(conv_acc_t *a, int64_t at, const char *id, int limit, toro_conversation_t **out,
                       size_t *count)
{
    size_t i = 0, k = 0;
    while (id && i < a->n && (a->arr[i].last_activity_at > at ||
                              (a->arr[i].last_activity_at == at && strcmp(a->arr[i].conversation_id, id) >= 0)))
        i++;
    *out = calloc((size_t)limit + 1, sizeof **out);
    if (!*out)
        return TORO_ENOMEM;
    for (; i < a->n && k <= (size_t)limit; i++, k++) {
        (*out)[k] = a->arr[i];
        memset(&a->arr[i], 0, sizeof a->arr[i]);
    }
    *count = k;
    return 0;
}

static int s_list_conversations(toro_store_t *s, const char *user_id, int limit, const char *cursor,
                                toro_conversation_t **items, size_t *n, char **next)
{
    ddb_t *d = (ddb_t *)s;
    int64_t c_at = 0;
    char c_id[64] = "";
    conv_acc_t a = {.user_id = user_id};
    toro_conversation_t *page = NULL;
    size_t count = 0;
    if (cursor && toro_history_cursor_decode(cursor, &c_at, c_id) != 0)
        return TORO_EINVAL;
    json_t *req = json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s},s:{s:o},s:b}", "TableName", d->t_questions, "IndexName",
                            "conversation", "KeyConditionExpression", "PK = :pk", "ProjectionExpression",
                            "#c, #q, created_at", "ExpressionAttributeNames", "#c", "conversation_id", "#q",
                            "question", "ExpressionAttributeValues", ":pk", av_s2("USER#", user_id),
                            "ConsistentRead", 1);
    int rc = each_item(d, "Query", req, add_turn, &a, NULL);
    if (rc == 0 && a.n > 1)
        qsort(a.arr, a.n, sizeof *a.arr, conv_cmp);
    if (rc == 0)
        rc = conv_window(&a, c_at, cursor ? c_id : NULL, limit, &page, &count);
    toro_conversations_free(a.arr, a.n);
    if (rc)
        return rc;
    return toro_store_conversations_page(page, count, limit, items, n, next);
}

/* ---- counts, ping ---- */

static int count_status(json_t *item, void *ud)
{
    long *counts = ud;
    toro_status_t st;
    if (toro_status_parse(get_s(item, "status"), &st) == 0)
        counts[st]++;
    return 0;
}

static int s_count(toro_store_t *s, long counts[TORO_STATUS_COUNT])
{
    ddb_t *d = (ddb_t *)s;
    for (int i = 0; i < TORO_STATUS_COUNT; i++)
        counts[i] = 0;
    json_t *req = json_pack("{s:s,s:s,s:s,s:{s:s},s:{s:o}}", "TableName", d->t_questions, "ProjectionExpression", "#s",
                            "FilterExpression", "begins_with(PK, :u)", "ExpressionAttributeNames", "#s", "status",
                            "ExpressionAttributeValues", ":u", av_s("USER#"));
    int rc = each_item(d, "Scan", req, count_status, counts, NULL);
    if (rc)
        for (int i = 0; i < TORO_STATUS_COUNT; i++)
            counts[i] = 0;
    return rc;
}

static int s_ping(toro_store_t *s)
{
    ddb_t *d = (ddb_t *)s;
    return call(d, "DescribeTable", json_pack("{s:s}", "TableName", d->t_questions), NULL);
}

/* ---- the outbox (bus/outbox.h) ---- */

static ddb_t *of_outbox(toro_outbox_t *o) { return (ddb_t *)(void *)((char *)o - offsetof(ddb_t, outbox)); }

static json_t *id_key(int64_t id) { return json_pack("{s:o}", "id", av_n(id)); }

typedef struct id_list {
    int64_t *ids;
    size_t n, cap, max; /* max: stop there (0 = all) */
} id_list_t;

static int add_id(json_t *item, void *ud)
{
    id_list_t *l = ud;
    int64_t *grown = toro_grow(l->ids, &l->cap, l->n, sizeof *l->ids, 64);
    if (!grown)
        return TORO_ENOMEM;
    l->ids = grown;
    l->ids[l->n++] = get_n(item, "id");
    return l->max && l->n >= l->max ? EACH_STOP : 0;
}

static int id_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

#define READY "available_at <= :now AND leased_until <= :now"

/* Ids of ready events, oldest first: topic's through the by_topic index (the
 * first max + 32), every topic's by a Scan (all of them). */
static int ready_ids(ddb_t *d, const char *topic, int max, int64_t now, id_list_t *l)
{
    json_t *req;
    if (topic) {
        l->max = (size_t)max + 32;
        req = json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:o,s:o},s:b}", "TableName", d->t_outbox, "IndexName", "by_topic",
                        "KeyConditionExpression", "topic = :t", "FilterExpression", READY, "ProjectionExpression",
                        "id", "ExpressionAttributeValues", ":t", av_s(topic), ":now", av_n(now), "ScanIndexForward",
                        1);
    } else {
        req = json_pack("{s:s,s:s,s:s,s:{s:o}}", "TableName", d->t_outbox, "FilterExpression",
                        "attribute_exists(topic) AND " READY, "ProjectionExpression", "id",
                        "ExpressionAttributeValues", ":now", av_n(now));
    }
    int rc = each_item(d, topic ? "Query" : "Scan", req, add_id, l, NULL);
    if (rc == 0 && l->n > 1)
        qsort(l->ids, l->n, sizeof *l->ids, id_cmp);
    return rc;
}

/* Leases one event if it is still ready: 0 with *e filled, TORO_ECONFLICT
 * when another claimer (or a release delay) got there first. */
static int lease_one(ddb_t *d, int64_t id, int64_t now, int lease_ms, toro_outbox_event_t *e)
{
    json_t *reply = NULL;
    int rc = call(d, "UpdateItem",
                  json_pack("{s:s,s:o,s:s,s:s,s:{s:o,s:o,s:o},s:s}", "TableName", d->t_outbox, "Key", id_key(id),
                            "UpdateExpression", "SET leased_until = :until, deliveries = deliveries + :one",
                            "ConditionExpression", "attribute_exists(topic) AND " READY,
                            "ExpressionAttributeValues", ":until", av_n(now + lease_ms), ":one", av_n(1), ":now",
                            av_n(now), "ReturnValues", "ALL_NEW"),
                  &reply);
    json_t *a = rc == 0 ? json_object_get(reply, "Attributes") : NULL;
    if (a) {
        memset(e, 0, sizeof *e);
        e->id = id;
        snprintf(e->msg_id, sizeof e->msg_id, "%s", get_s(a, "msg_id") ? get_s(a, "msg_id") : "");
        e->topic = dup_s(a, "topic");
        e->payload = dup_s(a, "payload");
        e->deliveries = (int)get_n(a, "deliveries");
        e->created_at = get_n(a, "created_at");
        if (!e->topic || !e->payload) {
            toro_outbox_events_clear(e, 1);
            rc = TORO_ENOMEM;
        }
    } else if (rc == 0) {
        rc = TORO_EIO;
    }
    json_decref(reply);
    return rc;
}

static int o_claim(toro_outbox_t *o, const char *topic, int max, int lease_ms, toro_outbox_event_t *out, size_t *n)
{
    ddb_t *d = of_outbox(o);
    int rc = 0;
    bool lost = true;
    assert(max > 0 && out && n);
    *n = 0;
    for (int round = 0; rc == 0 && lost && *n < (size_t)max && round < 3; round++) {
        id_list_t l = {0};
        int64_t now = toro_now_ms();
        lost = false;
        rc = ready_ids(d, topic, max, now, &l);
        for (size_t i = 0; rc == 0 && i < l.n && *n < (size_t)max; i++) {
            int r = lease_one(d, l.ids[i], now, lease_ms, &out[*n]);
            if (r == 0)
                (*n)++;
            else if (r == TORO_ECONFLICT)
                lost = true; /* another claimer took it: look again */
            else
                rc = r;
        }
        free(l.ids);
    }
    if (rc) { /* events leased by a half-done claim come back when the lease ends */
        toro_outbox_events_clear(out, *n);
        *n = 0;
    }
    return rc;
}

static int o_mark(toro_outbox_t *o, const int64_t *ids, size_t n)
{
    ddb_t *d = of_outbox(o);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = call(d, "DeleteItem", json_pack("{s:s,s:o}", "TableName", d->t_outbox, "Key", id_key(ids[i])), NULL);
    return rc;
}

/* An UpdateItem of the outbox item id that is a no-op when the item is gone. */
static int update_event(ddb_t *d, int64_t id, const char *expr, const char *cond, json_t *values)
{
    json_t *req = json_pack("{s:s,s:o,s:s,s:s,s:o}", "TableName", d->t_outbox, "Key", id_key(id), "UpdateExpression",
                            expr, "ConditionExpression", cond, "ExpressionAttributeValues", values);
    int rc = call(d, "UpdateItem", req, NULL);
    return rc == TORO_ECONFLICT ? 0 : rc;
}

static int o_release(toro_outbox_t *o, int64_t id, int delay_ms)
{
    ddb_t *d = of_outbox(o);
    if (id != 0)
        return update_event(d, id, "SET available_at = :at, leased_until = :z", "attribute_exists(id)",
                            json_pack("{s:o,s:o}", ":at", av_n(toro_now_ms() + (delay_ms > 0 ? delay_ms : 0)), ":z",
                                      av_n(0)));
    id_list_t l = {0};
    int rc = each_item(d, "Scan",
                       json_pack("{s:s,s:s,s:s,s:{s:o}}", "TableName", d->t_outbox, "FilterExpression",
                                 "leased_until > :z", "ProjectionExpression", "id", "ExpressionAttributeValues", ":z",
                                 av_n(0)),
                       add_id, &l, NULL);
    for (size_t i = 0; rc == 0 && i < l.n; i++)
        rc = update_event(d, l.ids[i], "SET leased_until = :z", "attribute_exists(id)",
                          json_pack("{s:o}", ":z", av_n(0)));
    free(l.ids);
    return rc;
}

/* The item stays as a dead letter: topic moves to dead_topic, so it leaves
 * the by_topic index, every claim and depth. */
static int o_bury(toro_outbox_t *o, int64_t id, const char *reason)
{
    ddb_t *d = of_outbox(o);
    return update_event(d, id, "SET dead_topic = topic, reason = :r, dead_at = :now REMOVE topic",
                        "attribute_exists(topic)",
                        json_pack("{s:o,s:o}", ":r", av_s(reason ? reason : ""), ":now", av_n(toro_now_ms())));
}

static int o_depth(toro_outbox_t *o, const char *topic, long *out)
{
    ddb_t *d = of_outbox(o);
    long count = 0;
    int rc = each_item(d, "Query",
                       json_pack("{s:s,s:s,s:s,s:s,s:{s:o}}", "TableName", d->t_outbox, "IndexName", "by_topic",
                                 "KeyConditionExpression", "topic = :t", "Select", "COUNT",
                                 "ExpressionAttributeValues", ":t", av_s(topic)),
                       NULL, NULL, &count);
    *out = rc == 0 ? count : 0;
    return rc;
}

static const toro_outbox_ops_t ddb_outbox_ops = {
    .version = TORO_OUTBOX_OPS_VERSION,
    .claim = o_claim,
    .mark_published = o_mark,
    .release = o_release,
    .bury = o_bury,
    .depth = o_depth,
    .wait = NULL,
};

static toro_outbox_t *s_outbox(toro_store_t *s) { return &((ddb_t *)s)->outbox; }

static void s_close(toro_store_t *s)
{
    ddb_t *d = (ddb_t *)s;
    if (!d)
        return;
    toro_aws_creds_clear(&d->cred);
    free(d->url);
    free(d->region);
    free(d->t_questions);
    free(d->t_connections);
    free(d->t_outbox);
    free(d);
}

static const toro_store_ops_t ddb_ops = {
    .name = "dynamodb",
    .version = TORO_STORE_OPS_VERSION,
    .outbox = s_outbox,
    .create_question = s_create,
    .get_question = s_get,
    .list_questions = s_list,
    .transition = s_transition,
    .put_connection = s_put_conn,
    .delete_connection = s_del_conn,
    .list_connections = s_list_conn,
    .delete_node_connections = s_del_node,
    .count_by_status = s_count,
    .ping = s_ping,
    .close = s_close,
    .set_feedback = s_set_feedback,
    .list_feedback = s_list_feedback,
    .list_conversations = s_list_conversations,
    .list_turns = s_list_turns,
};

/* ---- the URL ---- */

/* Sets one query parameter of the URL; TORO_EINVAL for an unknown one. */
static int url_param(ddb_t *d, const char *kv, size_t len, char **endpoint, char **err)
{
    static const char *const names[] = {"endpoint", "questions", "connections", "outbox"};
    char **slots[] = {endpoint, &d->t_questions, &d->t_connections, &d->t_outbox};
    const char *eq = memchr(kv, '=', len);
    for (size_t i = 0; eq && i < 4; i++) {
        if ((size_t)(eq - kv) == strlen(names[i]) && strncmp(kv, names[i], (size_t)(eq - kv)) == 0) {
            free(*slots[i]);
            *slots[i] = strndup(eq + 1, len - (size_t)(eq - kv) - 1);
            return *slots[i] ? 0 : TORO_ENOMEM;
        }
    }
    toro_set_err(err, "--store dynamodb://: unknown parameter '%.*s' (endpoint, questions, connections, outbox)",
                 (int)len, kv);
    return TORO_EINVAL;
}

/* The endpoint's URL (default: the region's public one), checked; core/aws_http
 * takes host and path from it. */
static int set_endpoint(ddb_t *d, const char *endpoint, char **err)
{
    d->url = endpoint ? strdup(endpoint) : fmt_dup("https://dynamodb.%s.amazonaws.com/", d->region);
    if (!d->url)
        return TORO_ENOMEM;
    const char *p = strstr(d->url, "://");
    if (!p || (strncmp(d->url, "http://", 7) != 0 && strncmp(d->url, "https://", 8) != 0) || !p[3] || p[3] == '/') {
        toro_set_err(err, "--store dynamodb://: endpoint must be http[s]://HOST[:PORT][/PATH], not '%s'", d->url);
        return TORO_EINVAL;
    }
    return 0;
}

static int parse_url(ddb_t *d, const char *url, char **err)
{
    const char *rest = url + strlen(SCHEME), *q = strchr(rest, '?');
    char *endpoint = NULL;
    int rc = 0;
    d->region = q ? strndup(rest, (size_t)(q - rest)) : strdup(rest);
    if (d->region && !*d->region) {
        const char *env = getenv("AWS_REGION") && *getenv("AWS_REGION") ? getenv("AWS_REGION")
                                                                          : getenv("AWS_DEFAULT_REGION");
        free(d->region);
        d->region = env && *env ? strdup(env) : NULL;
        if (!env || !*env) {
            toro_set_err(err, "--store %s names no region (dynamodb://REGION, or set AWS_REGION)", url);
            return TORO_EINVAL;
        }
    }
    if (!d->region)
        return TORO_ENOMEM;
    for (const char *p = q ? q + 1 : NULL; rc == 0 && p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len)
            rc = url_param(d, p, len, &endpoint, err);
        p = amp ? amp + 1 : NULL;
    }
    if (rc == 0)
        rc = set_endpoint(d, endpoint, err);
    free(endpoint);
    return rc;
}

static int table_default(char **slot, const char *name)
{
    if (!*slot || !**slot) {
        free(*slot);
        *slot = strdup(name);
    }
    return *slot ? 0 : TORO_ENOMEM;
}

int toro_store_dynamodb_open(const char *url, toro_store_t **out, char **err)
{
    assert(url && out);
    *out = NULL;
    if (strncmp(url, SCHEME, strlen(SCHEME)) != 0) {
        toro_set_err(err, "not a dynamodb:// URL: '%s'", url);
        return TORO_EINVAL;
    }
    ddb_t *d = calloc(1, sizeof *d);
    if (!d)
        return TORO_ENOMEM;
    d->super.ops = &ddb_ops;
    d->outbox.ops = &ddb_outbox_ops;
    d->timeout_ms = 10000;
    int rc = parse_url(d, url, err);
    if (rc == 0)
        rc = table_default(&d->t_questions, "toro_questions");
    if (rc == 0)
        rc = table_default(&d->t_connections, "toro_connections");
    if (rc == 0)
        rc = table_default(&d->t_outbox, "toro_outbox");
    if (rc == 0)
        rc = toro_aws_creds_from_env(&d->cred, err);
    if (rc) {
        s_close(&d->super);
        return rc;
    }
    *out = &d->super;
    return 0;
}

/* ---- toro db migrate ---- */

/* CreateTable bodies (TableName is added): the keys and indexes above. */
static const char *const table_specs[3] = {
    "{\"AttributeDefinitions\":[{\"AttributeName\":\"PK\",\"AttributeType\":\"S\"},"
    "{\"AttributeName\":\"SK\",\"AttributeType\":\"S\"},{\"AttributeName\":\"created_key\",\"AttributeType\":\"S\"},"
    "{\"AttributeName\":\"conv_key\",\"AttributeType\":\"S\"},{\"AttributeName\":\"fb_pk\",\"AttributeType\":\"S\"},"
    "{\"AttributeName\":\"fb_key\",\"AttributeType\":\"S\"}],"
    "\"KeySchema\":[{\"AttributeName\":\"PK\",\"KeyType\":\"HASH\"},{\"AttributeName\":\"SK\",\"KeyType\":\"RANGE\"}],"
    "\"LocalSecondaryIndexes\":[{\"IndexName\":\"history\",\"KeySchema\":[{\"AttributeName\":\"PK\",\"KeyType\":"
    "\"HASH\"},{\"AttributeName\":\"created_key\",\"KeyType\":\"RANGE\"}],\"Projection\":{\"ProjectionType\":\"ALL\"}},"
    "{\"IndexName\":\"conversation\",\"KeySchema\":[{\"AttributeName\":\"PK\",\"KeyType\":\"HASH\"},"
    "{\"AttributeName\":\"conv_key\",\"KeyType\":\"RANGE\"}],\"Projection\":{\"ProjectionType\":\"ALL\"}}],"
    "\"GlobalSecondaryIndexes\":[{\"IndexName\":\"feedback\",\"KeySchema\":[{\"AttributeName\":\"fb_pk\","
    "\"KeyType\":\"HASH\"},{\"AttributeName\":\"fb_key\",\"KeyType\":\"RANGE\"}],\"Projection\":{\"ProjectionType\":"
    "\"ALL\"}}],\"BillingMode\":\"PAY_PER_REQUEST\"}",
    "{\"AttributeDefinitions\":[{\"AttributeName\":\"PK\",\"AttributeType\":\"S\"},"
    "{\"AttributeName\":\"SK\",\"AttributeType\":\"S\"},{\"AttributeName\":\"connection_id\",\"AttributeType\":\"S\"},"
    "{\"AttributeName\":\"node\",\"AttributeType\":\"S\"}],"
    "\"KeySchema\":[{\"AttributeName\":\"PK\",\"KeyType\":\"HASH\"},{\"AttributeName\":\"SK\",\"KeyType\":\"RANGE\"}],"
    "\"GlobalSecondaryIndexes\":[{\"IndexName\":\"by_connection\",\"KeySchema\":[{\"AttributeName\":"
    "\"connection_id\",\"KeyType\":\"HASH\"}],\"Projection\":{\"ProjectionType\":\"KEYS_ONLY\"}},"
    "{\"IndexName\":\"by_node\",\"KeySchema\":[{\"AttributeName\":\"node\",\"KeyType\":\"HASH\"}],"
    "\"Projection\":{\"ProjectionType\":\"KEYS_ONLY\"}}],\"BillingMode\":\"PAY_PER_REQUEST\"}",
    "{\"AttributeDefinitions\":[{\"AttributeName\":\"id\",\"AttributeType\":\"N\"},"
    "{\"AttributeName\":\"topic\",\"AttributeType\":\"S\"}],"
    "\"KeySchema\":[{\"AttributeName\":\"id\",\"KeyType\":\"HASH\"}],"
    "\"GlobalSecondaryIndexes\":[{\"IndexName\":\"by_topic\",\"KeySchema\":[{\"AttributeName\":\"topic\","
    "\"KeyType\":\"HASH\"},{\"AttributeName\":\"id\",\"KeyType\":\"RANGE\"}],\"Projection\":{\"ProjectionType\":"
    "\"ALL\"}}],\"BillingMode\":\"PAY_PER_REQUEST\"}",
};

/* The first index of spec that table (DescribeTable's "Table") lacks
 * (caller frees), or NULL: a table made by an older toro. */
static char *missing_index(json_t *table, const char *spec)
{
    static const char *const kinds[2] = {"LocalSecondaryIndexes", "GlobalSecondaryIndexes"};
    json_t *want = json_loads(spec, 0, NULL), *ix, *have;
    char *name = NULL;
    size_t i, j;
    assert(want); /* the specs are constants */
    for (int k = 0; k < 2 && !name; k++) {
        json_array_foreach(json_object_get(want, kinds[k]), i, ix) {
            const char *n = json_string_value(json_object_get(ix, "IndexName"));
            bool found = false;
            json_array_foreach(json_object_get(table, kinds[k]), j, have) {
                const char *h = json_string_value(json_object_get(have, "IndexName"));
                found = found || (h && n && strcmp(h, n) == 0);
            }
            if (!found && !name)
                name = strdup(n ? n : "?");
        }
    }
    json_decref(want);
    return name;
}

/* Creates table (already there: 0, *created untouched) and waits until it
 * is ACTIVE (60 s at most). TORO_EINVAL (with *err) when an existing table
 * lacks an index of spec: it must be recreated (an LSI cannot be added). */
static int create_table(ddb_t *d, const char *table, const char *spec, int *created, char **err)
{
    char *missing = NULL;
    json_t *req = json_loads(spec, 0, NULL), *reply = NULL;
    assert(req); /* the specs are constants */
    json_object_set_new(req, "TableName", json_string(table));
    int rc = call(d, "CreateTable", req, &reply);
    if (rc == 0)
        (*created)++;
    else if (rc == TORO_ECONFLICT && strcmp(error_type(reply), "ResourceInUseException") == 0)
        rc = 0;
    json_decref(reply);
    for (int i = 0; rc == 0 && i < 120; i++) {
        rc = call(d, "DescribeTable", json_pack("{s:s}", "TableName", table), &reply);
        const char *st = json_string_value(json_object_get(json_object_get(reply, "Table"), "TableStatus"));
        bool active = st && strcmp(st, "ACTIVE") == 0;
        if (active)
            missing = missing_index(json_object_get(reply, "Table"), spec);
        json_decref(reply);
        if (rc || active)
            break;
        toro_sleep_ms(500);
    }
    if (rc)
        toro_set_err(err, "cannot create DynamoDB table %s at %s (%s)", table, d->url, toro_strerror(rc));
    else if (missing)
        toro_set_err(err, "DynamoDB table %s at %s has no index '%s' (made by an older toro): recreate it and run "
                     "`toro db migrate` again (a local index exists only with its table)", table, d->url, missing);
    rc = rc == 0 && missing ? TORO_EINVAL : rc;
    free(missing);
    return rc;
}

int toro_store_dynamodb_migrate(const char *url, int *created, char **err)
{
    toro_store_t *s = NULL;
    int n = 0;
    int rc = toro_store_dynamodb_open(url, &s, err);
    ddb_t *d = (ddb_t *)s;
    const char *tables[3] = {d ? d->t_questions : NULL, d ? d->t_connections : NULL, d ? d->t_outbox : NULL};
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = create_table(d, tables[i], table_specs[i], &n, err);
    if (created)
        *created = n;
    toro_store_close(s);
    return rc;
}
