/* kb_search_bench.c: toro retrieval throughput in-process on one thread, for a
 * fair comparison with bm25s and SQLite FTS5 (bench/retrieval.py).
 * usage: kb_search_bench SNAPSHOT QUERIES.txt [-k 10] [--reps R] [--eval-k 50] [--out RESULTS.jsonl]
 * QUERIES.txt: one query per line. Every query is searched once as warm-up
 * (the doc ids of its top EVAL_K chunks, default 50, go to RESULTS.jsonl, one
 * JSON array per line, for nDCG@10 over distinct documents), then the
 * whole list R times (default 3) timed per query with CLOCK_MONOTONIC.
 * Prints one JSON line: queries, qps, p50_ms, p99_ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kb/kb.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
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
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-k"))
            k = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--eval-k"))
            eval_k = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--out"))
            outp = argv[i + 1];
    }
    toro_kb_t *kb = NULL;
    char *err = NULL;
    if (toro_kb_open(argv[1], &kb, &err) != 0) {
        fprintf(stderr, "kb_search_bench: %s\n", err ? err : "cannot open snapshot");
        return 1;
    }
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
    double t0 = now();
    for (int r = 0; r < reps; r++)
        for (size_t i = 0; i < nq; i++) {
            double a = now();
            if (toro_kb_search(kb, qs[i], k, &hits, &n) == 0)
                toro_kb_hits_free(hits, n);
            lat[m++] = (now() - a) * 1000.0;
        }
    double total = now() - t0;
    qsort(lat, m, sizeof(double), cmpd);
    printf("{\"queries\": %zu, \"qps\": %.1f, \"p50_ms\": %.4f, \"p99_ms\": %.4f}\n", m, (double)m / total,
           lat[m / 2], lat[(size_t)(0.99 * (double)(m - 1))]);
    toro_kb_close(kb);
    return 0;
}
