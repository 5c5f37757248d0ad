/* limits.h: per-key token buckets (requests per user per minute, WebSocket
 * messages per connection) and per-key counters (WebSocket connections per
 * user). Used only by the gateway's loop thread: no locking. The table is
 * bounded; when full, idle entries (full bucket, zero count) are dropped. */
#ifndef TORO_GATEWAY_LIMITS_H
#define TORO_GATEWAY_LIMITS_H

#include <stddef.h>
#include <stdint.h>

typedef struct toro_limits toro_limits_t;

/* Why: rate = tokens per second, burst = bucket size; rate <= 0 disables
 * the bucket (take always succeeds). max_keys bounds memory. */
toro_limits_t *toro_limits_new(double rate, double burst, size_t max_keys);
void toro_limits_free(toro_limits_t *l);

/* Takes one token for key. 0 = allowed; otherwise the whole seconds (>= 1)
 * until a token is available (the Retry-After value). */
int toro_limits_take(toro_limits_t *l, const char *key, int64_t now_ms);

/* Why: users and client addresses share one table but never one bucket (a
 * user named "127.0.0.1" must not spend the loopback address's budget):
 * takes a token for "kind:key", kind being "user" or "ip". */
int toro_limits_take_kind(toro_limits_t *l, const char *kind, const char *key, int64_t now_ms);

/* Counter per key (connections per user): add delta, return the new value. */
int toro_limits_count(toro_limits_t *l, const char *key, int delta);

#endif
