/* health.h: the process's own view of a sick dependency. When store (or
 * bus) writes keep failing (disk full, I/O error, lock timeouts) the workers
 * back off and the gateway answers 503 to new questions; this module holds
 * that "degraded" state with its reason, for /healthz, and logs one line
 * per change of state. It does not retry anything itself. Thread-safe. */
#ifndef TORO_CORE_HEALTH_H
#define TORO_CORE_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Why: the place that sees a database error knows its text ("database or
 * disk is full"); the place that decides to back off does not. Records the
 * latest error text (truncated to 200 bytes); changes no state. */
void toro_health_note(const char *error_text);

/* Why: a write that should have succeeded failed: enter (or stay in) the
 * degraded state. `who` names the caller for the log ("process worker"). */
void toro_health_fail(const char *who);

/* Why: a write succeeded: leave the degraded state (logged once). */
void toro_health_ok(void);

/* Why: /healthz. True while degraded; copies the reason into buf (cut to
 * cap) and the time it started (wall-clock ms) into *since_ms. Healthy:
 * false, and buf and *since_ms are untouched. Either may be NULL. */
bool toro_health_degraded(char *buf, size_t cap, int64_t *since_ms);

/* Why: the workers' back-off between attempts while the store fails:
 * 100 ms doubling to 10 s (no jitter: one worker thread per call site). */
int toro_health_backoff_ms(int failures);

#endif
