/* loop.c: epoll, timers, wake-ups and the after-round hook (see loop.h).
 * Nothing here parses or writes a byte of any protocol. */
#include "gateway/loop.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

#define MAX_TIMERS 4
#define MAX_EVENTS 256
#define MAX_WAIT_MS 1000

typedef struct timer {
    int64_t due_ms;     /* 0 = disarmed */
    int period_ms;      /* 0 = one-shot */
    gw_loop_fn *fn;
    void *data;
} loop_timer_t;

struct gw_loop {
    int epoll_fd;
    gw_watch_t wake;            /* the eventfd other threads write */
    volatile int stopping;
    loop_timer_t timers[MAX_TIMERS];
    int n_timers;
    struct epoll_event *ready;  /* the round being served (gw_loop_del scrubs it) */
    int n_ready;
    gw_loop_fn *after_round, *on_wake;
    void *after_round_data, *on_wake_data;
};

static uint32_t epoll_mask(unsigned mask)
{
    return (mask & GW_LOOP_READ ? EPOLLIN | EPOLLRDHUP : 0) | (mask & GW_LOOP_WRITE ? EPOLLOUT : 0);
}

static void on_wake_fd(gw_watch_t *w, unsigned ready)
{
    (void)ready;
    gw_loop_t *loop = w->data;
    uint64_t v;
    ssize_t r = read(w->fd, &v, sizeof v);
    (void)r;
    if (loop->on_wake)
        loop->on_wake(loop->on_wake_data);
}

int gw_loop_new(gw_loop_t **out)
{
    gw_loop_t *loop = calloc(1, sizeof *loop);
    if (!loop)
        return -ENOMEM;
    loop->wake.fd = -1;
    loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->epoll_fd < 0 || wake_fd < 0 ||
        gw_loop_add(loop, &loop->wake, wake_fd, GW_LOOP_READ, on_wake_fd, loop) != 0) {
        int err = errno;
        if (wake_fd >= 0)
            close(wake_fd);
        if (loop->epoll_fd >= 0)
            close(loop->epoll_fd);
        free(loop);
        return -err;
    }
    *out = loop;
    return 0;
}

void gw_loop_free(gw_loop_t *loop)
{
    if (!loop)
        return;
    close(loop->wake.fd);
    close(loop->epoll_fd);
    free(loop);
}

int gw_loop_add(gw_loop_t *loop, gw_watch_t *w, int fd, unsigned mask, gw_watch_fn *fn, void *data)
{
    assert(fn && fd >= 0);
    w->fd = fd;
    w->mask = mask;
    w->fn = fn;
    w->data = data;
    struct epoll_event ev = {.events = epoll_mask(mask), .data.ptr = w};
    return epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

void gw_loop_modify(gw_loop_t *loop, gw_watch_t *w, unsigned mask)
{
    if (mask == w->mask)
        return;
    struct epoll_event ev = {.events = epoll_mask(mask), .data.ptr = w};
    epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, w->fd, &ev);
    w->mask = mask;
}

/* A watch removed while its round is served may still have an event further
 * on in it (freed memory by the time it is reached): that event is dropped
 * (as libuv does). */
void gw_loop_del(gw_loop_t *loop, gw_watch_t *w)
{
    epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
    for (int i = 0; i < loop->n_ready; i++)
        if (loop->ready[i].data.ptr == w)
            loop->ready[i].data.ptr = NULL;
}

int gw_loop_timer(gw_loop_t *loop, int64_t due_ms, int period_ms, gw_loop_fn *fn, void *data)
{
    if (loop->n_timers == MAX_TIMERS)
        return -1;
    loop->timers[loop->n_timers] = (loop_timer_t){.due_ms = due_ms, .period_ms = period_ms, .fn = fn, .data = data};
    return loop->n_timers++;
}

void gw_loop_timer_at(gw_loop_t *loop, int id, int64_t due_ms)
{
    assert(id >= 0 && id < loop->n_timers);
    loop->timers[id].due_ms = due_ms;
}

void gw_loop_after_round(gw_loop_t *loop, gw_loop_fn *fn, void *data)
{
    loop->after_round = fn;
    loop->after_round_data = data;
}

void gw_loop_on_wake(gw_loop_t *loop, gw_loop_fn *fn, void *data)
{
    loop->on_wake = fn;
    loop->on_wake_data = data;
}

void gw_loop_wake(gw_loop_t *loop)
{
    uint64_t one = 1;
    ssize_t w = write(loop->wake.fd, &one, sizeof one);
    (void)w;
}

void gw_loop_stop(gw_loop_t *loop)
{
    loop->stopping = 1;
    gw_loop_wake(loop);
}

/* How long the next epoll_wait may sleep: until the first armed timer, at most a second. */
static int wait_ms(const gw_loop_t *loop, int64_t now)
{
    int64_t wait = MAX_WAIT_MS;
    for (int i = 0; i < loop->n_timers; i++) {
        int64_t due = loop->timers[i].due_ms;
        if (due && due - now < wait)
            wait = due - now;
    }
    return wait < 0 ? 0 : (int)wait;
}

static void run_timers(gw_loop_t *loop)
{
    for (int i = 0; i < loop->n_timers; i++) {
        loop_timer_t *t = &loop->timers[i];
        int64_t now = toro_mono_ms();
        if (!t->due_ms || now < t->due_ms)
            continue;
        t->due_ms = t->period_ms ? now + t->period_ms : 0; /* before fn, which may re-arm it */
        t->fn(t->data);
    }
}

int gw_loop_run(gw_loop_t *loop)
{
    struct epoll_event evs[MAX_EVENTS];
    while (!loop->stopping) {
        int n = epoll_wait(loop->epoll_fd, evs, MAX_EVENTS, wait_ms(loop, toro_mono_ms()));
        if (n < 0 && errno != EINTR) {
            toro_log_error("gateway", NULL, "epoll_wait failed: %s", strerror(errno));
            return TORO_EIO;
        }
        loop->ready = evs;
        loop->n_ready = n > 0 ? n : 0;
        for (int i = 0; i < n; i++) {
            gw_watch_t *w = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            if (!w)
                continue; /* removed earlier in this round */
            unsigned ready = (e & (EPOLLIN | EPOLLRDHUP) ? GW_LOOP_READ : 0) | (e & EPOLLOUT ? GW_LOOP_WRITE : 0) |
                             (e & (EPOLLERR | EPOLLHUP) ? GW_LOOP_HUP : 0);
            w->fn(w, ready);
        }
        loop->n_ready = 0;
        if (loop->after_round)
            loop->after_round(loop->after_round_data);
        run_timers(loop);
    }
    return 0;
}
