/* kb_search_bench.c: toro retrieval throughput in-process on one thread, for a
 * fair comparison with bm25s and SQLite FTS5 (bench/retrieval.py).
 * usage: kb_search_bench SNAPSHOT QUERIES.txt [-k 10] [--reps R] [--eval-k 50] [--out RESULTS.jsonl]
 *                        [--exhaustive 1] [--check 1]
 * QUERIES.txt: one query per line. Every query is searched once as warm-up
 * (the doc ids of its top EVAL_K chunks, default 50, go to RESULTS.jsonl, one
 * JSON array per line, for nDCG@10 over distinct documents), then the
 * whole list R times (default 3) timed per query with CLOCK_MONOTONIC.
 * --exhaustive 1 scores every posting (no pruning); --check 1 also searches
 * every query exhaustively on a second handle and counts the queries whose
 * top k (chunk ids and scores) are identical.
 * Prints one JSON line: queries, qps, p50_ms, p99_ms, cpu_ms_per_query (user +
 * system CPU of the timed loop, getrusage: less sensitive to other load than
 * wall time), rss_open_mb (VmRSS right after open), postings_mb, open_s,
 * and with --check identical_topk / checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/resource.h>

#include "kb/index.h"
#include "kb/kb.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static double rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtod(line + 6, NULL);
    if (f)
        fclose(f);
    return kb / 1024.0;
}

/* Queries whose top k are the same chunks with the same scores on both handles. */
static size_t check_same(const char *path, char **qs, size_t nq, size_t k)
{
    toro_kb_t *full = NULL;
    char *err = NULL;
    if (toro_kb_open(path, &full, &err) != 0) {
        fprintf(stderr, "kb_search_bench: %s\n", err ? err : "cannot open snapshot");
        exit(1);
    }
    toro_kb_set_exhaustive(full, 1);
    toro_kb_t *pruned = NULL;
    toro_kb_open(path, &pruned, &err);
    size_t same = 0;
    for (size_t i = 0; i < nq; i++) {
        toro_kb_hit_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        int ok = toro_kb_search(pruned, qs[i], k, &a, &na) == 0 && toro_kb_search(full, qs[i], k, &b, &nb) == 0 &&
                 na == nb;
        for (size_t j = 0; ok && j < na; j++)
            ok = strcmp(a[j].chunk_id, b[j].chunk_id) == 0 && a[j].score == b[j].score;
        if (!ok)
            fprintf(stderr, "kb_search_bench: top %zu differs for \"%s\"\n", k, qs[i]);
        same += ok;
        toro_kb_hits_free(a, na);
        toro_kb_hits_free(b, nb);
    }
    toro_kb_close(pruned);
    toro_kb_close(full);
    return same;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void put_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: kb_search_bench SNAPSHOT QUERIES.txt [-k 10] [--reps R] [--out FILE]\n");
        return 2;
    }
    size_t k = 10;
    int reps = 3;
    size_t eval_k = 50;
    const char *outp = NULL;
    int exhaustive = 0, check = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-k"))
            k = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--eval-k"))
            eval_k = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--out"))
            outp = argv[i + 1];
        else if (!strcmp(argv[i], "--exhaustive"))
            exhaustive = (int)strtol(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--check"))
            check = (int)strtol(argv[i + 1], NULL, 10);
    }
    toro_kb_t *kb = NULL;
    char *err = NULL;
    double o0 = now();
    if (toro_kb_open(argv[1], &kb, &err) != 0) {
        fprintf(stderr, "kb_search_bench: %s\n", err ? err : "cannot open snapshot");
        return 1;
    }
    double open_s = now() - o0, rss_open = rss_mb();
    toro_kb_set_exhaustive(kb, exhaustive);
    FILE *qf = fopen(argv[2], "r");
    if (!qf) {
        perror(argv[2]);
        return 1;
    }
    char **qs = NULL, *line = NULL;
    size_t nq = 0, capq = 0, cap = 0;
    ssize_t ll;
    while ((ll = getline(&line, &cap, qf)) > 0) {
        while (ll > 0 && (line[ll - 1] == '\n' || line[ll - 1] == '\r'))
            line[--ll] = 0;
        if (nq == capq)
            qs = realloc(qs, (capq = capq ? capq * 2 : 1024) * sizeof(char *));
        qs[nq++] = strdup(line);
    }
    fclose(qf);
    FILE *out = outp ? fopen(outp, "w") : NULL;
    toro_kb_hit_t *hits;
    size_t n;
    for (size_t i = 0; i < nq; i++) { /* warm-up + results */
        if (toro_kb_search(kb, qs[i], out ? eval_k : k, &hits, &n) != 0)
            n = 0, hits = NULL;
        if (out) {
            fputc('[', out);
            for (size_t j = 0; j < n; j++) {
                if (j)
                    fputc(',', out);
                put_json_str(out, hits[j].doc_id);
            }
            fputs("]\n", out);
        }
        toro_kb_hits_free(hits, n);
    }
    if (out)
        fclose(out);
    double *lat = malloc(nq * (size_t)reps * sizeof(double));
    size_t m = 0;
    double t0 = now(), c0 = cpu_s();
    for (int r = 0; r < reps; r++)
        for (size_t i = 0; i < nq; i++) {
            double a = now();
            if (toro_kb_search(kb, qs[i], k, &hits, &n) == 0)
                toro_kb_hits_free(hits, n);
            lat[m++] = (now() - a) * 1000.0;
        }
    double total = now() - t0, cpu = cpu_s() - c0;
    qsort(lat, m, sizeof(double), cmpd);
    printf("{\"queries\": %zu, \"qps\": %.1f, \"p50_ms\": %.4f, \"p99_ms\": %.4f, \"cpu_ms_per_query\": %.4f, "
           "\"rss_open_mb\": %.1f, \"postings_mb\": %.1f, \"open_s\": %.2f, \"exhaustive\": %d",
           m, (double)m / total, lat[m / 2], lat[(size_t)(0.99 * (double)(m - 1))], 1000.0 * cpu / (double)m, rss_open,
           (double)toro_kb_postings_bytes(kb) / 1e6, open_s, exhaustive);
    toro_kb_close(kb);
    if (check)
        printf(", \"identical_topk\": %zu, \"checked\": %zu", check_same(argv[1], qs, nq, k), nq);
    printf("}\n");
    return 0;
}
