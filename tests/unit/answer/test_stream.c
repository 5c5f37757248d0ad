/* test_stream.c: the incremental parsers of streamed provider replies
 * (answer/stream.c): server-sent events and the AWS event-stream framing.
 * Each input is fed whole, one byte at a time and split in two at every
 * offset, and must give the same events; corrupt input (bad CRC, impossible
 * lengths, a frame cut short, an event over the cap) is refused. The
 * event-stream frames below were built by Python's struct and binascii.crc32
 * (an implementation independent of toro_crc32). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer/stream.h"
#include "core/error.h"
#include "core/strbuf.h"

/* Frames: 1) event contentBlockDelta with every header type and payload
 * {"delta":{"text":"Olá "}}, 2) exception throttlingException, 3) an empty
 * frame (no headers, no payload). */
static const unsigned char FRAMES[] = {0x00,0x00,0x00,0xd5,0x00,0x00,0x00,0xa9,0x8b,0x3d,0x34,0x0c,0x0b,0x3a,0x65,0x76,0x65,0x6e,0x74,0x2d,0x74,0x79,0x70,0x65,0x07,0x00,0x11,0x63,0x6f,0x6e,0x74,0x65,0x6e,0x74,0x42,0x6c,0x6f,0x63,0x6b,0x44,0x65,0x6c,0x74,0x61,0x0d,0x3a,0x63,0x6f,0x6e,0x74,0x65,0x6e,0x74,0x2d,0x74,0x79,0x70,0x65,0x07,0x00,0x10,0x61,0x70,0x70,0x6c,0x69,0x63,0x61,0x74,0x69,0x6f,0x6e,0x2f,0x6a,0x73,0x6f,0x6e,0x0d,0x3a,0x6d,0x65,0x73,0x73,0x61,0x67,0x65,0x2d,0x74,0x79,0x70,0x65,0x07,0x00,0x05,0x65,0x76,0x65,0x6e,0x74,0x04,0x66,0x6c,0x61,0x67,0x00,0x03,0x69,0x6e,0x74,0x04,0x00,0x00,0x00,0x07,0x03,0x62,0x69,0x6e,0x06,0x00,0x03,0x00,0x01,0x02,0x02,0x74,0x73,0x08,0x00,0x00,0x01,0x8b,0xcf,0xe5,0x68,0x00,0x04,0x75,0x75,0x69,0x64,0x09,0x00,0x01,0x02,0x03,0x04,0x05,0x06,0x07,0x08,0x09,0x0a,0x0b,0x0c,0x0d,0x0e,0x0f,0x01,0x62,0x02,0x05,0x01,0x73,0x03,0x00,0x05,0x01,0x6c,0x05,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x01,0x66,0x01,0x7b,0x22,0x64,0x65,0x6c,0x74,0x61,0x22,0x3a,0x20,0x7b,0x22,0x74,0x65,0x78,0x74,0x22,0x3a,0x20,0x22,0x4f,0x6c,0xc3,0xa1,0x20,0x22,0x7d,0x7d,0x65,0xa3,0x58,0x59,0x00,0x00,0x00,0x67,0x00,0x00,0x00,0x40,0x38,0xec,0x35,0xa4,0x0f,0x3a,0x65,0x78,0x63,0x65,0x70,0x74,0x69,0x6f,0x6e,0x2d,0x74,0x79,0x70,0x65,0x07,0x00,0x13,0x74,0x68,0x72,0x6f,0x74,0x74,0x6c,0x69,0x6e,0x67,0x45,0x78,0x63,0x65,0x70,0x74,0x69,0x6f,0x6e,0x0d,0x3a,0x6d,0x65,0x73,0x73,0x61,0x67,0x65,0x2d,0x74,0x79,0x70,0x65,0x07,0x00,0x09,0x65,0x78,0x63,0x65,0x70,0x74,0x69,0x6f,0x6e,0x7b,0x22,0x6d,0x65,0x73,0x73,0x61,0x67,0x65,0x22,0x3a,0x22,0x73,0x6c,0x6f,0x77,0x20,0x64,0x6f,0x77,0x6e,0x22,0x7d,0x56,0x9a,0xab,0xbb,0x00,0x00,0x00,0x10,0x00,0x00,0x00,0x00,0x05,0xc2,0x48,0xeb,0x7d,0x98,0xc8,0xff};
#define FRAME1_LEN 213
#define FRAME2_LEN 103
static const unsigned char BIG_PRELUDE[] = {0x00,0x20,0x00,0x00,0x00,0x00,0x00,0x00,0xaa,0x9f,0xe6,0xf5};
static const unsigned char BAD_HLEN[] = {0x00,0x00,0x00,0x14,0x00,0x00,0x00,0x09,0x89,0x9e,0x56,0x8f,0x61,0x62,0x63,0x64,0xe2,0x82,0x7c,0x76};

