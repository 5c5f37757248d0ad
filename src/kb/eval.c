/* eval.c: retrieval metrics on labeled questions and BEIR data sets (see
 * eval.h). Metrics follow the usual definitions: Recall@k = relevant docs in
 * the top k / relevant docs; MRR over the first 100 docs; nDCG@10 with the
 * graded qrels (binary for the project format). */
#include "kb/eval.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/util.h"
#include "kb/analyzer.h"
#include "kb/index.h"

#define EVAL_DOCS 100    /* documents ranked per question */
#define EVAL_CHUNKS 300  /* chunk hits fetched to fill EVAL_DOCS documents */


int toro_eval_contains_folded(const char *haystack, const char *needle)
{
    size_t hl, nl;
    char *h = toro_fold(haystack, strlen(haystack), &hl);
    char *n = toro_fold(needle, strlen(needle), &nl);
    int r = h && n && strstr(h, n) != NULL;
    free(h);
    free(n);
    return r;
}

typedef struct rel {
    const char *doc;  /* borrowed */
    double grade;
} rel_t;

/* Ranked doc ids (borrowed from hits), deduplicated, at most EVAL_DOCS. */
static size_t rank_docs(toro_kb_hit_t *hits, size_t nh, const char **docs)
{
    size_t nd = 0;
    for (size_t i = 0; i < nh && nd < EVAL_DOCS; i++) {
        int seen = 0;
        for (size_t j = 0; j < nd && !seen; j++)
            seen = strcmp(docs[j], hits[i].doc_id) == 0;
        if (!seen)
            docs[nd++] = hits[i].doc_id;
    }
    return nd;
}

static double grade_of(const rel_t *rel, size_t nrel, const char *doc)
{
    for (size_t i = 0; i < nrel; i++)
        if (strcmp(rel[i].doc, doc) == 0)
            return rel[i].grade;
    return 0;
}

static int cmp_grade_desc(const void *a, const void *b)
{
    double x = ((const rel_t *)a)->grade, y = ((const rel_t *)b)->grade;
    return x > y ? -1 : x < y;
}

/* Adds one question's metrics to the sums in m. */
static void score_one(const char **docs, size_t nd, rel_t *rel, size_t nrel, toro_eval_metrics_t *m)
{
    size_t nposrel = 0;
    for (size_t i = 0; i < nrel; i++)
        if (rel[i].grade > 0)
            nposrel++;
    if (!nposrel)
        return;
    size_t hit1 = 0, hit5 = 0, hit10 = 0, hit100 = 0;
    double rr = 0, dcg = 0;
    for (size_t r = 0; r < nd; r++) {
        double g = grade_of(rel, nrel, docs[r]);
        if (g <= 0)
            continue;
        if (rr == 0)
            rr = 1.0 / (double)(r + 1);
        if (r < 1)
            hit1++;
        if (r < 5)
            hit5++;
        if (r < 10) {
            hit10++;
            dcg += (pow(2.0, g) - 1) / log2((double)r + 2);
        }
        hit100++;
    }
    qsort(rel, nrel, sizeof(rel_t), cmp_grade_desc);
    double idcg = 0;
    for (size_t r = 0; r < nrel && r < 10; r++)
        if (rel[r].grade > 0)
            idcg += (pow(2.0, rel[r].grade) - 1) / log2((double)r + 2);
    m->n_questions++;
    m->recall1 += (double)hit1 / (double)nposrel;
    m->recall5 += (double)hit5 / (double)nposrel;
    m->recall10 += (double)hit10 / (double)nposrel;
    m->recall100 += (double)hit100 / (double)nposrel;
    m->mrr += rr;
    m->ndcg10 += idcg > 0 ? dcg / idcg : 0;
}

