/* test_http.c: the gateway's HTTP layer (http.c, framing.c,
 * http_response.c) through its real entry point, gw_http_on_input, on a
 * socketpair: good requests, pipelining, bodies in pieces, Content-Length
 * rules, Host checks, oversize heads, chunked refusal, control bytes; and
 * the parser and query decoder on their own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>

#include "gateway/http.h"
#include "harness.h"

static harness_t H;
static gw_http_t http;
static int served;                 /* requests the serve callback saw */
static char seen[8][128];          /* "METHOD path?query body" of each */

static int serve(void *owner, gw_client_t *cl, gw_request_t *req)
{
    (void)owner;
    if (served < 8)
        snprintf(seen[served], sizeof seen[0], "%s %s?%s %.*s", req->method, req->path, req->query,
                 (int)req->body_len, req->body);
    served++;
    gw_response_t r = {0};
    gw_http_ok(&r, 200, json_object());
    return gw_http_send(&H.cs, cl, &r, req->request_id);
}

static void on_open(void *owner, gw_conn_t *c)
{
    harness_t *h = owner;
    c->half_close_ok = true;
    c->rmax = h->cfg.max_header + h->cfg.max_body + 4096;
}

static int on_input(void *owner, gw_conn_t *c)
{
    (void)owner;
    return gw_http_on_input(&http, gw_client_of(c));
}

static gw_conn_ops_t ops = {.on_open = on_open, .on_input = on_input};

static int setup(void **state)
{
    (void)state;
    harness_open(&H, &ops);
    http = (gw_http_t){.conns = &H.cs, .cfg = &H.cfg, .serve = serve, .owner = NULL};
    served = 0;
    memset(seen, 0, sizeof seen);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    harness_close(&H);
    return 0;
}

