/* lambda_runtime.h: the client side of the AWS Lambda Runtime API, which a
 * custom runtime (provided.al2023) speaks to the Lambda service over HTTP on
 * AWS_LAMBDA_RUNTIME_API (host:port): GET the next invocation, POST its
 * response or its error, or POST an init error before the first one. Plain
 * HTTP over libcurl, no signing (the endpoint is local to the sandbox). It
 * knows no event shapes (lambda_events.h) and no handler (lambda_cmd.c). */
#ifndef TORO_CLI_LAMBDA_RUNTIME_H
#define TORO_CLI_LAMBDA_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

typedef struct toro_lrt toro_lrt_t;

/* One invocation handed out by the Runtime API. */
typedef struct toro_lrt_invocation {
    char request_id[128]; /* Lambda-Runtime-Aws-Request-Id */
    int64_t deadline_ms;  /* Lambda-Runtime-Deadline-Ms (0 when absent) */
    char *event;          /* the event JSON (owned; toro_lrt_invocation_clear) */
    size_t event_len;
} toro_lrt_invocation_t;

/* Why: the runtime needs one client for its whole life. api is host:port
 * (AWS_LAMBDA_RUNTIME_API). On failure (TORO_EINVAL: empty or too long;
 * TORO_ENOMEM) *out is untouched. */
int toro_lrt_new(const char *api, toro_lrt_t **out);
/* NULL is a no-op. */
void toro_lrt_free(toro_lrt_t *c);

/* Why: the runtime's loop. Blocks until the service hands out an
 * invocation. 0 with *inv filled; TORO_EIO when the API did not answer 200
 * or gave no request id (then *inv is zeroed). */
int toro_lrt_next(toro_lrt_t *c, toro_lrt_invocation_t *inv);
/* Why: ends an invocation with the handler's JSON result. 0 when the
 * service accepted it (202), TORO_EIO otherwise. */
int toro_lrt_respond(toro_lrt_t *c, const char *request_id, const char *body);
/* Why: ends an invocation as failed (Lambda then retries or, for SQS,
 * makes the whole batch visible again). type is errorType, message its
 * errorMessage. 0 on 202, TORO_EIO otherwise. */
int toro_lrt_error(toro_lrt_t *c, const char *request_id, const char *type, const char *message);
/* Why: the function cannot start (bad configuration): reported once before
 * exiting, so the failure reads in the function's status. */
int toro_lrt_init_error(toro_lrt_t *c, const char *type, const char *message);

void toro_lrt_invocation_clear(toro_lrt_invocation_t *inv);

#endif
