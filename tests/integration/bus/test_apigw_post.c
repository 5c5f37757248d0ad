/* test_apigw_post.c: WebSocket push through the API Gateway Management API
 * (toro_apigw_post, bus/apigw_post.c) against apigw_peer.py, a local peer
 * that recomputes the SigV4 signature independently and answers like API
 * Gateway (moto's server mode accepts a post to any id and never answers 410
 * Gone, so it cannot stand in here). The peer runs from the shared venv's
 * python on a free port and is stopped by pid; without the venv the tests
 * are skipped with the reason (failed when CI=true). Cases: a post arrives
 * signed, with its body (200 -> 0); 410 -> TORO_ENOTFOUND; 429 ->
 * TORO_ERETRY; a wrong secret is refused by the peer (403 -> TORO_EIO); no
 * peer -> TORO_EIO; configuration errors at creation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "aws_peer.h"
#include "bus/post.h"
#include "core/error.h"

static pid_t peer_pid = -1;
static char endpoint[128];
static char log_path[128];

static int setup_peer(void **state)
{
    char py[1024], script[1024], port[16];
    const char *src = getenv("TORO_SOURCE_DIR");
    *state = NULL;
    peer_fake_credentials();
    if (!peer_venv_bin("python", py, sizeof py))
        return peer_missing("test_apigw_post", "the venv's python is missing");
    snprintf(script, sizeof script, "%s/tests/integration/bus/apigw_peer.py", src ? src : ".");
    snprintf(log_path, sizeof log_path, "/tmp/toro_apigw_peer_%d.log", (int)getpid());
    unlink(log_path);
    int p = peer_free_port();
    snprintf(port, sizeof port, "%d", p);
    char *argv[] = {py, script, port, log_path, NULL};
    peer_pid = peer_start(argv, p);
    if (peer_pid <= 0)
        return peer_missing("test_apigw_post", "apigw_peer.py did not start");
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d/prod/", p);
    *state = endpoint;
    return 0;
}

static int teardown_peer(void **state)
{
    (void)state;
    peer_stop(peer_pid);
    unlink(log_path);
    return 0;
}

static toro_apigw_t *open_or_skip(void **state)
{
    toro_apigw_t *a = NULL;
    char *err = NULL;
    if (!*state)
        skip();
    peer_fake_credentials();
    assert_int_equal(toro_apigw_new(endpoint, NULL, &a, &err), 0);
    assert_null(err);
    return a;
}

/* Whether the peer logged "id<TAB>body". */
static bool peer_logged(const char *id, const char *body)
{
    char want[512], line[512];
    bool found = false;
    snprintf(want, sizeof want, "%s\t%s\n", id, body);
    FILE *f = fopen(log_path, "r");
    while (f && !found && fgets(line, sizeof line, f))
        found = strcmp(line, want) == 0;
    if (f)
        fclose(f);
    return found;
}

static void test_post_delivered(void **state)
{
    toro_apigw_t *a = open_or_skip(state);
    /* connection ids end in '=': encoded on the wire, encoded again when signed */
    assert_int_equal(toro_apigw_post(a, "L0SM9cOFvHcCIhw=", "node-a", "{\"status\":\"completed\"}"), 0);
    assert_true(peer_logged("L0SM9cOFvHcCIhw=", "{\"status\":\"completed\"}"));
    assert_int_equal(toro_apigw_post(a, "plain", NULL, "x y"), 0);
    assert_true(peer_logged("plain", "x y"));
    toro_apigw_free(a);
}

static void test_gone_and_busy(void **state)
{
    toro_apigw_t *a = open_or_skip(state);
    assert_int_equal(toro_apigw_post(a, "gone", "n", "{}"), TORO_ENOTFOUND);
    assert_int_equal(toro_apigw_post(a, "busy", "n", "{}"), TORO_ERETRY);
    assert_false(peer_logged("gone", "{}"));
    toro_apigw_free(a);
}

static void test_wrong_secret_refused(void **state)
{
    toro_apigw_t *a = NULL;
    if (!*state)
        skip();
    setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret", 1);
    assert_int_equal(toro_apigw_new(endpoint, "us-east-1", &a, NULL), 0);
    assert_int_equal(toro_apigw_post(a, "someone", "n", "{}"), TORO_EIO);
    assert_false(peer_logged("someone", "{}"));
    toro_apigw_free(a);
    peer_fake_credentials();
}

static void test_no_peer(void **state)
{
    toro_apigw_t *a = NULL;
    char ep[64];
    (void)state;
    peer_fake_credentials();
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d/prod", peer_free_port());
    assert_int_equal(toro_apigw_new(ep, NULL, &a, NULL), 0);
    assert_int_equal(toro_apigw_post(a, "c1", "n", "{}"), TORO_EIO);
    toro_apigw_free(a);
}

static void test_new_errors(void **state)
{
    toro_apigw_t *a = NULL;
    char *err = NULL;
    (void)state;
    peer_fake_credentials();
    assert_int_equal(toro_apigw_new("ftp://x/prod", NULL, &a, &err), TORO_EINVAL);
    assert_non_null(err);
    free(err);
    err = NULL;
    unsetenv("AWS_REGION"); /* taken from the endpoint's host instead */
    assert_int_equal(toro_apigw_new("https://abc123.execute-api.eu-west-3.amazonaws.com/prod", NULL, &a, NULL), 0);
    toro_apigw_free(a);
    a = NULL;
    assert_int_equal(toro_apigw_new("http://127.0.0.1:1/prod", NULL, &a, &err), TORO_EINVAL); /* no region */
    assert_null(a);
    free(err);
    err = NULL;
    peer_fake_credentials();
    unsetenv("AWS_ACCESS_KEY_ID");
    assert_int_equal(toro_apigw_new("http://127.0.0.1:1/prod", "us-east-1", &a, &err), TORO_EINVAL);
    assert_null(a);
    assert_non_null(err);
    free(err);
    peer_fake_credentials();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_delivered), cmocka_unit_test(test_gone_and_busy),
        cmocka_unit_test(test_wrong_secret_refused), cmocka_unit_test(test_no_peer),
        cmocka_unit_test(test_new_errors),
    };
    return cmocka_run_group_tests(tests, setup_peer, teardown_peer);
}