/* ---- recording callbacks ------------------------------------------------------ */

typedef struct rec {
    toro_strbuf_t log; /* one line per event */
    int stop_at;       /* refuse the nth event (1-based) with TORO_EIO; 0 never */
    int n;
} rec_t;

static int on_sse(void *ud, const char *data, size_t len)
{
    rec_t *r = ud;
    assert_int_equal(strlen(data), len); /* NUL-terminated, no NUL inside here */
    if (++r->n == r->stop_at)
        return TORO_EIO;
    toro_strbuf_add(&r->log, "<", 1);
    toro_strbuf_add(&r->log, data, len);
    toro_strbuf_add(&r->log, ">", 1);
    return 0;
}

static int on_evs(void *ud, const toro_evs_msg_t *m)
{
    rec_t *r = ud;
    char line[512];
    if (++r->n == r->stop_at)
        return TORO_EIO;
    snprintf(line, sizeof line, "[%s|%s|%s|%.*s]", m->message_type ? m->message_type : "-",
             m->event_type ? m->event_type : "-", m->exception_type ? m->exception_type : "-", (int)m->payload_len,
             m->payload);
    toro_strbuf_str(&r->log, line);
    return 0;
}

/* ---- server-sent events --------------------------------------------------------- */

static const char SSE[] = ": keep-alive comment\n"
                          "\n"
                          "data: {\"a\":1}\n"
                          "\n"
                          "event: message\r\n"
                          "id: 7\r\n"
                          "data:two\r\n"
                          "data: lines\r\n"
                          "\r\n"
                          "retry: 100\r"
                          "data: cr only\r"
                          "\r"
                          "data\n"
                          "\n"
                          "data: [DONE]\n"
                          "\n";
static const char SSE_EVENTS[] = "<{\"a\":1}><two\nlines><cr only><><[DONE]>";

/* Feeds SSE in pieces: [0, cut) then [cut, n), or byte by byte when cut < 0. */
static char *sse_run(const char *in, size_t n, long cut, int *rc)
{
    rec_t r = {0};
    toro_sse_t p;
    toro_sse_init(&p, on_sse, &r);
    *rc = 0;
    if (cut < 0) {
        for (size_t i = 0; i < n && !*rc; i++)
            *rc = toro_sse_feed(&p, in + i, 1);
    } else {
        *rc = toro_sse_feed(&p, in, (size_t)cut);
        if (!*rc)
            *rc = toro_sse_feed(&p, in + cut, n - (size_t)cut);
    }
    if (!*rc)
        *rc = toro_sse_finish(&p);
    toro_sse_clear(&p);
    toro_strbuf_add(&r.log, "", 0);
    return r.log.s;
}

static void test_sse_any_split(void **state)
{
    (void)state;
    size_t n = strlen(SSE);
    int rc;
    for (long cut = -1; cut <= (long)n; cut++) {
        char *got = sse_run(SSE, n, cut, &rc);
        assert_int_equal(rc, 0);
        if (strcmp(got, SSE_EVENTS) != 0)
            fail_msg("cut %ld: got %s", cut, got);
        free(got);
    }
}

