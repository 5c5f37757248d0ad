/* kb_cmd.c: `toro kb build|search|eval|info` and `toro ask`: argument
 * parsing and printing around the kb engine (src/kb) and the extractive
 * answerer. It holds no logic of its own beyond formatting. */
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "answer/answer.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "kb/eval.h"
#include "kb/index.h"
#include "kb/checksum.h"
#include "kb/kb.h"

static void build_usage(FILE *f)
{
    fprintf(f, "usage: toro kb build SRC_DIR -o FILE [--max-chars N] [--overlap N]\n"
               "  build a versioned knowledge-base snapshot from the Markdown/text files under SRC_DIR\n"
               "  -o, --output FILE   the snapshot to write (its directory must exist)\n"
               "  --max-chars N       chunk size in characters (100..100000, default %zu)\n"
               "  --overlap N         characters shared by consecutive chunks (0..50000, default %zu)\n",
            ((toro_chunk_params_t)TORO_CHUNK_PARAMS_DEFAULT).max_chars,
            ((toro_chunk_params_t)TORO_CHUNK_PARAMS_DEFAULT).overlap_chars);
}

static void search_usage(FILE *f)
{
    fprintf(f, "usage: toro kb search FILE \"query\" [-k 10] [--json]\n"
               "  the top chunks of a snapshot for a query, best first\n"
               "  -k N       how many chunks (1..10000, default 10)\n"
               "  --json     print JSON\n");
}

static void eval_usage(FILE *f)
{
    fprintf(f, "usage: toro kb eval FILE QUESTIONS.jsonl [--json] [-v]\n"
               "       toro kb eval --beir DIR [--json] [--keep SNAPSHOT]\n"
               "  score retrieval (and the extractive answers) on a question file, or on a BEIR data set\n"
               "  --beir DIR       a BEIR directory (corpus.jsonl, queries.jsonl, qrels/test.tsv)\n"
               "  --keep SNAPSHOT  keep the snapshot built from the BEIR corpus in this file\n"
               "  --json           print JSON\n"
               "  -v, --verbose    each question's result on stderr\n");
}

static void info_usage(FILE *f)
{
    fprintf(f, "usage: toro kb info FILE [--json]\n"
               "  what a snapshot holds: version, build time, documents, chunks, languages, size\n"
               "  --json   print JSON\n");
}

static void ask_usage(FILE *f)
{
    fprintf(f, "usage: toro ask --kb FILE \"question\" [--json]\n"
               "  answer one question now with the extractive answerer (no service needed)\n"
               "  --kb FILE   knowledge-base snapshot (env TORO_KB)\n"
               "  --json      print JSON\n");
}

static void kb_usage(FILE *f)
{
    fprintf(f, "usage:\n"
               "  toro kb build SRC_DIR -o FILE [--max-chars N] [--overlap N]\n"
               "  toro kb search FILE \"query\" [-k 10] [--json]\n"
               "  toro kb eval FILE QUESTIONS.jsonl [--json] [-v]\n"
               "  toro kb eval --beir DIR [--json] [--keep SNAPSHOT]\n"
               "  toro kb info FILE [--json]\n"
               "  toro kb verify FILE      check the snapshot's checksum and structure\n"
               "  toro ask --kb FILE \"question\" [--json]\n"
               "Each subcommand answers --help with its options.\n");
}

static void progress_bar(void *ud, size_t done, size_t total, size_t bytes)
{
    (void)ud;
    int width = 30, fill = total ? (int)(width * done / total) : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r[%s] %zu/%zu files, %.1f MB", bar, done, total, (double)bytes / 1e6);
    if (done == total)
        fputc('\n', stderr);
    fflush(stderr);
}

