/* strbuf.c: growable string with a cap (see strbuf.h). */
#include "core/strbuf.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void toro_strbuf_add(toro_strbuf_t *b, const char *s, size_t n)
{
    assert(b && (s || !n));
    if (b->err)
        return;
    size_t max = b->max ? b->max : TORO_STRBUF_DEFAULT_MAX;
    if (b->n + n + 1 > max) {
        b->err = TORO_ETOOBIG;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        while (nc < b->n + n + 1)
            nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->err = TORO_ENOMEM;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    if (n)
        memcpy(b->s + b->n, s, n);
    b->n += n;
    assert(b->n < b->cap);
    b->s[b->n] = 0;
}

void toro_strbuf_str(toro_strbuf_t *b, const char *s) { toro_strbuf_add(b, s, strlen(s)); }
