/* test_ws.c: the WebSocket frame codec (ws_frame.c) through its real entry
 * point, gw_ws_on_frames, on a socketpair: masking, fragmentation, control
 * frames, close codes, size caps, and what the peer reads back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "gateway/ws.h"
#include "harness.h"

#define MAX_MESSAGE 1000

static harness_t H;
static int messages;
static char last[2048];
static size_t last_len;

static int on_message(void *arg, gw_client_t *cl, const char *data, size_t len)
{
    (void)arg, (void)cl;
    messages++;
    assert_true(len < sizeof last);
    memcpy(last, data, len);
    last_len = len;
    return 0;
}

static void on_open(void *owner, gw_conn_t *c)
{
    (void)owner;
    c->rmax = MAX_MESSAGE + 16 + 4096;
    gw_client_of(c)->kind = GW_CLIENT_WS;
}

static int on_input(void *owner, gw_conn_t *c)
{
    harness_t *h = owner;
    return gw_ws_on_frames(&h->cs, gw_client_of(c), MAX_MESSAGE, on_message, NULL);
}

static gw_conn_ops_t ops = {.on_open = on_open, .on_input = on_input};

static int setup(void **state)
{
    (void)state;
    harness_open(&H, &ops);
    messages = 0;
    last_len = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_close(&H);
    return 0;
}

/* A client frame: first byte b0 (FIN, RSV, opcode), masked unless unmasked. */
static size_t frame(unsigned char *out, int b0, const char *payload, size_t len, bool unmasked)
{
    static const unsigned char key[4] = {0x11, 0x22, 0x33, 0x44};
    size_t hl = 2;
    out[0] = (unsigned char)b0;
    if (len < 126) {
        out[1] = (unsigned char)len;
    } else {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        hl = 4;
    }
    if (unmasked) {
        memcpy(out + hl, payload, len);
        return hl + len;
    }
    out[1] |= 0x80;
    memcpy(out + hl, key, 4);
    for (size_t i = 0; i < len; i++)
        out[hl + 4 + i] = (unsigned char)(payload[i] ^ key[i % 4]);
    return hl + 4 + len;
}

static void feed_frame(int b0, const char *payload, size_t len)
{
    unsigned char buf[4096];
    size_t n = frame(buf, b0, payload, len, false);
    long took = harness_feed(&H, buf, n);
    assert_true(took == (long)n || (took == -1 && H.cl->conn.closing));
}

/* The close frame the server sent last: its code (0 for an empty close). */
static int server_close_code(void)
{
    harness_read(&H);
    const unsigned char *o = (const unsigned char *)H.out;
    size_t off = 0;
    int code = -1;
    while (off + 2 <= H.out_len) {
        size_t len = o[off + 1] & 0x7f, hl = len == 126 ? 4 : 2;
        if (len == 126)
            len = (size_t)o[off + 2] << 8 | o[off + 3];
        if ((o[off] & 0x0f) == 8)
            code = len >= 2 ? o[off + hl] << 8 | o[off + hl + 1] : 0;
        off += hl + len;
    }
    return code;
}

static void test_masked_text(void **state)
{
    (void)state;
    feed_frame(0x81, "{\"action\":\"ping\"}", 17);
    assert_int_equal(messages, 1);
    assert_int_equal(last_len, 17);
    assert_memory_equal(last, "{\"action\":\"ping\"}", 17);
    assert_false(H.cl->conn.closing);
    assert_int_equal(H.cl->conn.rlen, 0);
}

static void test_unmasked_refused(void **state)
{
    (void)state;
    unsigned char buf[64];
    size_t n = frame(buf, 0x81, "hi", 2, true);
    harness_feed(&H, buf, n);
    assert_int_equal(messages, 0);
    assert_int_equal(server_close_code(), 1002);
    assert_true(H.cl->conn.closing);
}

static void test_fragmentation(void **state)
{
    feed_frame(0x01, "hel", 3); /* text, not final */
    feed_frame(0x89, "p", 1);   /* a ping between fragments is allowed */
    feed_frame(0x80, "lo", 2);  /* final continuation */
    assert_int_equal(messages, 1);
    assert_memory_equal(last, "hello", 5);
    harness_read(&H);
    assert_int_equal((unsigned char)H.out[0], 0x8A); /* the pong */
    assert_int_equal(H.out[2], 'p');
    teardown(state), setup(state);
    feed_frame(0x80, "x", 1); /* continuation with nothing to continue */
    assert_int_equal(server_close_code(), 1002);
    teardown(state), setup(state);
    feed_frame(0x01, "a", 1);
    feed_frame(0x81, "b", 1); /* a new message inside a fragmented one */
    assert_int_equal(server_close_code(), 1002);
    assert_int_equal(messages, 0);
}