/* Sub-millisecond wall clock for `kb search` timings. */
static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmd_build(int argc, char **argv)
{
    const char *name = "toro kb build", *pos[1] = {NULL}, *out = NULL;
    long max_chars = -1, overlap = -1;
    toro_chunk_params_t p = TORO_CHUNK_PARAMS_DEFAULT;
    const toro_opt_t opts[] = {
        {"--output", "-o", TORO_OPT_STR, &out, "FILE", 0, 0, NULL},
        {"--max-chars", NULL, TORO_OPT_LONG, &max_chars, "N", 100, 100000, NULL},
        {"--overlap", NULL, TORO_OPT_LONG, &overlap, "N", 0, 50000, NULL},
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    const toro_cmd_t cmd = {.name = name, .usage = build_usage, .opts = opts, .pos = pos, .max_pos = 1};
    int prc = toro_cli_parse(&cmd, argc, argv, NULL);
    if (prc != TORO_CLI_OK)
        return prc == TORO_CLI_HELP ? 0 : 2;
    const char *src = pos[0];
    if (!src)
        return toro_cli_fail(name, "missing SRC_DIR (the directory of documents)");
    if (!out)
        return toro_cli_fail(name, "missing -o FILE (the snapshot to write)");
    if (max_chars >= 0)
        p.max_chars = (size_t)max_chars;
    if (overlap >= 0)
        p.overlap_chars = (size_t)overlap;
    if (p.overlap_chars >= p.max_chars)
        return toro_cli_fail(name, "--overlap (%zu) must be smaller than --max-chars (%zu)", p.overlap_chars,
                             p.max_chars);
    if (toro_cli_check_dir(name, src) || toro_cli_check_parent_dir(name, out))
        return 1;
    toro_kb_build_stats_t st;
    memset(&st, 0, sizeof(st));
    char *err = NULL;
    int rc = toro_kb_build_dir(src, out, &p, isatty(2) ? progress_bar : NULL, NULL, &st, &err);
    if (rc) {
        fprintf(stderr, "toro kb build: %s\n", err ? err : toro_strerror(rc));
        free(err);
        return 1;
    }
    double secs = st.seconds > 0 ? st.seconds : 1e-3;
    printf("built %s\n  version   %s\n  files     %zu\n  documents %zu\n  chunks    %zu\n  terms     %zu\n"
           "  input     %.2f MB in %.2f s (%.2f MB/s, %.0f chunks/s)\n",
           out, st.version, st.n_files, st.n_docs, st.n_chunks, st.n_terms, (double)st.bytes_in / 1e6, secs,
           (double)st.bytes_in / 1e6 / secs, (double)st.n_chunks / secs);
    return 0;
}

static int open_kb(const char *cmd, const char *path, toro_kb_t **kb)
{
    char *err = NULL;
    int rc = toro_kb_open(path, kb, &err);
    if (rc) {
        fprintf(stderr, "%s: %s\n", cmd, err ? err : toro_strerror(rc));
        free(err);
        return 1;
    }
    return 0;
}

static json_t *hit_json(const toro_kb_t *kb, const toro_kb_hit_t *h, int rank)
{
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:b, s:s}", "rank", rank, "chunk_id", h->chunk_id,
                     "doc_id", h->doc_id, "title", h->title, "section", h->section, "lang", h->lang, "score",
                     h->score, "coverage", h->coverage, "relevant", toro_kb_hit_is_relevant(kb, h), "text", h->text);
}

