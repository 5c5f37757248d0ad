/* loop.h: the gateway's event loop, which knows no protocol (after redis
 * ae.c): file descriptors watched with epoll, each with the callback its
 * owner registered; timers (periodic or one-shot, millisecond resolution);
 * a wake-up another thread may trigger; and a hook run after each round.
 * It owns no sockets: callers own their descriptors and gw_watch_t records.
 * One thread runs the loop; only gw_loop_wake and gw_loop_stop may be called
 * from other threads (and from signal handlers). Linux-only (epoll). */
#ifndef TORO_GATEWAY_LOOP_H
#define TORO_GATEWAY_LOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct gw_loop gw_loop_t;

/* Interest and readiness flags of a watch. */
enum {
    GW_LOOP_READ = 1,  /* readable, or the peer half-closed (EPOLLIN | EPOLLRDHUP) */
    GW_LOOP_WRITE = 2, /* writable (EPOLLOUT) */
    GW_LOOP_HUP = 4,   /* reported only: error or hang-up (EPOLLERR | EPOLLHUP), even with no interest */
};

struct gw_watch;
/* Called for each ready watch with the GW_LOOP_ flags that hold; may
 * remove and free any watch, its own included. */
typedef void gw_watch_fn(struct gw_watch *w, unsigned ready);
typedef void gw_loop_fn(void *data);

/* One watched descriptor: caller-owned memory that must outlive its
 * registration (typically a field of the caller's record). */
typedef struct gw_watch {
    int fd;
    unsigned mask;      /* interest registered now (GW_LOOP_READ | GW_LOOP_WRITE) */
    gw_watch_fn *fn;
    void *data;         /* the owner's, for fn */
} gw_watch_t;

/* 0 and *out, or a negative errno (nothing allocated). */
int gw_loop_new(gw_loop_t **out);
/* Closes the loop's own descriptors; watched ones stay the callers'. NULL is a no-op. */
void gw_loop_free(gw_loop_t *loop);

/* Starts watching fd with interest mask. 0, or -1 (errno set; w is not registered). */
int gw_loop_add(gw_loop_t *loop, gw_watch_t *w, int fd, unsigned mask, gw_watch_fn *fn, void *data);
/* Changes the interest (a syscall only when it differs). */
void gw_loop_modify(gw_loop_t *loop, gw_watch_t *w, unsigned mask);
/* Stops watching w->fd (before the caller closes it). */
void gw_loop_del(gw_loop_t *loop, gw_watch_t *w);

/* Why: the accept back-off and the once-a-second sweep. Adds a timer that
 * calls fn(data) at due_ms (monotonic; 0 = disarmed) and then, when
 * period_ms > 0, every period_ms. Returns its id, or -1 when the (small,
 * fixed) table is full. */
int gw_loop_timer(gw_loop_t *loop, int64_t due_ms, int period_ms, gw_loop_fn *fn, void *data);
/* Re-arms timer id for due_ms (0 disarms it). */
void gw_loop_timer_at(gw_loop_t *loop, int id, int64_t due_ms);

/* Why: the group commit runs once per round, after every ready watch was
 * served and before timers. One hook; NULL removes it. */
void gw_loop_after_round(gw_loop_t *loop, gw_loop_fn *fn, void *data);
/* Why: other threads hand work to the loop thread (toro_gateway_post): fn
 * runs on the loop thread after gw_loop_wake. */
void gw_loop_on_wake(gw_loop_t *loop, gw_loop_fn *fn, void *data);
/* Thread- and async-signal-safe. */
void gw_loop_wake(gw_loop_t *loop);
/* Thread- and async-signal-safe: gw_loop_run returns after the current round. */
void gw_loop_stop(gw_loop_t *loop);

/* Runs rounds until gw_loop_stop. 0, or TORO_EIO when epoll fails. */
int gw_loop_run(gw_loop_t *loop);

#endif
