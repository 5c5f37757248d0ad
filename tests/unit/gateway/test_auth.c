/* test_auth.c: bearer tokens (gateway/auth.c) and the key rules of the
 * configuration (config.c): a good token, expiry, not-before, a bad
 * signature, a foreign algorithm, issuer and audience, development keys
 * that never pass for production ones, and the admin role claim. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "gateway/config.h"

#define NOW 1700000000

static toro_auth_t key(const char *secret)
{
    toro_auth_t a = {0};
    snprintf((char *)a.secret, sizeof a.secret, "%s", secret);
    a.secret_len = strlen(secret);
    a.leeway_s = 30;
    return a;
}

static const char *verify(const toro_auth_t *a, const char *token, int64_t now, char sub[160])
{
    const char *why = NULL;
    int rc = toro_auth_verify(a, token, now, sub, 160, &why);
    if (rc != 0)
        assert_non_null(why); /* a refusal always says why */
    return rc == 0 ? NULL : why;
}

static void test_good_and_expired(void **state)
{
    (void)state;
    toro_auth_t a = key("0123456789abcdef0123456789abcdef");
    char *t = toro_auth_issue(&a, "ana", NOW, 60);
    assert_non_null(t);
    char sub[160] = "";
    assert_null(verify(&a, t, NOW + 10, sub));
    assert_string_equal(sub, "ana");
    assert_string_equal(verify(&a, t, NOW + 60, sub), "token expired"); /* no leeway on exp */
    assert_string_equal(verify(&a, t, NOW - 31, sub), "token not valid yet"); /* nbf leeway is 30 s */
    assert_null(verify(&a, t, NOW - 29, sub));
    free(t);
}

static void test_bad_signature(void **state)
{
    (void)state;
    toro_auth_t a = key("0123456789abcdef0123456789abcdef");
    toro_auth_t other = key("fedcba9876543210fedcba9876543210");
    char *t = toro_auth_issue(&other, "ana", NOW, 60);
    char sub[160];
    assert_string_equal(verify(&a, t, NOW, sub), "invalid token signature");
    size_t n = strlen(t);
    t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A'; /* a tampered signature under the right key */
    free(t);
    t = toro_auth_issue(&a, "ana", NOW, 60);
    n = strlen(t);
    t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
    assert_string_equal(verify(&a, t, NOW, sub), "invalid token signature");
    free(t);
    assert_string_equal(verify(&a, "not.a.token.at.all", NOW, sub), "invalid token");
    assert_string_equal(verify(&a, "", NOW, sub), "missing bearer token");
}

static void test_alg_none_refused(void **state)
{
    (void)state;
    toro_auth_t a = key("0123456789abcdef0123456789abcdef");
    const char *hdr = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    const char *claims = "{\"sub\":\"ana\",\"exp\":4000000000}";
    char *h = toro_b64url_encode((const unsigned char *)hdr, strlen(hdr));
    char *c = toro_b64url_encode((const unsigned char *)claims, strlen(claims));
    char token[512];
    snprintf(token, sizeof token, "%s.%s.", h, c);
    char sub[160];
    assert_string_equal(verify(&a, token, NOW, sub), "unsupported token algorithm (HS256 required)");
    free(h);
    free(c);
}

static void test_issuer_and_audience(void **state)
{
    (void)state;
    toro_auth_t issuer = key("0123456789abcdef0123456789abcdef");
    snprintf(issuer.issuer, sizeof issuer.issuer, "https://idp.example");
    snprintf(issuer.audience, sizeof issuer.audience, "toro");
    char *good = toro_auth_issue(&issuer, "ana", NOW, 60);
    toro_auth_t wrong = issuer;
    snprintf(wrong.issuer, sizeof wrong.issuer, "https://other.example");
    char *foreign = toro_auth_issue(&wrong, "ana", NOW, 60);
    toro_auth_t no_aud = issuer;
    no_aud.audience[0] = '\0';
    char *aud_less = toro_auth_issue(&no_aud, "ana", NOW, 60);
    char sub[160];
    assert_null(verify(&issuer, good, NOW, sub));
    assert_string_equal(verify(&issuer, foreign, NOW, sub), "token issuer not accepted");
    assert_string_equal(verify(&issuer, aud_less, NOW, sub), "token audience not accepted");
    free(good);
    free(foreign);
    free(aud_less);
}

/* --auth left AUTO: dev on loopback without a secret, jwt as soon as one is
 * configured, jwt (and so a secret required) on any other address. */