static int cmd_search(int argc, char **argv)
{
    const char *name = "toro kb search", *pos[2] = {NULL, NULL};
    long k_opt = 10;
    int as_json = 0;
    const toro_opt_t opts[] = {
        {"-k", NULL, TORO_OPT_LONG, &k_opt, "N", 1, 10000, NULL},
        {"--json", NULL, TORO_OPT_FLAG, &as_json, NULL, 0, 0, NULL},
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    const toro_cmd_t cmd = {.name = name, .usage = search_usage, .opts = opts, .pos = pos, .max_pos = 2};
    int prc = toro_cli_parse(&cmd, argc, argv, NULL);
    if (prc != TORO_CLI_OK)
        return prc == TORO_CLI_HELP ? 0 : 2;
    const char *file = pos[0], *query = pos[1];
    size_t k = (size_t)k_opt;
    if (!file)
        return toro_cli_fail(name, "missing FILE (the snapshot)");
    if (!query)
        return toro_cli_fail(name, "missing the query (quote it: toro kb search FILE \"query\")");
    toro_kb_t *kb = NULL;
    if (open_kb("toro kb search", file, &kb))
        return 1;
    toro_kb_hit_t *hits = NULL;
    size_t n = 0;
    double t0 = mono_ms();
    int rc = toro_kb_search(kb, query, k, &hits, &n);
    double ms = mono_ms() - t0;
    if (rc) {
        fprintf(stderr, "toro kb search: %s\n", toro_strerror(rc));
        toro_kb_close(kb);
        return 1;
    }
    int found = n > 0 && toro_kb_hit_is_relevant(kb, &hits[0]);
    if (as_json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, hit_json(kb, &hits[i], (int)i + 1));
        json_t *o = json_pack("{s:s, s:s, s:b, s:f, s:o}", "query", query, "kb_version", toro_kb_version(kb),
                              "found_relevant_docs", found, "took_ms", ms, "hits", arr);
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_ENSURE_ASCII * 0);
        if (s)
            puts(s);
        free(s);
        json_decref(o);
    } else {
        printf("%zu hits in %.2f ms (kb %s, found_relevant_docs=%s)\n", n, ms, toro_kb_version(kb),
               found ? "true" : "false");
        for (size_t i = 0; i < n; i++) {
            const toro_kb_hit_t *h = &hits[i];
            printf("%2zu. %7.3f  %-28s %s%s%s%s\n", i + 1, h->score, h->chunk_id, h->title, *h->section ? " > " : "",
                   h->section, toro_kb_hit_is_relevant(kb, h) ? "" : "  (below threshold)");
            size_t l = strlen(h->text);
            size_t cut = l > 160 ? 160 : l;
            while (cut < l && cut > 0 && ((unsigned char)h->text[cut] & 0xC0) == 0x80)
                cut--;
            printf("      %.*s%s\n", (int)cut, h->text, cut < l ? "…" : "");
        }
    }
    toro_kb_hits_free(hits, n);
    toro_kb_close(kb);
    return 0;
}

