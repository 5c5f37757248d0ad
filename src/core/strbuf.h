/* strbuf.h: a growable NUL-terminated string with a cap (STYLE rule 7), for
 * code that assembles text (prompts, answers, canonical requests). Appends
 * after a failure are ignored; the first failure stays in err
 * (TORO_ENOMEM, or TORO_ETOOBIG past max), so callers check once at the end. */
#ifndef TORO_CORE_STRBUF_H
#define TORO_CORE_STRBUF_H

#include <stddef.h>

#define TORO_STRBUF_DEFAULT_MAX (16u << 20) /* used when max is 0 */

typedef struct toro_strbuf {
    char *s;        /* NULL until the first append; caller frees */
    size_t n, cap;  /* length without the NUL, allocated bytes */
    size_t max;     /* cap on n + 1; 0 = TORO_STRBUF_DEFAULT_MAX */
    int err;        /* first error, 0 while all appends succeeded */
} toro_strbuf_t;

/* Why: the one append; a zero-length append still allocates, so s is never
 * NULL after any successful append. After a failure b->err is set and s, n
 * hold what was appended before it (still NUL-terminated when s is not NULL);
 * later appends change nothing. s may be NULL when n is 0. */
void toro_strbuf_add(toro_strbuf_t *b, const char *s, size_t n);
void toro_strbuf_str(toro_strbuf_t *b, const char *s);

#endif
