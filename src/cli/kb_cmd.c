/* kb_cmd.c: `toro kb build|search|eval|info` and `toro ask`: argument
 * parsing and printing around the kb engine (src/kb) and the extractive
 * answerer. It holds no logic of its own beyond formatting. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "answer/answer.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "kb/eval.h"
#include "kb/index.h"
#include "kb/checksum.h"
#include "kb/kb.h"

static void kb_usage(FILE *f)
{
    fprintf(f, "usage:\n"
               "  toro kb build SRC_DIR -o FILE [--max-chars N] [--overlap N]\n"
               "  toro kb search FILE \"query\" [-k 10] [--json]\n"
               "  toro kb eval FILE QUESTIONS.jsonl [--json] [-v]\n"
               "  toro kb eval --beir DIR [--json] [--keep SNAPSHOT]\n"
               "  toro kb info FILE\n"
               "  toro kb verify FILE      check the snapshot's checksum and structure\n"
               "  toro ask --kb FILE \"question\" [--json]\n");
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

static int parse_size(const char *s, long min, long max, size_t *out)
{
    long v;
    if (toro_parse_long(s, min, max, &v) != 0)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int cmd_build(int argc, char **argv)
{
    const char *src = NULL, *out = NULL;
    toro_chunk_params_t p = TORO_CHUNK_PARAMS_DEFAULT;
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--max-chars") == 0 && i + 1 < argc) {
            if (parse_size(argv[++i], 100, 100000, &p.max_chars)) {
                fprintf(stderr, "toro kb build: --max-chars must be 100..100000\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--overlap") == 0 && i + 1 < argc) {
            if (parse_size(argv[++i], 0, 50000, &p.overlap_chars)) {
                fprintf(stderr, "toro kb build: --overlap must be 0..50000\n");
                return 2;
            }
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "toro kb build: unknown option %s\n", argv[i]);
            return 2;
        } else if (!src)
            src = argv[i];
        else {
            fprintf(stderr, "toro kb build: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!src || !out) {
        kb_usage(stderr);
        return 2;
    }
    if (p.overlap_chars >= p.max_chars) {
        fprintf(stderr, "toro kb build: --overlap must be smaller than --max-chars\n");
        return 2;
    }
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
    const char *file = NULL, *query = NULL;
    size_t k = 10;
    int as_json = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-k") == 0 && i + 1 < argc) {
            if (parse_size(argv[++i], 1, 10000, &k)) {
                fprintf(stderr, "toro kb search: -k must be 1..10000\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "toro kb search: unknown option %s\n", argv[i]);
            return 2;
        } else if (!file)
            file = argv[i];
        else if (!query)
            query = argv[i];
        else {
            fprintf(stderr, "toro kb search: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!file || !query) {
        kb_usage(stderr);
        return 2;
    }
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
    const char *file = NULL, *questions = NULL, *beir = NULL, *keep = NULL;
    int as_json = 0, verbose = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--beir") == 0 && i + 1 < argc)
            beir = argv[++i];
        else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc)
            keep = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0)
            verbose = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "toro kb eval: unknown option %s\n", argv[i]);
            return 2;
        } else if (!file)
            file = argv[i];
        else if (!questions)
            questions = argv[i];
        else {
            fprintf(stderr, "toro kb eval: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
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
    if (!file || !questions) {
        kb_usage(stderr);
        return 2;
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

static int cmd_info(int argc, char **argv)
{
    if (argc != 1) {
        kb_usage(stderr);
        return 2;
    }
    toro_kb_t *kb = NULL;
    if (open_kb("toro kb info", argv[0], &kb))
        return 1;
    printf("%s: version %s\n", argv[0], toro_kb_version(kb));
    toro_kb_close(kb);
    return 0;
}

static int cmd_verify(int argc, char **argv)
{
    if (argc != 1) {
        kb_usage(stderr);
        return 2;
    }
    char sum[80] = "", *err = NULL;
    int rc = toro_kb_verify_file(argv[0], sum, &err);
    if (rc < 0) {
        fprintf(stderr, "toro kb verify: %s\n", err ? err : toro_strerror(rc));
        free(err);
        return 1;
    }
    if (rc == 1)
        printf("%s: structure ok; no stored checksum (built by an older toro), content %s\n", argv[0], sum);
    else
        printf("%s: ok, %s\n", argv[0], sum);
    return 0;
}

int toro_cmd_kb(int argc, char **argv)
{
    if (argc < 2) {
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
    if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0) {
        kb_usage(stdout);
        return 0;
    }
    fprintf(stderr, "toro kb: unknown subcommand '%s'\n", sub);
    kb_usage(stderr);
    return 2;
}

int toro_cmd_ask(int argc, char **argv)
{
    const char *file = NULL, *question = NULL;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--kb") == 0 && i + 1 < argc)
            file = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "toro ask: unknown option %s\n", argv[i]);
            return 2;
        } else if (!question)
            question = argv[i];
        else {
            fprintf(stderr, "toro ask: unexpected argument %s (quote the question)\n", argv[i]);
            return 2;
        }
    }
    if (!file || !question) {
        fprintf(stderr, "usage: toro ask --kb FILE \"question\" [--json]\n");
        return 2;
    }
    char *q = toro_trim_dup(question);
    if (!q || !*q || toro_utf8_count(q, strlen(q)) < 0 || toro_utf8_count(q, strlen(q)) > 2000) {
        fprintf(stderr, "toro ask: the question must be non-empty UTF-8 text of at most 2000 characters\n");
        free(q);
        return 2;
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