/* Feeds s whole (-1: the socket is done, as after a refusal); returns what the peer read. */
static const char *send_text(const char *s)
{
    long n = harness_feed(&H, s, strlen(s));
    assert_true(n == (long)strlen(s) || (n == -1 && H.cl->conn.closing));
    harness_read(&H);
    return H.out;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void test_good_request(void **state)
{
    (void)state;
    const char *out = send_text("GET /questions?limit=5 HTTP/1.1\r\nHost: localhost:8080\r\nX-Request-Id: abc-1\r\n\r\n");
    assert_int_equal(served, 1);
    assert_string_equal(seen[0], "GET /questions?limit=5 ");
    assert_true(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(out, "X-Request-Id: abc-1\r\n"));
    assert_non_null(strstr(out, "Connection: keep-alive\r\n"));
    assert_false(H.cl->conn.closing);
}

static void test_pipelining_and_body_in_pieces(void **state)
{
    (void)state;
    const char *two = "GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n\r\n"
                      "POST /b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhel";
    send_text(two);
    assert_int_equal(served, 1); /* the second waits for its body */
    const char *out = send_text("lo");
    assert_int_equal(served, 2);
    assert_string_equal(seen[0], "GET /a? ");
    assert_string_equal(seen[1], "POST /b? hello");
    assert_int_equal(count(out, "HTTP/1.1 200 OK"), 2);
    assert_int_equal(H.cl->conn.rlen, 0);
}

/* Sends request and expects one refusal with status, nothing served and a
 * socket that closes. */
static void expect_refusal(const char *request, int status)
{
    const char *out = send_text(request);
    char line[64];
    snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
    assert_true(strncmp(out, line, strlen(line)) == 0);
    assert_non_null(strstr(out, "Connection: close\r\n"));
    assert_int_equal(served, 0);
    assert_true(H.cl == NULL || H.cl->conn.closing);
}

static void test_bad_content_length(void **state)
{
    static const char *const bad[] = {"abc", "-1", "027", "5, 6", "+5", "1234567890123456", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char req[256];
        snprintf(req, sizeof req, "POST /q HTTP/1.1\r\nHost: localhost\r\nContent-Length: %s\r\n\r\n", bad[i]);
        expect_refusal(req, 400);
        teardown(state);
        setup(state);
    }
    /* identical repeats fold into one value */
    send_text("POST /q HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok");
    assert_int_equal(served, 1);
    assert_string_equal(seen[0], "POST /q? ok");
}

static void test_body_too_large(void **state)
{
    (void)state;
    char req[256];
    snprintf(req, sizeof req, "POST /q HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n\r\n", H.cfg.max_body + 1);
    expect_refusal(req, 413);
}

static void test_host_rules(void **state)
{
    expect_refusal("GET / HTTP/1.1\r\n\r\n", 400); /* HTTP/1.1 needs a Host */
    teardown(state), setup(state);
    expect_refusal("GET / HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n", 400);
    teardown(state), setup(state);
    expect_refusal("GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n", 421); /* DNS rebinding */
    teardown(state), setup(state);
    send_text("GET / HTTP/1.0\r\n\r\n"); /* HTTP/1.0 may omit it */
    assert_int_equal(served, 1);
    assert_true(gw_host_allowed(&H.cfg, "[::1]:8080"));
    assert_true(gw_host_allowed(&H.cfg, "127.0.0.1"));
    assert_false(gw_host_allowed(&H.cfg, "127.0.0.2"));
    H.cfg.cors_origins = "https://app.example:8443";
    assert_true(gw_host_allowed(&H.cfg, "app.example"));
    H.cfg.allowed_hosts = "*";
    assert_true(gw_host_allowed(&H.cfg, "anything"));
}

static void test_oversize_heads(void **state)
{
    size_t n = H.cfg.max_header + 100;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memset(big + 19, 'a', n - 19);
    big[n] = '\0';
    expect_refusal(big, 431); /* no end of head within the cap */
    free(big);
    teardown(state), setup(state);
    char many[4096] = "GET / HTTP/1.1\r\nHost: localhost\r\n";
    for (int i = 0; i < GW_MAX_HEADERS; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "H%d: v\r\n", i);
    snprintf(many + strlen(many), sizeof many - strlen(many), "\r\n");
    expect_refusal(many, 431); /* too many headers */
    teardown(state), setup(state);
    char target[5000] = "GET /";
    memset(target + 5, 'x', 4200);
    snprintf(target + 4205, sizeof target - 4205, " HTTP/1.1\r\nHost: localhost\r\n\r\n");
    expect_refusal(target, 414);
}

static void test_chunked_and_control_bytes(void **state)
{
    expect_refusal("POST /q HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n", 411);
    teardown(state), setup(state);
    expect_refusal("GET / HTTP/1.1\nHost: localhost\r\n\r\n", 400); /* bare LF */
    teardown(state), setup(state);
    expect_refusal("GET / HTTP/1.1\r\nHost: local\x01host\r\n\r\n", 400);
}

static void test_parser(void **state)
{
    (void)state;
    gw_request_t req;
    const char ok[] = "PUT /p?x=1 HTTP/1.0\r\nA:  spaced  \r\nB:\r\n\r\n";
    assert_int_equal(gw_http_parse(ok, sizeof ok - 1, &req), 0);
    assert_string_equal(req.method, "PUT");
    assert_string_equal(req.path, "/p");
    assert_string_equal(req.query, "x=1");
    assert_int_equal(req.minor_version, 0);
    assert_string_equal(gw_header(&req, "a"), "spaced");
    assert_string_equal(gw_header(&req, "B"), "");
    assert_null(gw_header(&req, "C"));
    gw_request_clear(&req);
    gw_request_clear(&req); /* twice is safe */
    static const char *const bad[] = {"get / HTTP/1.1\r\n\r\n", "GET / HTTP/2.0\r\n\r\n", "GET x HTTP/1.1\r\n\r\n",
                                      "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
                                      "GET /\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(gw_http_parse(bad[i], strlen(bad[i]), &req), 400);
        gw_request_clear(&req);
        assert_null(req.head);
    }
    assert_true(gw_header_has_token("keep-alive, Upgrade", "upgrade"));
    assert_false(gw_header_has_token("upgraded", "upgrade"));
}

static void test_query(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(gw_query_get("a=1&user_id=ana%40x+y&b", "user_id", out, sizeof out), 1);
    assert_string_equal(out, "ana@x y");
    assert_int_equal(gw_query_get("a=1&b", "b", out, sizeof out), 1);
    assert_string_equal(out, "");
    assert_int_equal(gw_query_get("a=1", "b", out, sizeof out), 0);
    assert_int_equal(gw_query_get("b=%zz", "b", out, sizeof out), -1);
    assert_int_equal(gw_query_get("b=%00", "b", out, sizeof out), -1);
    assert_int_equal(gw_query_get("b=0123456789abcdef", "b", out, sizeof out), -1); /* does not fit */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelining_and_body_in_pieces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_content_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_heads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_and_control_bytes, setup, teardown),
        cmocka_unit_test(test_parser),
        cmocka_unit_test(test_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