static void finish(toro_eval_metrics_t *m, double total_ms, size_t nsearch, size_t facts_found, size_t facts_asked)
{
    if (m->n_questions) {
        double n = (double)m->n_questions;
        m->recall1 /= n;
        m->recall5 /= n;
        m->recall10 /= n;
        m->recall100 /= n;
        m->mrr /= n;
        m->ndcg10 /= n;
    }
    m->fact_rate = m->n_answered ? (double)m->n_all_facts / (double)m->n_answered : 0;
    m->offtopic_refusal_rate = m->n_offtopic ? (double)m->n_offtopic_ok / (double)m->n_offtopic : 0;
    m->false_refusal_rate = m->n_inscope ? (double)m->n_inscope_refused / (double)m->n_inscope : 0;
    m->fact_item_rate = facts_asked ? (double)facts_found / (double)facts_asked : 0;
    m->mean_ms = nsearch ? total_ms / (double)nsearch : 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int toro_kb_eval_questions(toro_kb_t *kb, const char *path, toro_eval_answer_fn answer, void *ud, FILE *detail,
                           toro_eval_metrics_t *m, char **err)
{
    return toro_kb_eval_questions_mode(kb, path, TORO_KB_MODE_DEFAULT, answer, ud, detail, m, err);
}

/* Scores the answerer's text for one question: off-topic refused or answered,
 * or in-scope key facts found and false "no information". */
static void score_answer(toro_eval_metrics_t *m, const char *qid, const char *question, size_t nrel, json_t *facts,
                         const char *text, int found, FILE *detail, size_t *facts_found, size_t *facts_asked)
{
    if (nrel == 0) {
        m->n_offtopic++;
        if (!found)
            m->n_offtopic_ok++;
        else if (detail)
            fprintf(detail, "offtopic-answered %s: %s\n", qid, question);
        return;
    }
    size_t nf = facts ? json_array_size(facts) : 0, ok = 0;
    for (size_t i = 0; i < nf; i++) {
        const char *kf = json_string_value(json_array_get(facts, i));
        if (kf && toro_eval_contains_folded(text, kf))
            ok++;
        else if (detail)
            fprintf(detail, "fact-missing %s: \"%s\" in: %s\n", qid, kf ? kf : "?", question);
    }
    *facts_asked += nf;
    *facts_found += ok;
    m->n_answered++;
    if (ok == nf)
        m->n_all_facts++;
    m->n_inscope++;
    if (!found) {
        m->n_inscope_refused++;
        m->n_false_noinfo++;
        if (detail)
            fprintf(detail, "false-noinfo %s: %s\n", qid, question);
    }
}

/* Scores retrieval's own refusal for one question (no answerer): the top hit
 * below the relevance threshold refuses. */
static void score_refusal(toro_kb_t *kb, toro_eval_metrics_t *m, const char *qid, const char *question, size_t nrel,
                          const toro_kb_hit_t *hits, size_t nh, FILE *detail)
{
    if (nrel == 0) {
        m->n_offtopic++;
        if (nh == 0 || !toro_kb_hit_is_relevant(kb, &hits[0]))
            m->n_offtopic_ok++;
        else if (detail)
            fprintf(detail, "offtopic-found %s: %s -> %s (relevance %.2f)\n", qid, question, hits[0].chunk_id,
                    hits[0].relevance);
        return;
    }
    m->n_inscope++;
    if (nh == 0 || !toro_kb_hit_is_relevant(kb, &hits[0])) {
        m->n_inscope_refused++;
        if (detail)
            fprintf(detail, "false-refusal %s: %s -> %s (relevance %.2f)\n", qid, question, nh ? hits[0].chunk_id : "-",
                    nh ? hits[0].relevance : 0.0);
    }
}

/* The relevant documents of a question line, grade 1, at most 64. */
static size_t relevant_docs(json_t *relj, rel_t rel[64])
{
    size_t nrel = relj ? json_array_size(relj) : 0;
    if (nrel > 64)
        nrel = 64;
    for (size_t i = 0; i < nrel; i++) {
        rel[i].doc = json_string_value(json_array_get(relj, i));
        rel[i].grade = 1;
        if (!rel[i].doc)
            rel[i].doc = "";
    }
    return nrel;
}

/* Sums shared by the questions of one run. */
typedef struct eval_run {
    toro_kb_t *kb;
    toro_kb_mode_t mode;
    toro_eval_answer_fn answer; /* NULL: score retrieval's refusal instead */
    void *ud;
    FILE *detail; /* failures, or NULL */
    toro_eval_metrics_t *m;
    size_t nsearch, facts_found, facts_asked;
    double total_ms;
} eval_run_t;

/* One question line, parsed into o: searches, scores retrieval, then the answer or the refusal. */
static int eval_one(eval_run_t *r, json_t *o, const char *question, json_t *relj, char **err)
{
    toro_eval_metrics_t *m = r->m;
    json_t *facts = json_object_get(o, "key_facts");
    const char *qid = json_string_value(json_object_get(o, "id"));
    qid = qid ? qid : "?";
    rel_t rel[64];
    size_t nrel = relevant_docs(relj, rel);
    toro_kb_hit_t *hits = NULL;
    size_t nh = 0;
    double t0 = now_ms();
    int rc = toro_kb_search_mode(r->kb, question, r->mode, EVAL_CHUNKS, &hits, &nh);
    r->total_ms += now_ms() - t0;
    r->nsearch++;
    if (rc) {
        toro_set_err(err, "search failed: %s", toro_strerror(rc));
        return rc;
    }
    const char *docs[EVAL_DOCS];
    size_t nd = rank_docs(hits, nh, docs);
    size_t before = m->n_questions;
    double rr_before = m->recall5;
    if (nrel)
        score_one(docs, nd, rel, nrel, m);
    if (r->detail && nrel && m->n_questions > before && m->recall5 - rr_before < 1.0 - 1e-9)
        fprintf(r->detail, "miss@5 %s: %s -> top: %s %s %s\n", qid, question, nd > 0 ? docs[0] : "-",
                nd > 1 ? docs[1] : "-", nd > 2 ? docs[2] : "-");
    if (r->answer) {
        char *text = NULL;
        int found = 0;
        if (r->answer(r->ud, question, &text, &found) == 0 && text)
            score_answer(m, qid, question, nrel, facts, text, found, r->detail, &r->facts_found, &r->facts_asked);
        free(text);
    } else {
        score_refusal(r->kb, m, qid, question, nrel, hits, nh, r->detail);
    }
    toro_kb_hits_free(hits, nh);
    return 0;
}

int toro_kb_eval_questions_mode(toro_kb_t *kb, const char *path, toro_kb_mode_t mode, toro_eval_answer_fn answer,
                                void *ud, FILE *detail, toro_eval_metrics_t *m, char **err)
{
    assert(kb && path && m);
    memset(m, 0, sizeof(*m));
    FILE *f = fopen(path, "r");
    if (!f) {
        toro_set_err(err, "cannot open %s", path);
        return TORO_EIO;
    }
    eval_run_t run = {.kb = kb, .mode = mode, .answer = answer, .ud = ud, .detail = detail, .m = m};
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    int rc = 0;
    while (getline(&line, &cap, f) > 0 && rc == 0) {
        lineno++;
        if (line[0] == '\n' || line[0] == '#')
            continue;
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        const char *question = o ? json_string_value(json_object_get(o, "question")) : NULL;
        json_t *relj = o ? json_object_get(o, "relevant") : NULL;
        if (!question || (relj && !json_is_array(relj))) {
            toro_set_err(err, "%s:%zu: expected {\"question\": ..., \"relevant\": [...]}", path, lineno);
            rc = TORO_EFORMAT;
        } else {
            rc = eval_one(&run, o, question, relj, err);
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (rc == 0 && m->n_questions == 0 && m->n_offtopic == 0) {
        toro_set_err(err, "%s: no questions", path);
        rc = TORO_EFORMAT;
    }
    finish(m, run.total_ms, run.nsearch, run.facts_found, run.facts_asked);
    return rc;
}

/* ---- BEIR ------------------------------------------------------------------ */

typedef struct qrel {
    char *qid, *doc;
    double grade;
} qrel_t;

static int cmp_qrel(const void *a, const void *b)
{
    return strcmp(((const qrel_t *)a)->qid, ((const qrel_t *)b)->qid);
}

static int beir_build(const char *dir, const char *snapshot_path, toro_embedder_t *e,
                      toro_kb_embed_progress_cb progress, char **err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/corpus.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        toro_set_err(err, "cannot open %s", path);
        return TORO_EIO;
    }
    toro_kb_builder_t *b = NULL;
    toro_chunk_params_t params = TORO_CHUNK_PARAMS_DEFAULT;
    int rc = toro_kb_builder_new(snapshot_path, &params, &b, err);
    if (rc == 0)
        toro_kb_builder_set_embedder(b, e, progress, NULL);
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t ll;
    while (rc == 0 && (ll = getline(&line, &cap, f)) > 0) {
        lineno++;
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        const char *id = o ? json_string_value(json_object_get(o, "_id")) : NULL;
        const char *title = o ? json_string_value(json_object_get(o, "title")) : NULL;
        const char *text = o ? json_string_value(json_object_get(o, "text")) : NULL;
        if (!id || !text) {
            json_decref(o);
            if (line[0] == '\n')
                continue;
            toro_set_err(err, "%s:%zu: expected {\"_id\", \"title\", \"text\"}", path, lineno);
            rc = TORO_EFORMAT;
            break;
        }
        toro_kb_builder_hash(b, line, (size_t)ll);
        toro_doc_t doc;
        rc = toro_chunk_document(id, text, strlen(text), TORO_FMT_TXT, &params, &doc);
        if (rc == 0) {
            if (title && *title) {
                free(doc.title);
                doc.title = strdup(title);
            }
            if (!doc.title)
                rc = TORO_ENOMEM;
            else
                rc = toro_kb_builder_add_doc(b, &doc, NULL, (size_t)ll);
            toro_doc_clear(&doc);
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (rc == 0)
        rc = toro_kb_builder_finish(b, NULL, err);
    toro_kb_builder_free(b);
    return rc;
}

int toro_kb_beir_build(const char *dir, const char *snapshot_path, toro_embedder_t *e,
                       toro_kb_embed_progress_cb progress, char **err)
{
    return beir_build(dir, snapshot_path, e, progress, err);
}

int toro_kb_eval_beir(const char *dir, const char *snapshot_path, toro_eval_metrics_t *m, char **err)
{
    memset(m, 0, sizeof(*m));
    toro_kb_t *kb = NULL;
    int rc = beir_build(dir, snapshot_path, NULL, NULL, err);
    if (rc == 0)
        rc = toro_kb_open(snapshot_path, &kb, err);
    if (rc == 0)
        rc = toro_kb_beir_score(kb, dir, TORO_KB_MODE_BM25, m, NULL, NULL, err);
    toro_kb_close(kb);
    return rc;
}

static uint32_t qid_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* queries.jsonl of a BEIR directory into queries: {"_id": text}. */
static int read_queries(const char *dir, json_t *queries, char **err)
{
    char path[4096], *line = NULL;
    size_t cap = 0;
    snprintf(path, sizeof(path), "%s/queries.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        toro_set_err(err, "cannot open %s", path);
        return TORO_EIO;
    }
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        const char *id = o ? json_string_value(json_object_get(o, "_id")) : NULL;
        json_t *text = o ? json_object_get(o, "text") : NULL;
        if (id && json_is_string(text))
            json_object_set(queries, id, text);
        json_decref(o);
    }
    free(line);
    fclose(f);
    return 0;
}

/* qrels/test.tsv of a BEIR directory (query id, doc id, grade; a header line
 * is skipped), sorted by query id. On failure *qrels and *nq hold what was
 * read so far, for the caller to free. */
static int read_qrels(const char *dir, qrel_t **qrels, size_t *nq, char **err)
{
    char path[4096], *line = NULL;
    size_t cap = 0, capq = 0;
    int rc = 0;
    snprintf(path, sizeof(path), "%s/qrels/test.tsv", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        toro_set_err(err, "cannot open %s", path);
        return TORO_EIO;
    }
    while (getline(&line, &cap, f) > 0) {
        char *save = NULL;
        char *a = strtok_r(line, "\t\r\n", &save);
        char *b = a ? strtok_r(NULL, "\t\r\n", &save) : NULL;
        char *c = b ? strtok_r(NULL, "\t\r\n", &save) : NULL;
        if (!a || !b)
            continue;
        char *endp = NULL;
        double g = c ? strtod(c, &endp) : 1;
        if (c && endp == c) /* header line */
            continue;
        if (*nq == capq) {
            capq = capq ? capq * 2 : 1024;
            qrel_t *nqr = realloc(*qrels, capq * sizeof(qrel_t));
            if (!nqr) {
                rc = TORO_ENOMEM;
                break;
            }
            *qrels = nqr;
        }
        (*qrels)[*nq].qid = strdup(a);
        (*qrels)[*nq].doc = strdup(b);
        (*qrels)[*nq].grade = g;
        (*nq)++;
    }
    free(line);
    fclose(f);
    if (rc == 0)
        qsort(*qrels, *nq, sizeof(qrel_t), cmp_qrel);
    return rc;
}

/* Metrics of the whole set and of its dev and test splits, with search times. */
typedef struct beir_sums {
    toro_eval_metrics_t all, dev, test;
    size_t nsearch, nsd, nst;
    double total_ms, msd, mst;
} beir_sums_t;

/* Searches one query and scores it into the whole set and its split. */
static int beir_query(toro_kb_t *kb, toro_kb_mode_t mode, const char *qid, const char *qt, rel_t *rel, size_t nrel,
                      beir_sums_t *s, char **err)
{
    toro_kb_hit_t *hits = NULL;
    size_t nh = 0;
    double t0 = now_ms();
    int rc = toro_kb_search_mode(kb, qt, mode, EVAL_CHUNKS, &hits, &nh);
    double ms = now_ms() - t0;
    s->total_ms += ms;
    s->nsearch++;
    if (rc) {
        toro_set_err(err, "search failed: %s", toro_strerror(rc));
        return rc;
    }
    const char *docs[EVAL_DOCS];
    size_t nd = rank_docs(hits, nh, docs);
    score_one(docs, nd, rel, nrel, &s->all);
    int is_dev = qid_hash(qid) % 5 == 0;
    /* score_one sorts rel; scoring again on the same docs is the same */
    score_one(docs, nd, rel, nrel, is_dev ? &s->dev : &s->test);
    if (is_dev) {
        s->nsd++;
        s->msd += ms;
    } else {
        s->nst++;
        s->mst += ms;
    }
    toro_kb_hits_free(hits, nh);
    return 0;
}

int toro_kb_beir_score(toro_kb_t *kb, const char *dir, toro_kb_mode_t mode, toro_eval_metrics_t *all,
                       toro_eval_metrics_t *dev, toro_eval_metrics_t *test, char **err)
{
    beir_sums_t s;
    memset(&s, 0, sizeof(s));
    qrel_t *qrels = NULL;
    size_t nq = 0;
    int rc = 0;
    assert(kb && dir);
    json_t *queries = json_object();
    if (!queries)
        return TORO_ENOMEM;
    if ((rc = read_queries(dir, queries, err)) != 0 || (rc = read_qrels(dir, &qrels, &nq, err)) != 0)
        goto out;
    for (size_t i = 0; i < nq && rc == 0;) {
        size_t j = i;
        while (j < nq && strcmp(qrels[j].qid, qrels[i].qid) == 0)
            j++;
        const char *qt = json_string_value(json_object_get(queries, qrels[i].qid));
        if (qt) {
            rel_t rel[256];
            size_t nrel = 0;
            for (size_t k = i; k < j && nrel < 256; k++)
                rel[nrel++] = (rel_t){qrels[k].doc, qrels[k].grade};
            rc = beir_query(kb, mode, qrels[i].qid, qt, rel, nrel, &s, err);
        }
        i = j;
    }
    finish(&s.all, s.total_ms, s.nsearch, 0, 0);
    finish(&s.dev, s.msd, s.nsd, 0, 0);
    finish(&s.test, s.mst, s.nst, 0, 0);
    if (all)
        *all = s.all;
    if (dev)
        *dev = s.dev;
    if (test)
        *test = s.test;
out:
    for (size_t i = 0; i < nq; i++) {
        free(qrels[i].qid);
        free(qrels[i].doc);
    }
    free(qrels);
    json_decref(queries);
    return rc;
}