static void print_metrics(const char *title, const toro_eval_metrics_t *m, int with_answers, int as_json,
                          const char *version)
{
    if (as_json) {
        json_t *o = json_pack("{s:s, s:s?, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "dataset", title, "kb_version",
                              version, "questions", (json_int_t)m->n_questions, "recall@1", m->recall1, "recall@5",
                              m->recall5, "recall@10", m->recall10, "recall@100", m->recall100, "mrr", m->mrr,
                              "ndcg@10", m->ndcg10, "mean_search_ms", m->mean_ms);
        if (with_answers) {
            json_object_set_new(o, "answers", json_integer((json_int_t)m->n_answered));
            json_object_set_new(o, "answers_with_all_key_facts", json_real(m->fact_rate));
            json_object_set_new(o, "key_facts_found", json_real(m->fact_item_rate));
            json_object_set_new(o, "false_no_info", json_integer((json_int_t)m->n_false_noinfo));
            json_object_set_new(o, "off_topic", json_integer((json_int_t)m->n_offtopic));
            json_object_set_new(o, "off_topic_no_info", json_integer((json_int_t)m->n_offtopic_ok));
        }
        char *s = json_dumps(o, JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
        json_decref(o);
        return;
    }
    printf("%s%s%s\n", title, version ? "  kb " : "", version ? version : "");
    printf("  questions            %zu\n", m->n_questions);
    printf("  Recall@1             %.3f\n  Recall@5             %.3f\n  Recall@10            %.3f\n", m->recall1,
           m->recall5, m->recall10);
    printf("  Recall@100           %.3f\n  MRR                  %.3f\n  nDCG@10              %.3f\n", m->recall100,
           m->mrr, m->ndcg10);
    printf("  mean search          %.2f ms\n", m->mean_ms);
    if (with_answers) {
        printf("  answers w/ key facts %.3f (%zu/%zu)\n", m->fact_rate, m->n_all_facts, m->n_answered);
        printf("  key facts found      %.3f\n", m->fact_item_rate);
        printf("  false \"no info\"      %zu\n", m->n_false_noinfo);
        printf("  off-topic -> no info %zu/%zu\n", m->n_offtopic_ok, m->n_offtopic);
    }
}

static int cmd_eval(int argc, char **argv)
{
    const char *name = "toro kb eval", *pos[2] = {NULL, NULL}, *beir = NULL, *keep = NULL;
    int as_json = 0, verbose = 0, n_pos = 0;
    const toro_opt_t opts[] = {
        {"--beir", NULL, TORO_OPT_STR, &beir, "DIR", 0, 0, NULL},
        {"--keep", NULL, TORO_OPT_STR, &keep, "SNAPSHOT", 0, 0, NULL},
        {"--json", NULL, TORO_OPT_FLAG, &as_json, NULL, 0, 0, NULL},
        {"--verbose", "-v", TORO_OPT_FLAG, &verbose, NULL, 0, 0, NULL},
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    const toro_cmd_t cmd = {.name = name, .usage = eval_usage, .opts = opts, .pos = pos, .max_pos = 2};
    int prc = toro_cli_parse(&cmd, argc, argv, &n_pos);
    if (prc != TORO_CLI_OK)
        return prc == TORO_CLI_HELP ? 0 : 2;
    const char *file = pos[0], *questions = pos[1];
    if (beir && n_pos)
        return toro_cli_fail(name, "--beir DIR builds its own snapshot; unexpected argument '%s'", pos[0]);
    if (!beir && keep)
        return toro_cli_fail(name, "--keep goes with --beir DIR");
    if (!beir && !file)
        return toro_cli_fail(name, "missing FILE (the snapshot) and QUESTIONS.jsonl, or --beir DIR");
    if (!beir && !questions)
        return toro_cli_fail(name, "missing QUESTIONS.jsonl (the question file)");
    if (beir && (toro_cli_check_dir(name, beir) || (keep && toro_cli_check_parent_dir(name, keep))))
        return 1;
    toro_eval_metrics_t m;
    char *err = NULL;
    if (beir) {
        char tmp[4096];
        if (keep)
            snprintf(tmp, sizeof(tmp), "%s", keep);
        else {
            const char *td = getenv("TMPDIR");
            snprintf(tmp, sizeof(tmp), "%s/toro-beir-%ld.kb", td && *td ? td : "/tmp", (long)getpid());
        }
        int rc = toro_kb_eval_beir(beir, tmp, &m, &err);
        if (!keep)
            unlink(tmp);
        if (rc) {
            fprintf(stderr, "toro kb eval: %s\n", err ? err : toro_strerror(rc));
            free(err);
            return 1;
        }
        print_metrics(beir, &m, 0, as_json, NULL);
        return 0;
    }
    toro_kb_t *kb = NULL;
    if (open_kb("toro kb eval", file, &kb))
        return 1;
    toro_answerer_t *ans = NULL;
    int rc = toro_answerer_extractive_new(kb, &ans);
    if (rc == 0)
        rc = toro_kb_eval_questions(kb, questions, toro_answerer_eval_fn, ans, verbose ? stderr : NULL, &m, &err);
    if (rc) {
        fprintf(stderr, "toro kb eval: %s\n", err ? err : toro_strerror(rc));
        free(err);
    } else {
        print_metrics(questions, &m, 1, as_json, toro_kb_version(kb));
    }
    toro_answerer_free(ans);
    toro_kb_close(kb);
    return rc ? 1 : 0;
}

/* Adds to o what the snapshot's tables hold beyond its metadata: documents
 * per language. Reads the file with its own read-only connection. */
static int info_counts(const char *path, json_t *o, char **err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int rc = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        goto out;
    json_t *meta = json_object();
    json_object_set_new(o, "meta", meta);
    if (sqlite3_prepare_v2(db, "SELECT key, value FROM meta ORDER BY key", -1, &s, NULL) != SQLITE_OK)
        goto out;
    while (sqlite3_step(s) == SQLITE_ROW)
        json_object_set_new(meta, (const char *)sqlite3_column_text(s, 0),
                            json_string((const char *)sqlite3_column_text(s, 1)));
    sqlite3_finalize(s);
    json_t *langs = json_object();
    json_object_set_new(o, "documents_by_language", langs);
    if (sqlite3_prepare_v2(db, "SELECT COALESCE(lang, '?'), COUNT(*) FROM docs GROUP BY 1 ORDER BY 1", -1, &s, NULL) !=
        SQLITE_OK)
        goto out;
    while (sqlite3_step(s) == SQLITE_ROW)
        json_object_set_new(langs, (const char *)sqlite3_column_text(s, 0), json_integer(sqlite3_column_int64(s, 1)));
    rc = 0;
out:
    if (rc && err && db)
        *err = strdup(sqlite3_errmsg(db));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return rc;
}

static void print_info_text(const char *path, json_t *o)
{
    json_t *meta = json_object_get(o, "meta");
    const char *keys[][2] = {
        {"version", "version"},     {"built_at", "built"},         {"format", "format"},
        {"n_docs", "documents"},    {"n_chunks", "chunks"},        {"n_terms", "terms"},
        {"languages", "languages"}, {"analyzer", "analyzer"},      {"chunk_max_chars", "chunk size"},
        {"chunk_overlap_chars", "chunk overlap"}, {"bm25", "bm25"},
    };
    printf("%s\n", path);
    printf("  %-14s %.2f MB (%lld bytes)\n", "size", (double)json_integer_value(json_object_get(o, "bytes")) / 1e6,
           (long long)json_integer_value(json_object_get(o, "bytes")));
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = json_string_value(json_object_get(meta, keys[i][0]));
        if (v)
            printf("  %-14s %s\n", keys[i][1], v);
    }
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(o, "documents_by_language"), k, v)
        printf("  documents/%-4s %lld\n", k, (long long)json_integer_value(v));
    /* whatever else the snapshot records (newer builders add keys) */
    json_object_foreach(meta, k, v) {
        int known = 0;
        for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !known; i++)
            known = strcmp(k, keys[i][0]) == 0;
        if (!known)
            printf("  %-14s %s\n", k, json_string_value(v) ? json_string_value(v) : "");
    }
}