static void test_auto_mode(void **state)
{
    (void)state;
    toro_log_set_level(TORO_LOG_ERROR);
    unsetenv("TORO_DEV_SECRET");
    unsetenv("TORO_JWT_SECRET");
    unsetenv("TORO_AUTH");
    toro_gateway_config_t cfg;
    toro_gateway_config_defaults(&cfg);
    assert_int_equal(toro_gateway_config_finish(&cfg), 0);
    assert_int_equal(cfg.auth_mode, TORO_AUTH_DEV);
    toro_gateway_config_defaults(&cfg);
    cfg.auth = key("production-secret-0123456789abcdef");
    assert_int_equal(toro_gateway_config_finish(&cfg), 0);
    assert_int_equal(cfg.auth_mode, TORO_AUTH_JWT);
    toro_gateway_config_defaults(&cfg);
    cfg.host = "0.0.0.0";
    assert_int_equal(toro_gateway_config_finish(&cfg), -1); /* jwt without a secret */
}

/* Development mode signs with its own key and issuer; jwt mode refuses its tokens. */
static void test_dev_mode_key(void **state)
{
    (void)state;
    toro_log_set_level(TORO_LOG_ERROR);
    unsetenv("TORO_DEV_SECRET");
    toro_gateway_config_t dev;
    toro_gateway_config_defaults(&dev);
    dev.auth_mode = TORO_AUTH_DEV;
    dev.auth = key("production-secret-0123456789abcdef");
    dev.auth.leeway_s = 30;
    toro_auth_t prod = dev.auth;
    assert_int_equal(toro_gateway_config_finish(&dev), 0);
    assert_true(dev.auth.dev_key_random);
    assert_int_equal(dev.auth.secret_len, 32);
    assert_string_equal(dev.auth.issuer, TORO_AUTH_DEV_ISSUER);
    char *t = toro_auth_issue(&dev.auth, "ana", NOW, 60);
    char sub[160];
    assert_null(verify(&dev.auth, t, NOW, sub));
    assert_string_equal(verify(&prod, t, NOW, sub), "invalid token signature"); /* not the production key */
    /* a jwt-mode gateway refuses a dev token even under the same key */
    toro_gateway_config_t jwt;
    toro_gateway_config_defaults(&jwt);
    jwt.auth_mode = TORO_AUTH_JWT;
    jwt.auth = dev.auth;
    jwt.auth.issuer[0] = '\0';
    assert_int_equal(toro_gateway_config_finish(&jwt), 0);
    assert_true(jwt.auth.refuse_dev_issuer);
    assert_string_equal(verify(&jwt.auth, t, NOW, sub), "development tokens are not accepted");
    free(t);
    /* and refuses to start with the development issuer as its own */
    toro_gateway_config_defaults(&jwt);
    jwt.auth_mode = TORO_AUTH_JWT;
    jwt.auth = prod;
    snprintf(jwt.auth.issuer, sizeof jwt.auth.issuer, "%s", TORO_AUTH_DEV_ISSUER);
    assert_int_equal(toro_gateway_config_finish(&jwt), -1);
}

/* Whether an (unsigned: has_role reads claims toro_auth_verify accepted)
 * token with these claims grants admin. */
static int admin_in(const char *claims)
{
    char *c = toro_b64url_encode((const unsigned char *)claims, strlen(claims));
    char token[512];
    snprintf(token, sizeof token, "eyJhbGciOiJIUzI1NiJ9.%s.sig", c);
    free(c);
    return toro_auth_has_role(token, "admin");
}

static void test_admin_role_claim(void **state)
{
    (void)state;
    assert_true(admin_in("{\"sub\":\"a\",\"roles\":[\"reader\",\"admin\"]}"));
    assert_true(admin_in("{\"sub\":\"a\",\"roles\":\"reader admin\"}"));
    assert_true(admin_in("{\"sub\":\"a\",\"roles\":\"admin,reader\"}"));
    assert_true(admin_in("{\"sub\":\"a\",\"role\":\"admin\"}"));
    assert_false(admin_in("{\"sub\":\"a\"}"));
    assert_false(admin_in("{\"sub\":\"a\",\"roles\":[\"administrator\",1,null]}"));
    assert_false(admin_in("{\"sub\":\"a\",\"roles\":\"administrator readmin\"}"));
    assert_false(admin_in("{\"sub\":\"a\",\"role\":[\"admin\"]}"));
    assert_false(admin_in("{\"sub\":\"a\",\"admin\":true}"));
    assert_false(admin_in("not json"));
    assert_false(toro_auth_has_role("no-dots", "admin"));
    assert_false(toro_auth_has_role(NULL, "admin"));
    /* a token issued by dev login carries no role */
    toro_auth_t a = key("0123456789abcdef0123456789abcdef");
    char *t = toro_auth_issue(&a, "ana", NOW, 60);
    assert_false(toro_auth_has_role(t, "admin"));
    free(t);
}

