/* checksum.h: the integrity check of a KB snapshot. A SHA-256 over the
 * schema and every row of every table (in name order, each table in its
 * scan order), leaving out only the meta row that stores it; with SQLite's
 * own PRAGMA quick_check for the b-tree structure. It does not depend on
 * which tables a snapshot has, so new tables are covered without change. */
#ifndef TORO_KB_CHECKSUM_H
#define TORO_KB_CHECKSUM_H

#include <sqlite3.h>

#define TORO_KB_CHECKSUM_KEY "checksum" /* meta key; value "sha256:<64 hex>" */

/* Why: build.c stores it just before the snapshot's last commit; kb.c
 * compares it at open. out gets "sha256:" + 64 hex digits. 0 or TORO_EIO. */
int toro_kb_checksum_compute(sqlite3 *db, char out[80]);

/* Why: toro_kb_open and `toro kb verify`: 0 when the snapshot holds a
 * checksum and it matches (and quick_check passes); 1 when it has none
 * (built by an older toro; accepted); a negative code with *err (caller
 * frees) saying what is damaged otherwise. */
int toro_kb_checksum_verify(sqlite3 *db, const char *path, char **err);

/* Why: `toro kb verify FILE`: opens the file read-only and verifies it as
 * above; *sum (80 bytes) gets the computed checksum on success. */
int toro_kb_verify_file(const char *path, char sum[80], char **err);

#endif
