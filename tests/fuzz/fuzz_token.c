/* fuzz_token.c: libFuzzer harness for the bearer-token parser (HS256 JWT). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/question.h"
#include "gateway/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static toro_auth_t a = {.secret = "fuzz-secret-0123456789abcdefghijklmnop", .secret_len = 38,
                            .issuer = "toro-dev", .leeway_s = 30};
    char *tok = malloc(size + 1);
    if (!tok)
        return 0;
    memcpy(tok, data, size);
    tok[size] = '\0';
    char sub[160];
    const char *why = NULL;
    if (toro_auth_verify(&a, tok, 1700000000, sub, sizeof sub, &why) == 0 && !toro_user_id_is_valid(sub))
        abort(); /* an accepted token always names a valid user */
    free(tok);
    /* issuing then verifying any valid subject round-trips */
    if (size > 0 && size <= 128) {
        char s[129];
        memcpy(s, data, size);
        s[size] = '\0';
        if (toro_user_id_is_valid(s)) {
            char *t = toro_auth_issue(&a, s, 1700000000, 60);
            if (!t || toro_auth_verify(&a, t, 1700000000, sub, sizeof sub, &why) != 0 || strcmp(sub, s) != 0)
                abort();
            free(t);
        }
    }
    return 0;
}