/* The cache of accepted tokens answers exactly as a full verification:
 * a hit still honours exp and nbf, a token differing in one byte (a forged
 * signature, another subject) is verified in full and refused, and a
 * refused token is never remembered. */
static void test_cached_verify_same_answers(void **state)
{
    (void)state;
    toro_auth_t a = key("0123456789abcdef0123456789abcdef");
    toro_auth_t other = key("fedcba9876543210fedcba9876543210");
    toro_auth_cache_t *c = toro_auth_cache_new();
    assert_non_null(c);
    char *t = toro_auth_issue(&a, "ana", NOW, 60);
    char *bob = toro_auth_issue(&a, "bob", NOW, 600);
    char *forged = toro_auth_issue(&other, "ana", NOW, 60);
    char sub[160] = "";
    const char *why = NULL;
    for (int i = 0; i < 3; i++) { /* a miss, then hits */
        assert_int_equal(toro_auth_verify_cached(&a, c, t, NOW + 10, sub, sizeof sub, &why), 0);
        assert_string_equal(sub, "ana");
    }
    assert_int_equal(toro_auth_verify_cached(&a, c, bob, NOW + 10, sub, sizeof sub, &why), 0);
    assert_string_equal(sub, "bob");
    /* past exp, before nbf - leeway: refused with the full verification's reason */
    assert_int_not_equal(toro_auth_verify_cached(&a, c, t, NOW + 60, sub, sizeof sub, &why), 0);
    assert_string_equal(why, "token expired");
    assert_int_not_equal(toro_auth_verify_cached(&a, c, t, NOW - 31, sub, sizeof sub, &why), 0);
    assert_string_equal(why, "token not valid yet");
    assert_int_equal(toro_auth_verify_cached(&a, c, t, NOW - 29, sub, sizeof sub, &why), 0);
    /* one byte changed in the signature of a cached token */
    char *bad = strdup(t);
    size_t n = strlen(bad);
    bad[n - 2] = bad[n - 2] == 'A' ? 'B' : 'A';
    for (int i = 0; i < 2; i++) {
        assert_int_not_equal(toro_auth_verify_cached(&a, c, bad, NOW + 10, sub, sizeof sub, &why), 0);
        assert_string_equal(why, "invalid token signature");
        assert_int_not_equal(toro_auth_verify_cached(&a, c, forged, NOW + 10, sub, sizeof sub, &why), 0);
    }
    /* no cache: plain verification */
    assert_int_equal(toro_auth_verify_cached(&a, NULL, bob, NOW + 10, sub, sizeof sub, &why), 0);
    assert_string_equal(sub, "bob");
    assert_int_not_equal(toro_auth_verify_cached(&a, c, "", NOW, sub, sizeof sub, &why), 0);
    assert_int_not_equal(toro_auth_verify_cached(&a, c, NULL, NOW, sub, sizeof sub, &why), 0);
    free(bad);
    free(t);
    free(bob);
    free(forged);
    toro_auth_cache_free(c);
    toro_auth_cache_free(NULL);
}

/* Many tokens (more than the cache's slots): every one still verifies to
 * its own subject, whichever slot it shares. */
static void test_cached_verify_many_tokens(void **state)
{
    (void)state;
    toro_auth_t a = key("0123456789abcdef0123456789abcdef");
    toro_auth_cache_t *c = toro_auth_cache_new();
    enum { N = 3000 };
    char **tokens = calloc(N, sizeof *tokens);
    assert_non_null(tokens);
    for (int i = 0; i < N; i++) {
        char user[32];
        snprintf(user, sizeof user, "user%d", i);
        tokens[i] = toro_auth_issue(&a, user, NOW, 60);
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < N; i++) {
            char sub[160], want[32];
            const char *why = NULL;
            snprintf(want, sizeof want, "user%d", i);
            assert_int_equal(toro_auth_verify_cached(&a, c, tokens[i], NOW + 1, sub, sizeof sub, &why), 0);
            assert_string_equal(sub, want);
        }
    for (int i = 0; i < N; i++)
        free(tokens[i]);
    free(tokens);
    toro_auth_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_and_expired),    cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_alg_none_refused),    cmocka_unit_test(test_issuer_and_audience),
        cmocka_unit_test(test_auto_mode),            cmocka_unit_test(test_dev_mode_key),
        cmocka_unit_test(test_admin_role_claim),    cmocka_unit_test(test_cached_verify_same_answers),
        cmocka_unit_test(test_cached_verify_many_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