static int cmd_info(int argc, char **argv)
{
    const char *name = "toro kb info", *pos[1] = {NULL};
    int as_json = 0;
    const toro_opt_t opts[] = {
        {"--json", NULL, TORO_OPT_FLAG, &as_json, NULL, 0, 0, NULL},
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    const toro_cmd_t cmd = {.name = name, .usage = info_usage, .opts = opts, .pos = pos, .max_pos = 1};
    int prc = toro_cli_parse(&cmd, argc, argv, NULL);
    if (prc != TORO_CLI_OK)
        return prc == TORO_CLI_HELP ? 0 : 2;
    if (!pos[0])
        return toro_cli_fail(name, "missing FILE (the snapshot)");
    toro_kb_t *kb = NULL;
    if (open_kb(name, pos[0], &kb)) /* checks that it is a snapshot */
        return 1;
    toro_kb_close(kb);
    struct stat st;
    char *err = NULL;
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(pos[0]));
    json_object_set_new(o, "bytes", json_integer(stat(pos[0], &st) == 0 ? (json_int_t)st.st_size : 0));
    if (info_counts(pos[0], o, &err) != 0) {
        fprintf(stderr, "%s: %s: %s\n", name, pos[0], err ? err : "cannot read the snapshot");
        free(err);
        json_decref(o);
        return 1;
    }
    if (as_json) {
        char *s = json_dumps(o, JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
    } else {
        print_info_text(pos[0], o);
    }
    json_decref(o);
    return 0;
}

static void verify_usage(FILE *f)
{
    fprintf(f, "usage: toro kb verify FILE\n"
               "  check a snapshot's stored checksum and its SQLite structure (exit 1 when damaged)\n");
}

static int cmd_verify(int argc, char **argv)
{
    const char *name = "toro kb verify", *pos[1] = {NULL};
    const toro_opt_t opts[] = {
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    const toro_cmd_t cmd = {.name = name, .usage = verify_usage, .opts = opts, .pos = pos, .max_pos = 1};
    int prc = toro_cli_parse(&cmd, argc, argv, NULL);
    if (prc != TORO_CLI_OK)
        return prc == TORO_CLI_HELP ? 0 : 2;
    if (!pos[0])
        return toro_cli_fail(name, "missing FILE (the snapshot)");
    char sum[80] = "", *err = NULL;
    int rc = toro_kb_verify_file(pos[0], sum, &err);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", name, err ? err : toro_strerror(rc));
        free(err);
        return 1;
    }
    if (rc == 1)
        printf("%s: structure ok; no stored checksum (built by an older toro), content %s\n", pos[0], sum);
    else
        printf("%s: ok, %s\n", pos[0], sum);
    return 0;
}

int toro_cmd_kb(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "toro kb: missing subcommand (build, search, eval, info or verify)\n");
        kb_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "build") == 0)
        return cmd_build(argc - 2, argv + 2);
    if (strcmp(sub, "search") == 0)
        return cmd_search(argc - 2, argv + 2);
    if (strcmp(sub, "eval") == 0)
        return cmd_eval(argc - 2, argv + 2);
    if (strcmp(sub, "info") == 0)
        return cmd_info(argc - 2, argv + 2);
    if (strcmp(sub, "verify") == 0)
        return cmd_verify(argc - 2, argv + 2);
    if (strcmp(sub, "help") == 0 || toro_cli_is_help(sub)) {
        kb_usage(stdout);
        return 0;
    }
    fprintf(stderr, "toro kb: unknown subcommand '%s' (build, search, eval, info or verify)\n", sub);
    kb_usage(stderr);
    return 2;
}

