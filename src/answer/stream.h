/* stream.h: incremental parsers for the two streamed response formats of the
 * model providers, fed with whatever bytes one network read delivered:
 * - server-sent events (OpenAI-compatible chat completions with
 *   `stream: true`): `data:` lines joined per event, an empty line ends it;
 * - the AWS event-stream binary framing (Bedrock ConverseStream): a 12-byte
 *   prelude (total length, headers length, CRC32 of the first 8 bytes),
 *   typed headers, the payload and a CRC32 of the whole message.
 * Both hold at most one unfinished event or frame, bounded by a cap, and
 * hand every complete one to a callback. They know nothing of JSON or of
 * what an event means (openai.c and bedrock.c do). */
#ifndef TORO_ANSWER_STREAM_H
#define TORO_ANSWER_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "answer/answer.h" /* toro_answer_delta_fn */
#include "core/strbuf.h"

#define TORO_SSE_EVENT_MAX (256u << 10)  /* bytes of one event's data */
#define TORO_EVS_FRAME_MAX (1u << 20)    /* bytes of one event-stream message */

/* ---- server-sent events ---------------------------------------------------- */

/* One event's data (the `data:` lines joined with '\n', NUL-terminated).
 * Returns 0 to go on, or a negative code that stops the parser. */
typedef int (*toro_sse_event_fn)(void *ud, const char *data, size_t len);

typedef struct toro_sse {
    toro_sse_event_fn on_event;
    void *ud;
    toro_strbuf_t line;  /* the unfinished line */
    toro_strbuf_t data;  /* the unfinished event's data */
    bool has_data;       /* a data: field was seen in this event */
    bool cr;             /* the last byte was '\r' (a "\r\n" pair is one break) */
    int err;             /* first error; later feeds return it */
} toro_sse_t;

/* Why: a parser calling on_event(ud, ...) per event. Free with toro_sse_clear. */
void toro_sse_init(toro_sse_t *p, toro_sse_event_fn on_event, void *ud);
void toro_sse_clear(toro_sse_t *p);
/* Why: feeds n bytes (any split). Lines end with "\n", "\r\n" or "\r";
 * comment lines (":") and fields other than data are ignored. Returns 0,
 * TORO_ETOOBIG past TORO_SSE_EVENT_MAX, TORO_ENOMEM, or the callback's code;
 * after an error every later call returns it and nothing more is parsed. */
int toro_sse_feed(toro_sse_t *p, const char *buf, size_t n);
/* Why: end of the body: a final event not closed by an empty line is
 * dispatched (as browsers do not, but servers that end without one exist). */
int toro_sse_finish(toro_sse_t *p);

/* ---- AWS event-stream ------------------------------------------------------ */

/* One decoded message. Strings point into the parser's buffer, valid during
 * the callback only; absent headers are NULL. */
typedef struct toro_evs_msg {
    const char *message_type;   /* ":message-type": "event", "exception", "error" */
    const char *event_type;     /* ":event-type", e.g. "contentBlockDelta" */
    const char *exception_type; /* ":exception-type", e.g. "throttlingException" */
    const char *error_code;     /* ":error-code" (message-type error) */
    const char *payload;        /* not NUL-terminated */
    size_t payload_len;
} toro_evs_msg_t;

typedef int (*toro_evs_msg_fn)(void *ud, const toro_evs_msg_t *m);

typedef struct toro_evs {
    toro_evs_msg_fn on_msg;
    void *ud;
    unsigned char *buf; /* the unfinished frame */
    size_t n, cap;
    int err;
} toro_evs_t;

void toro_evs_init(toro_evs_t *p, toro_evs_msg_fn on_msg, void *ud);
void toro_evs_clear(toro_evs_t *p);
/* Why: feeds n bytes (any split). Returns 0; TORO_EFORMAT for a bad prelude
 * or message CRC, impossible lengths or malformed headers; TORO_ETOOBIG for
 * a frame over TORO_EVS_FRAME_MAX; TORO_ENOMEM; or the callback's code.
 * After an error every later call returns it. */
int toro_evs_feed(toro_evs_t *p, const void *buf, size_t n);
/* Why: end of the body: TORO_EFORMAT when a frame was cut short. */
int toro_evs_finish(toro_evs_t *p);

/* ---- the text of a streamed answer ------------------------------------------- */

/* What openai.c and bedrock.c keep while a reply streams. */
typedef struct toro_stream_text {
    toro_strbuf_t text;            /* the answer so far (capped) */
    toro_answer_delta_fn on_delta; /* borrowed */
    void *ud;
    bool done;                     /* the provider's end-of-answer event was seen */
    char *err;                     /* why the stream was refused (owned), or NULL */
} toro_stream_text_t;

void toro_stream_text_init(toro_stream_text_t *t, toro_answer_delta_fn on_delta, void *ud);
/* Why: one piece of answer text: kept and passed to on_delta. Returns 0 or
 * the buffer's error (TORO_ENOMEM, TORO_ETOOBIG). */
int toro_stream_text_add(toro_stream_text_t *t, const char *s, size_t n);
/* Why: the end of an exchange that ended with rc (0 when the stream was
 * read to its end): on 0 the whole text moves to *text (caller frees); on
 * failure the stream's own reason, when it has one, replaces *err. Clears t.
 * Returns the final code. */
int toro_stream_text_end(toro_stream_text_t *t, int rc, char **text, char **err);

/* Why: CRC-32 (IEEE, zlib's crc32) of n bytes continuing from crc (0 to start). */
uint32_t toro_crc32(uint32_t crc, const void *buf, size_t n);

#endif
