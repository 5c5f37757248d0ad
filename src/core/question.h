/* question.h: the question record, its status machine and the validation of
 * a POST /questions body. Pure data and rules: no storage, no transport. */
#ifndef TORO_CORE_QUESTION_H
#define TORO_CORE_QUESTION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/feedback.h"

#define TORO_QUESTION_MAX_CHARS 2000 /* characters (code points), not bytes */
#define TORO_USER_ID_MAX_CHARS 128

typedef enum {
    TORO_STATUS_PENDING = 0,
    TORO_STATUS_PROCESSING,
    TORO_STATUS_COMPLETED,
    TORO_STATUS_ERROR,
    TORO_STATUS_COUNT
} toro_status_t;

/* Why: statuses travel as strings in JSON, SQL and events. name: a static
 * string ("unknown" for a value outside the enum). parse: 0 and *out set, or
 * TORO_EINVAL for an unknown or NULL name with *out untouched. */
const char *toro_status_name(toro_status_t s);
int toro_status_parse(const char *name, toro_status_t *out);

/* Why: the one place that says which status changes are legal. completed and
 * error are terminal; pending -> processing -> completed|error; a question may
 * fail from pending (dead-lettered before it was ever processed); processing
 * -> processing is a retry. Everything else is refused. */
bool toro_status_can_move(toro_status_t from, toro_status_t to);
static inline bool toro_status_is_terminal(toro_status_t s)
{
    return s == TORO_STATUS_COMPLETED || s == TORO_STATUS_ERROR;
}

/* One passage an answer cites, the same struct from the answerer (built from
 * a kb hit) through the process stage to the stores and the JSON of the REST
 * API and the WebSocket. Every string is owned by the struct. */
typedef struct toro_source {
    char *doc_id;
    char *title;
    char *section;
    char *chunk_id;
    char *snippet; /* short excerpt of the chunk shown under the answer */
    double score;
} toro_source_t;

/* Why: answers, records and tests free source arrays the same way. Safe on NULL. */
void toro_sources_free(toro_source_t *s, size_t n);

/* Why: the one wire form of sources (REST, WebSocket, `toro ask --json`):
 * an array of {doc_id, title, section, chunk_id, score, snippet}, a missing
 * string written as "". New reference; NULL when out of memory. */
json_t *toro_sources_to_json(const toro_source_t *s, size_t n);

/* Why: stores keep sources as that JSON text in one column. dump: caller
 * frees, NULL on ENOMEM. load: parses text (NULL = none) into *out (caller
 * frees with toro_sources_free); entries that are not objects are skipped,
 * missing fields stay NULL. 0, TORO_EFORMAT for text that is not a JSON
 * array, or TORO_ENOMEM. */
char *toro_sources_dump(const toro_source_t *s, size_t n);
int toro_sources_load(const char *text, toro_source_t **out, size_t *n);

typedef struct toro_question {
    char *user_id;
    char *question_id;
    char *question;
    toro_status_t status;
    char *answer;           /* NULL until completed */
    toro_source_t *sources; /* cited passages, n_sources of them; NULL until completed */
    size_t n_sources;
    bool found_relevant_docs;
    char *model;            /* answerer that produced the answer */
    char *kb_version;
    char *error_message;    /* NULL unless status is error */
    int attempts;           /* processing attempts so far */
    int64_t created_at;     /* ms since epoch */
    int64_t updated_at;
    int64_t processing_started_at; /* 0 = never */
    int64_t processed_at;          /* 0 = not finished */
    toro_feedback_t feedback;      /* the asker's rating; rating NONE until given */
    char *conversation_id;  /* the conversation it belongs to; NULL for rows older than conversations */
    char *retrieval_query;  /* the standalone query a follow-up was answered with; NULL when the question itself */
} toro_question_t;

