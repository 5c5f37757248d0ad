/* feedback_cmd.c: `toro feedback export`: the down-rated answers of a store
 * as JSONL, one case per line in the shape of kb/eval/questions.jsonl (id,
 * lang, question, relevant = the cited documents, key_facts empty for a
 * person to fill, tags ["feedback"]) plus what a reviewer needs (answer,
 * comment, question_id, rated_at). It only reads the store. */
#define _DEFAULT_SOURCE /* timegm */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/util.h"
#include "kb/analyzer.h"
#include "store/open.h"
#include "store/store.h"

#define EXPORT_PAGE 200

static void feedback_usage(FILE *f)
{
    fprintf(f, "usage: toro feedback export --store URL [--since DATE] [-o FILE]   (env TORO_STORE)\n"
               "  write the down-rated answers as JSONL eval cases (kb/eval/questions.jsonl shape)\n"
               "  --store URL    sqlite://PATH (toro serve: DIR/toro.db) or postgres://HOST:PORT/DB\n"
               "  --since DATE   only ratings from DATE on: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)\n"
               "  -o FILE        write to FILE instead of standard output\n");
}

/* DATE as ms since the epoch (UTC). 0, or TORO_EINVAL with *ms untouched. */
static int parse_since(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    int n = 0, t = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3 || n != 10)
        return TORO_EINVAL;
    s += n;
    if (*s && (sscanf(s, "T%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &t) != 3 || t != 9 ||
               (strcmp(s + t, "Z") != 0 && s[t] != '\0')))
        return TORO_EINVAL;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return TORO_EINVAL;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *ms = (int64_t)timegm(&tm) * 1000;
    return 0;
}

/* One eval case for a rated question. New reference; NULL on ENOMEM. */
static json_t *to_case(const toro_question_t *q)
{
    json_t *relevant = json_array();
    for (size_t i = 0; relevant && i < q->n_sources; i++) {
        const char *doc = q->sources[i].doc_id;
        bool seen = !doc || !*doc;
        for (size_t j = 0; !seen && j < json_array_size(relevant); j++)
            seen = strcmp(json_string_value(json_array_get(relevant, j)), doc) == 0;
        if (!seen)
            json_array_append_new(relevant, json_string(doc));
    }
    char id[48], at[32];
    snprintf(id, sizeof id, "fb-%.8s", q->question_id ? q->question_id : "");
    toro_iso8601(q->feedback.at, at);
    const char *text = q->question ? q->question : "";
    return json_pack("{s:s, s:s, s:s, s:o, s:[], s:[s], s:s?, s:s?, s:s, s:s, s:s?}", "id", id, "lang",
                     toro_lang_detect(text, strlen(text)), "question", text, "relevant", relevant, "key_facts", "tags",
                     "feedback", "answer", q->answer, "comment", q->feedback.comment, "question_id", q->question_id,
                     "rated_at", at, "kb_version", q->kb_version);
}

/* Pages through the store's down ratings from since on, one line each.
 * Returns 0 or the store's code; *count gets the lines written. */
static int export_all(toro_store_t *s, int64_t since, FILE *out, long *count)
{
    toro_feedback_query_t fq = {.rating = TORO_RATING_DOWN, .since = since, .limit = EXPORT_PAGE};
    char last_id[64] = "";
    size_t n = 0;
    *count = 0;
    do {
        toro_question_t *items = NULL;
        int rc = toro_store_list_feedback(s, &fq, &items, &n);
        if (rc)
            return rc;
        for (size_t i = 0; i < n; i++) {
            json_t *c = to_case(&items[i]);
            char *line = c ? json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
            json_decref(c);
            if (!line || fprintf(out, "%s\n", line) < 0)
                rc = line ? TORO_EIO : TORO_ENOMEM;
            free(line);
            (*count)++;
        }
        if (n) {
            fq.after_at = items[n - 1].feedback.at;
            snprintf(last_id, sizeof last_id, "%s", items[n - 1].question_id ? items[n - 1].question_id : "");
            fq.after_id = last_id;
        }
        toro_questions_free(items, n);
        if (rc)
            return rc;
    } while (n == EXPORT_PAGE);
    return 0;
}

static int run_export(const char *url, const char *since_s, const char *path)
{
    int64_t since = 0;
    if (since_s && parse_since(since_s, &since) != 0)
        return toro_cli_fail("toro feedback export", "--since must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, not '%s'",
                             since_s);
    if (!url)
        return toro_cli_fail("toro feedback export", "missing --store URL (or env TORO_STORE)");
    if (path && toro_cli_check_parent_dir("toro feedback export", path) != 0)
        return 1;
    const char *file = toro_store_sqlite_path(url);
    if (file && access(file, R_OK) != 0) { /* opening would create an empty store */
        fprintf(stderr, "toro feedback export: cannot read %s: %s\n", file, strerror(errno));
        return 1;
    }
    toro_store_t *s = NULL;
    char *err = NULL;
    int rc = toro_store_open(url, TORO_DB_SYNC_NORMAL, &s, &err);
    if (rc) {
        fprintf(stderr, "toro feedback export: %s\n", err && *err ? err : toro_strerror(rc));
        free(err);
        return rc == TORO_EINVAL ? 2 : 1;
    }
    FILE *out = path ? fopen(path, "w") : stdout;
    long count = 0;
    rc = out ? export_all(s, since, out, &count) : TORO_EIO;
    if (out && out != stdout && fclose(out) != 0 && rc == 0)
        rc = TORO_EIO;
    toro_store_close(s);
    if (rc) {
        fprintf(stderr, "toro feedback export: %s\n",
                rc == TORO_ENOTSUP ? "this store does not keep feedback" : toro_strerror(rc));
        return 1;
    }
    fprintf(stderr, "toro feedback export: %ld down-rated question(s)%s%s\n", count, path ? " written to " : "",
            path ? path : "");
    return 0;
}

int toro_cmd_feedback(int argc, char **argv)
{
    const char *store = getenv("TORO_STORE"), *since = NULL, *path = NULL;
    if (argc < 2 || toro_cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        if (argc < 2)
            fprintf(stderr, "toro feedback: missing subcommand (export)\n");
        feedback_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "export") != 0)
        return toro_cli_fail("toro feedback", "unknown subcommand '%s' (export)", argv[1]);
    const toro_opt_t opts[] = {
        {"--store", NULL, TORO_OPT_STR, &store, "URL", 0, 0, NULL},
        {"--since", NULL, TORO_OPT_STR, &since, "DATE", 0, 0, NULL},
        {"--output", "-o", TORO_OPT_STR, &path, "FILE", 0, 0, NULL},
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    const toro_cmd_t cmd = {.name = "toro feedback export", .usage = feedback_usage, .opts = opts};
    int prc = toro_cli_parse(&cmd, argc - 2, argv + 2, NULL);
    if (prc != TORO_CLI_OK)
        return prc == TORO_CLI_HELP ? 0 : 2;
    return run_export(store, since, path);
}
