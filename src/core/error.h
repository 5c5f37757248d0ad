/* error.h: the one error convention of toro. 0 is success, negative codes are
 * errors, toro_strerror() maps each code to a message. It does not carry
 * context: functions that need to explain a failure to a person also return
 * a heap string (char **err), which the caller frees. */
#ifndef TORO_CORE_ERROR_H
#define TORO_CORE_ERROR_H

enum {
    TORO_OK = 0,
    TORO_EINVAL = -1,    /* invalid argument or input */
    TORO_ENOMEM = -2,    /* allocation failed */
    TORO_EIO = -3,       /* file, database or socket failure */
    TORO_ENOTFOUND = -4, /* no such record */
    TORO_ECONFLICT = -5, /* guarded update refused: the state moved on */
    TORO_ERETRY = -6,    /* transient failure: try again later */
    TORO_EUNAVAIL = -7,  /* a dependency is down */
    TORO_ETOOBIG = -8,   /* a bounded buffer would overflow */
    TORO_EFORMAT = -9,   /* corrupt or unsupported file / message */
    TORO_EEMPTY = -10,   /* nothing to do (empty queue, empty result) */
    TORO_EFORBIDDEN = -11, /* authenticated, but not allowed to act for that user */
    TORO_ENOTSUP = -12,  /* this backend does not implement the call */
};

/* Why: one table for every message, so logs and HTTP errors agree. Always a
 * static string ("unknown error" for a code outside the table). */
const char *toro_strerror(int rc);

/* Why: the char **err convention in one place: formats the message into a
 * new heap string (replacing and freeing any earlier one), cut at 1023
 * bytes. No-op on NULL err; when out of memory *err ends NULL. */
void toro_set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
