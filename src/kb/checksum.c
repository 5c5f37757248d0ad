/* checksum.c: snapshot integrity (see checksum.h). */
#include "kb/checksum.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static void put_u64(EVP_MD_CTX *h, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (56 - 8 * i));
    EVP_DigestUpdate(h, b, 8);
}

/* Length-prefixed bytes: no two different sequences hash alike. */
static void put_bytes(EVP_MD_CTX *h, const void *p, size_t n)
{
    put_u64(h, n);
    if (n)
        EVP_DigestUpdate(h, p, n);
}

/* Every row of one table, each value with its type. */
static int hash_table(sqlite3 *db, EVP_MD_CTX *h, const char *name)
{
    char sql[300];
    int n = strcmp(name, "meta") == 0
                ? snprintf(sql, sizeof sql, "SELECT * FROM \"meta\" WHERE key <> '%s'", TORO_KB_CHECKSUM_KEY)
                : snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", name);
    if (n < 0 || (size_t)n >= sizeof sql || strchr(name, '"'))
        return TORO_EIO;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return TORO_EIO;
    int cols = sqlite3_column_count(st), step;
    uint64_t rows = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        rows++;
        for (int i = 0; i < cols; i++) {
            int type = sqlite3_column_type(st, i);
            unsigned char t = (unsigned char)type;
            EVP_DigestUpdate(h, &t, 1);
            if (type == SQLITE_INTEGER) {
                put_u64(h, (uint64_t)sqlite3_column_int64(st, i));
            } else if (type == SQLITE_FLOAT) {
                double d = sqlite3_column_double(st, i);
                uint64_t bits;
                memcpy(&bits, &d, sizeof bits);
                put_u64(h, bits);
            } else if (type == SQLITE_TEXT || type == SQLITE_BLOB) {
                const void *p = type == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, i) : sqlite3_column_blob(st, i);
                put_bytes(h, p, (size_t)sqlite3_column_bytes(st, i));
            }
        }
    }
    sqlite3_finalize(st);
    put_u64(h, rows);
    return step == SQLITE_DONE ? 0 : TORO_EIO;
}

int toro_kb_checksum_compute(sqlite3 *db, char out[80])
{
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    sqlite3_stmt *st = NULL;
    int rc = TORO_EIO, step;
    if (!h || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1)
        goto out;
    if (sqlite3_prepare_v2(db,
                           "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                           "ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *sql = (const char *)sqlite3_column_text(st, 1);
        if (!name)
            goto out;
        put_bytes(h, name, strlen(name));
        put_bytes(h, sql ? sql : "", sql ? strlen(sql) : 0);
        if (hash_table(db, h, name) != 0)
            goto out;
    }
    if (step != SQLITE_DONE)
        goto out;
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (EVP_DigestFinal_ex(h, md, &mdlen) != 1 || mdlen != 32)
        goto out;
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
    rc = 0;
out:
    sqlite3_finalize(st);
    EVP_MD_CTX_free(h);
    return rc;
}

int toro_kb_checksum_verify(sqlite3 *db, const char *path, char **err)
{
    sqlite3_stmt *st = NULL;
    char stored[80] = "", actual[80];
    int rc = TORO_EFORMAT;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = '" TORO_KB_CHECKSUM_KEY "'", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(stored, sizeof stored, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    st = NULL;
    const char *qc = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW ||
        !(qc = (const char *)sqlite3_column_text(st, 0)) || strcmp(qc, "ok") != 0) {
        toro_set_err(err, "%s is damaged (SQLite quick_check: %.200s); rebuild it or copy it again", path,
                     qc ? qc : sqlite3_errmsg(db));
        goto out;
    }
    if (!stored[0]) {
        rc = 1;
        goto out;
    }
    if (toro_kb_checksum_compute(db, actual) != 0) {
        toro_set_err(err, "%s is damaged (cannot read it whole: %s); rebuild it or copy it again", path,
                     sqlite3_errmsg(db));
        goto out;
    }
    if (strcmp(stored, actual) != 0) {
        toro_set_err(err, "%s is damaged: its checksum does not match its content (stored %s, computed %s); "
                          "rebuild it or copy it again", path, stored, actual);
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    return rc;
}

int toro_kb_verify_file(const char *path, char sum[80], char **err)
{
    sqlite3 *db = NULL;
    int rc = TORO_EIO;
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        toro_set_err(err, "cannot open %s", path);
        return TORO_EIO;
    }
    fclose(probe);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        toro_set_err(err, "cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    rc = toro_kb_checksum_verify(db, path, err);
    if (rc >= 0 && toro_kb_checksum_compute(db, sum) != 0) {
        toro_set_err(err, "%s is damaged (cannot read it whole: %s)", path, sqlite3_errmsg(db));
        rc = TORO_EFORMAT;
    }
out:
    sqlite3_close(db);
    return rc;
}
