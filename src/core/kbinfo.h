/* kbinfo.h: which knowledge-base snapshot this process serves, and how its
 * reloads went, for /healthz and /metrics of the gateway and of a worker's
 * health port. Process-wide (one node per process), thread-safe. */
#ifndef TORO_CORE_KBINFO_H
#define TORO_CORE_KBINFO_H

#include <stdbool.h>
#include <stddef.h>

/* Why: set when a snapshot starts serving (open, then each reload). NULL
 * clears it. Copies version (truncated to 127 bytes). */
void toro_kbinfo_set(const char *version);
/* Why: the version set last into buf (always NUL-terminated); false (buf
 * "") when none is set. */
bool toro_kbinfo_get(char *buf, size_t cap);
/* Why: one count per reload attempt: ok (swapped) or refused (the old
 * snapshot kept serving). */
void toro_kbinfo_reload(bool ok);
/* Why: appends toro_kb_info{version="…"} 1 (when a version is set) and
 * toro_kb_reloads_total{outcome="ok|refused"} to buf; bytes written, or -1
 * when cap is too small (buf then holds a partial text). */
long toro_kbinfo_render(char *buf, size_t cap);

#endif