static void test_control_frames(void **state)
{
    char big[126];
    memset(big, 'p', sizeof big);
    feed_frame(0x89, big, sizeof big); /* ping over 125 bytes */
    assert_int_equal(server_close_code(), 1002);
    teardown(state), setup(state);
    feed_frame(0x09, "p", 1); /* fragmented ping */
    assert_int_equal(server_close_code(), 1002);
    teardown(state), setup(state);
    feed_frame(0x8A, "x", 1); /* unsolicited pong: ignored */
    feed_frame(0xC1, "x", 1); /* reserved bit */
    assert_int_equal(server_close_code(), 1002);
    teardown(state), setup(state);
    feed_frame(0x83, "x", 1); /* reserved opcode */
    assert_int_equal(server_close_code(), 1002);
}

static void test_close_codes(void **state)
{
    static const struct {
        const char *payload;
        size_t len;
        int answer;
    } cases[] = {
        {"\x03\xe8" "bye", 5, 1000}, /* echoed */
        {"\x0f\xa0", 2, 4000},        /* application code: echoed */
        {"", 0, 0},                   /* empty close: empty answer */
        {"\x03", 1, 1002},            /* one byte */
        {"\x03\xed", 2, 1002},        /* 1005 must never be sent */
        {"\x03\xf8", 2, 1002},        /* 1016 is unassigned */
        {"\x03\xe8\xff", 3, 1007},    /* reason not UTF-8 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        feed_frame(0x88, cases[i].payload, cases[i].len);
        assert_int_equal(server_close_code(), cases[i].answer);
        assert_true(H.cl->conn.closing);
        teardown(state), setup(state);
    }
}

static void test_oversize_and_binary(void **state)
{
    char big[MAX_MESSAGE + 1];
    memset(big, 'a', sizeof big);
    feed_frame(0x81, big, sizeof big); /* one frame over the cap */
    assert_int_equal(server_close_code(), 1009);
    teardown(state), setup(state);
    feed_frame(0x01, big, 600);
    feed_frame(0x80, big, 600); /* fragments over the cap together */
    assert_int_equal(server_close_code(), 1009);
    assert_int_equal(messages, 0);
    teardown(state), setup(state);
    feed_frame(0x82, "\x01\x02", 2);
    assert_int_equal(server_close_code(), 1003);
}

static void test_partial_frame_waits(void **state)
{
    (void)state;
    unsigned char buf[64];
    size_t n = frame(buf, 0x81, "abcdef", 6, false);
    assert_int_equal(harness_feed(&H, buf, 5), 5);
    assert_int_equal(messages, 0);
    assert_int_equal(H.cl->conn.rlen, 5); /* nothing consumed yet */
    assert_int_equal(harness_feed(&H, buf + 5, n - 5), (long)(n - 5));
    assert_int_equal(messages, 1);
    assert_memory_equal(last, "abcdef", 6);
}

static void test_send_and_backlog(void **state)
{
    (void)state;
    char text[300];
    memset(text, 't', sizeof text);
    assert_int_equal(gw_ws_send(&H.cs, H.cl, 1, text, sizeof text), 0);
    harness_read(&H);
    assert_int_equal((unsigned char)H.out[0], 0x81);
    assert_int_equal((unsigned char)H.out[1], 126); /* 16-bit length, unmasked */
    assert_int_equal(((unsigned char)H.out[2] << 8) | (unsigned char)H.out[3], 300);
    assert_int_equal(H.cl->acc.bytes_out, 304);
    H.cfg.max_ws_backlog = 100; /* a client this far behind is dropped */
    assert_int_equal(gw_ws_send(&H.cs, H.cl, 1, text, sizeof text), -1);
    char key[64];
    assert_int_equal(gw_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", key), 0); /* RFC 6455 1.3 */
    assert_string_equal(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(gw_ws_accept_key("", key), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_masked_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unmasked_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fragmentation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_and_binary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_frame_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_and_backlog, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
