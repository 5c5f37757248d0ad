/* error.c: the message table for toro's error codes. */
#include "core/error.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void toro_set_err(char **err, const char *fmt, ...)
{
    assert(fmt);
    if (!err)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(*err);
    *err = strdup(buf);
}

const char *toro_strerror(int rc)
{
    switch (rc) {
    case TORO_OK: return "ok";
    case TORO_EINVAL: return "invalid input";
    case TORO_ENOMEM: return "out of memory";
    case TORO_EIO: return "input/output error";
    case TORO_ENOTFOUND: return "not found";
    case TORO_ECONFLICT: return "state conflict";
    case TORO_ERETRY: return "temporary failure";
    case TORO_EUNAVAIL: return "service unavailable";
    case TORO_ETOOBIG: return "too large";
    case TORO_EFORMAT: return "bad format";
    case TORO_EEMPTY: return "empty";
    case TORO_EFORBIDDEN: return "forbidden";
    case TORO_ENOTSUP: return "not supported";
    default: return "unknown error";
    }
}