/* Why: frees every field; safe on a zeroed struct and NULL. */
void toro_question_clear(toro_question_t *q);
/* Why: lists of records (history pages): clears items[0..n) and frees the
 * array; NULL is a no-op. */
void toro_questions_free(toro_question_t *items, size_t n);

/* Why: the API representation of a record (GET /questions...). New
 * reference, NULL when out of memory. */
json_t *toro_question_to_json(const toro_question_t *q);

/* Why: the ingest stage and its unit tests share one validator. Parses a
 * POST /questions body; on success returns 0 with trimmed *user_id and
 * *question (caller frees both). On failure returns TORO_EINVAL with *err a
 * static, human-readable message. Rules: a JSON object with exactly the string
 * fields user_id and question (no others); both non-empty after trimming;
 * user_id at most 128 characters of [A-Za-z0-9._@:-]; question at most 2000
 * characters; valid UTF-8 without NUL. With user_optional (the user comes
 * from a bearer token) a missing user_id is allowed and *user_id stays NULL. */
int toro_question_validate(const char *body, size_t len, bool user_optional, char **user_id, char **question,
                           const char **err);

/* Why: POST /questions may continue a conversation. The same rules as
 * toro_question_validate, plus the optional string field conversation_id:
 * when present it must be a conversation id (toro_conversation_id_is_valid);
 * *conversation_id (caller frees) is NULL when absent. Outputs as there. */
int toro_question_validate_conv(const char *body, size_t len, bool user_optional, char **user_id, char **question,
                                char **conversation_id, const char **err);

/* Why: conversation ids arrive in bodies and paths; they are UUIDs made by
 * the server (36 characters of lower-case hex digits and dashes). */
bool toro_conversation_id_is_valid(const char *id);

/* One conversation of a user as its history lists it: its questions share
 * conversation_id. Every string is owned. */
typedef struct toro_conversation {
    char *conversation_id;
    char *user_id;
    char *title;              /* the first question */
    long n_questions;
    int64_t created_at;       /* the first question's, ms since epoch */
    int64_t last_activity_at; /* the latest question's created_at */
} toro_conversation_t;

/* Why: conversation pages are freed like question pages; NULL is a no-op. */
void toro_conversations_free(toro_conversation_t *items, size_t n);
/* Why: the API form {conversation_id, title, question_count, created_at,
 * last_activity_at}. New reference, NULL when out of memory. */
json_t *toro_conversation_to_json(const toro_conversation_t *c);
/* Why: the conversation list's pagination token: the history cursor of
 * (last_activity_at, conversation_id), decoded with toro_history_cursor_decode.
 * Caller frees; NULL when out of memory. */
char *toro_conversation_cursor_encode(const toro_conversation_t *last);

/* Why: user ids also arrive in query strings and WebSocket messages. */
bool toro_user_id_is_valid(const char *user_id);

/* Why: the history's pagination token, the same for every store:
 * base64url("<created_at>|<question_id>") of the last item of a page. Opaque
 * to clients. encode: caller frees; NULL when out of memory or the id is too
 * long. decode: 0 with both outputs set, or TORO_EINVAL for a token no store
 * made, with *created_at and question_id untouched. */
char *toro_history_cursor_encode(const toro_question_t *last);
int toro_history_cursor_decode(const char *cursor, int64_t *created_at, char question_id[64]);

/* Events on the bus carry ids only: {"user_id","question_id","status"}.
 * encode: caller frees; NULL when out of memory. decode: 0 with *user_id and
 * *question_id (caller frees both) and *status set; TORO_EFORMAT for a payload
 * that is not such an event, or TORO_ENOMEM: then *user_id and *question_id
 * are NULL and *status is unspecified. */
char *toro_event_encode(const char *user_id, const char *question_id, toro_status_t status);
int toro_event_decode(const char *payload, char **user_id, char **question_id, toro_status_t *status);

#define TORO_TOPIC_PROCESS "process"
#define TORO_TOPIC_NOTIFY "notify"

#endif