static void test_sse_finish_dispatches_last_event(void **state)
{
    (void)state;
    int rc;
    char *got = sse_run("data: a\n\ndata: tail", 19, -1, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(got, "<a><tail>");
    free(got);
    got = sse_run(": only a comment", 16, 5, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(got, "");
    free(got);
}

static void test_sse_cap_and_callback_error(void **state)
{
    (void)state;
    size_t n = TORO_SSE_EVENT_MAX + 64;
    char *big = malloc(n);
    assert_non_null(big);
    memcpy(big, "data: ", 6);
    memset(big + 6, 'x', n - 6); /* one endless line */
    int rc;
    char *got = sse_run(big, n, (long)n / 3, &rc);
    assert_int_equal(rc, TORO_ETOOBIG);
    free(got);
    free(big);

    rec_t r = {.stop_at = 2};
    toro_sse_t p;
    toro_sse_init(&p, on_sse, &r);
    assert_int_equal(toro_sse_feed(&p, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27), TORO_EIO);
    assert_int_equal(toro_sse_feed(&p, "data: 4\n\n", 9), TORO_EIO); /* sticky */
    assert_int_equal(toro_sse_finish(&p), TORO_EIO);
    assert_int_equal(r.n, 2);
    toro_strbuf_add(&r.log, "", 0);
    assert_string_equal(r.log.s, "<1>");
    free(r.log.s);
    toro_sse_clear(&p);
}

/* ---- event stream ------------------------------------------------------------------ */

static const char EVS_EVENTS[] = "[event|contentBlockDelta|-|{\"delta\": {\"text\": \"Olá \"}}]"
                                 "[exception|-|throttlingException|{\"message\":\"slow down\"}]"
                                 "[-|-|-|]";

static char *evs_run(const unsigned char *in, size_t n, long cut, int *rc)
{
    rec_t r = {0};
    toro_evs_t p;
    toro_evs_init(&p, on_evs, &r);
    *rc = 0;
    if (cut < 0) {
        for (size_t i = 0; i < n && !*rc; i++)
            *rc = toro_evs_feed(&p, in + i, 1);
    } else {
        *rc = toro_evs_feed(&p, in, (size_t)cut);
        if (!*rc)
            *rc = toro_evs_feed(&p, in + cut, n - (size_t)cut);
    }
    if (!*rc)
        *rc = toro_evs_finish(&p);
    toro_evs_clear(&p);
    toro_strbuf_add(&r.log, "", 0);
    return r.log.s;
}

static void test_crc32_vector(void **state)
{
    (void)state;
    assert_int_equal(toro_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(toro_crc32(toro_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    assert_int_equal(toro_crc32(0, "", 0), 0);
}

static void test_evs_any_split(void **state)
{
    (void)state;
    int rc;
    for (long cut = -1; cut <= (long)sizeof FRAMES; cut++) {
        char *got = evs_run(FRAMES, sizeof FRAMES, cut, &rc);
        assert_int_equal(rc, 0);
        if (strcmp(got, EVS_EVENTS) != 0)
            fail_msg("cut %ld: got %s", cut, got);
        free(got);
    }
}

static void test_evs_corruption(void **state)
{
    (void)state;
    unsigned char buf[sizeof FRAMES];
    int rc;
    /* a flipped bit anywhere in frame 2 (prelude, headers, payload or CRC) is refused;
     * frame 1 before it is delivered */
    for (size_t i = FRAME1_LEN; i < FRAME1_LEN + FRAME2_LEN; i++) {
        memcpy(buf, FRAMES, sizeof buf);
        buf[i] ^= 0x10;
        char *got = evs_run(buf, sizeof buf, -1, &rc);
        if (rc != TORO_EFORMAT && rc != TORO_ETOOBIG)
            fail_msg("flip at %zu: rc %d", i, rc);
        assert_non_null(strstr(got, "contentBlockDelta"));
        assert_null(strstr(got, "throttling"));
        free(got);
    }
    char *got = evs_run(FRAMES, FRAME1_LEN + 20, 100, &rc); /* cut short */
    assert_int_equal(rc, TORO_EFORMAT);
    free(got);
    got = evs_run(BIG_PRELUDE, sizeof BIG_PRELUDE, 5, &rc); /* 2 MiB announced: refused at the prelude */
    assert_int_equal(rc, TORO_ETOOBIG);
    free(got);
    got = evs_run(BAD_HLEN, sizeof BAD_HLEN, -1, &rc); /* headers longer than the frame */
    assert_int_equal(rc, TORO_EFORMAT);
    free(got);
}

static void test_evs_callback_error(void **state)
{
    (void)state;
    rec_t r = {.stop_at = 2};
    toro_evs_t p;
    toro_evs_init(&p, on_evs, &r);
    assert_int_equal(toro_evs_feed(&p, FRAMES, sizeof FRAMES), TORO_EIO);
    assert_int_equal(toro_evs_feed(&p, FRAMES, 4), TORO_EIO);
    assert_int_equal(r.n, 2);
    toro_evs_clear(&p);
    free(r.log.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_any_split),         cmocka_unit_test(test_sse_finish_dispatches_last_event),
        cmocka_unit_test(test_sse_cap_and_callback_error), cmocka_unit_test(test_crc32_vector),
        cmocka_unit_test(test_evs_any_split),         cmocka_unit_test(test_evs_corruption),
        cmocka_unit_test(test_evs_callback_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