int toro_cmd_ask(int argc, char **argv)
{
    const char *name = "toro ask", *pos[1] = {NULL}, *file = getenv("TORO_KB");
    int as_json = 0;
    const toro_opt_t opts[] = {
        {"--kb", NULL, TORO_OPT_STR, &file, "FILE", 0, 0, NULL},
        {"--json", NULL, TORO_OPT_FLAG, &as_json, NULL, 0, 0, NULL},
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    const toro_cmd_t cmd = {.name = name, .usage = ask_usage, .opts = opts, .pos = pos, .max_pos = 1};
    int prc = toro_cli_parse(&cmd, argc - 1, argv + 1, NULL);
    if (prc != TORO_CLI_OK)
        return prc == TORO_CLI_HELP ? 0 : 2;
    const char *question = pos[0];
    if (!file || !*file)
        return toro_cli_fail(name, "missing --kb FILE (the snapshot; or env TORO_KB)");
    if (!question)
        return toro_cli_fail(name, "missing the question (quote it: toro ask --kb FILE \"question\")");
    char *q = toro_trim_dup(question);
    if (!q || !*q || toro_utf8_count(q, strlen(q)) < 0 || toro_utf8_count(q, strlen(q)) > 2000) {
        free(q);
        return toro_cli_fail(name, "the question must be non-empty UTF-8 text of at most 2000 characters");
    }
    toro_kb_t *kb = NULL;
    if (open_kb("toro ask", file, &kb)) {
        free(q);
        return 1;
    }
    toro_answerer_t *ans = NULL;
    toro_answer_t a;
    memset(&a, 0, sizeof(a));
    char *err = NULL;
    int rc = toro_answerer_extractive_new(kb, &ans);
    if (rc == 0)
        rc = toro_answerer_answer(ans, q, &a, &err);
    if (rc) {
        fprintf(stderr, "toro ask: %s\n", err ? err : toro_strerror(rc));
    } else if (as_json) {
        json_t *src = json_array();
        for (size_t i = 0; i < a.n_sources; i++) {
            toro_source_t *s = &a.sources[i];
            json_array_append_new(src, json_pack("{s:I, s:s, s:s, s:s, s:s, s:f, s:s}", "n", (json_int_t)i + 1,
                                                 "doc_id", s->doc_id, "title", s->title, "section", s->section,
                                                 "chunk_id", s->chunk_id, "score", s->score, "snippet", s->snippet));
        }
        json_t *o = json_pack("{s:s, s:s, s:o, s:b, s:s, s:s}", "question", q, "answer", a.text, "sources", src,
                              "found_relevant_docs", a.found_relevant_docs, "model", a.model, "kb_version",
                              a.kb_version);
        char *s = json_dumps(o, JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
        json_decref(o);
    } else {
        printf("%s\n", a.text);
        if (a.n_sources) {
            printf("\n%s\n", strcmp(toro_kb_detect_lang(q), "en") == 0 ? "Sources:" : "Fontes:");
            for (size_t i = 0; i < a.n_sources; i++) {
                toro_source_t *s = &a.sources[i];
                printf("[%zu] %s — %s%s%s (%s, score %.2f)\n", i + 1, s->doc_id, s->title, *s->section ? " > " : "",
                       s->section, s->chunk_id, s->score);
            }
        }
    }
    free(err);
    toro_answer_clear(&a);
    toro_answerer_free(ans);
    toro_kb_close(kb);
    free(q);
    return rc ? 1 : 0;
}
