/* extractive.c: the default answerer. It needs no model: it retrieves the top
 * chunks, splits them into sentences and list items, keeps the ones that
 * share the most query terms (near-duplicates dropped, ~700 characters),
 * orders them as in the source and cites each chunk used as [n]. When no
 * chunk passes the relevance threshold it answers the fixed "no information"
 * text. It keeps no per-call state in the answerer, so concurrent calls on
 * one instance are safe (the kb handle is thread-safe). */
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/strbuf.h"
#include "answer/answer.h"
#include "core/error.h"
#include "kb/analyzer.h"
#include "kb/chunker.h"

#define TOP_K 16           /* chunks retrieved (enough to find one in the question's language) */
#define MAX_CHUNKS 5       /* chunks considered for sentences */
#define BUDGET 700         /* answer length budget, bytes (markers excluded) */
#define MAX_UNITS 512      /* sentences/items considered */
#define MAX_QGROUPS 32
#define MAX_UNIT_TERMS 128
#define SNIPPET_MAX 240
#define DUP_JACCARD 0.7

typedef struct extractive {
    toro_answerer_t base; /* ops first */
    toro_kb_t *kb;        /* borrowed */
} extractive_t;

/* Query stems: each group (token) has up to two stems (pt, en). */
typedef struct qset {
    char stems[MAX_QGROUPS][2][TORO_TOKEN_MAX + 1];
    char words[MAX_QGROUPS][TORO_TOKEN_MAX + 1]; /* the folded words themselves */
    int ngroups;
    toro_analyzer_t *an[2];
} qset_t;

static int q_tok(void *ud, const char *tok, size_t len, int kind)
{
    qset_t *q = ud;
    if (kind == TORO_TOK_WORD && (toro_is_stopword("pt", tok, len) || toro_is_stopword("en", tok, len)))
        return 0;
    if (q->ngroups == MAX_QGROUPS)
        return 1;
    int g = q->ngroups;
    for (int l = 0; l < 2; l++) {
        if (kind == TORO_TOK_SPECIAL)
            memcpy(q->stems[g][l], tok, len + 1);
        else
            toro_analyzer_stem(q->an[l], tok, len, q->stems[g][l]);
    }
    for (int i = 0; i < g; i++) /* repeated word */
        if (strcmp(q->stems[i][0], q->stems[g][0]) == 0 && strcmp(q->stems[i][1], q->stems[g][1]) == 0)
            return 0;
    memcpy(q->words[g], tok, len + 1);
    q->ngroups++;
    return 0;
}

/* "O que é X?", "What is X?": the answer should open with the sentence
 * that defines X. folded is the case/accent-folded question. */
static bool asks_definition(const char *folded)
{
    static const char *const starts[] = {"o que e ", "o que sao ", "que e ", "o que significa ", "what is ",
                                         "what are ", "what's ", "define ", NULL};
    while (*folded == ' ' || *folded == '\xc2' || *folded == '\xbf') /* spaces, inverted question mark */
        folded++;
    for (int i = 0; starts[i]; i++)
        if (strncmp(folded, starts[i], strlen(starts[i])) == 0)
            return true;
    return false;
}

/* Skips " (…)" at p: the expansion of an acronym. */
static const char *skip_paren(const char *p)
{
    if (p[0] == ' ' && p[1] == '(') {
        const char *close = strchr(p, ')');
        if (close)
            return close + 1;
    }
    return p;
}

/* Whether p starts " <verb> <word>" with a verb of definition ("é", "são",
 * "is", "are", "means" — "é" is folded to "e") followed by a word that
 * opens a definition (an article or a kind of thing). The follower tells
 * "O CDI é o referencial…" from "LCI e LCA são cobertas…". */
static bool definition_verb(const char *p)
{
    static const char *const verbs[] = {" e ", " sao ", " is ", " are ", " means ", " significa ", NULL};
    static const char *const openers[] = {"um ", "uma ", "o ", "a ", "os ", "as ", "the ", "an ", "titulo", "tipo",
                                          "forma ", "modalidade", "investimento", "aplicac", "fundo", "taxa ",
                                          "indice", "imposto", "tributo", "conta ", "papel", "papeis", "valor",
                                          "instrumento", "produto", "plano", "programa", "mecanismo", NULL};
    for (int v = 0; verbs[v]; v++) {
        size_t vl = strlen(verbs[v]);
        if (strncmp(p, verbs[v], vl) != 0)
            continue;
        for (int o = 0; openers[o]; o++)
            if (strncmp(p + vl, openers[o], strlen(openers[o])) == 0)
                return true;
    }
    return false;
}

/* Whether folded text defines a query word: "<word> [(…)] [e <other> [(…)]]
 * <verb> <opener>…", e.g. "o cdi e o principal referencial",
 * "lci (letra …) e lca (letra …) sao titulos". */
static bool defines_term(const qset_t *q, const char *folded)
{
    for (int g = 0; g < q->ngroups; g++) {
        size_t wl = strlen(q->words[g]);
        for (const char *p = strstr(folded, q->words[g]); p; p = strstr(p + 1, q->words[g])) {
            if (!(p == folded || p[-1] == ' ' || p[-1] == '('))
                continue;
            const char *after = p + wl;
            if (*after == 's') /* plural: "FIIs são …" */
                after++;
            if (*after == ')') /* "Fundos Imobiliários (FIIs) são …" */
                after++;
            after = skip_paren(after);
            if (definition_verb(after))
                return true;
            if (strncmp(after, " e ", 3) == 0) { /* "X e Y (…) são …": a pair defined together */
                const char *w = after + 3;
                while (*w && *w != ' ' && *w != '(')
                    w++;
                if (definition_verb(skip_paren(w)))
                    return true;
            }
        }
    }
    return false;
}


typedef struct unit {
    size_t hit;        /* index of the chunk in hits */
    size_t start, len; /* byte range in hits[hit].text */
    int is_item;       /* list item */
    int intro;         /* ends with ':' (introduces a list) */
    double score;
    int picked;
    char (*terms)[TORO_TOKEN_MAX + 1]; /* analyzed terms (deduped) */
    int nterms;
    uint32_t gmask;    /* query groups matched */
} unit_t;

typedef struct uterms {
    unit_t *u;
    int cap;
} uterms_t;

static int u_tok(void *ud, const char *tok, size_t len, int kind)
{
    uterms_t *t = ud;
    unit_t *u = t->u;
    for (int i = 0; i < u->nterms; i++)
        if (strcmp(u->terms[i], tok) == 0)
            return 0;
    if (u->nterms == t->cap)
        return 1;
    memcpy(u->terms[u->nterms++], tok, len + 1);
    return 0;
}

static double jaccard(const unit_t *a, const unit_t *b)
{
    if (!a->nterms || !b->nterms)
        return 0;
    int inter = 0;
    for (int i = 0; i < a->nterms; i++)
        for (int j = 0; j < b->nterms; j++)
            if (strcmp(a->terms[i], b->terms[j]) == 0) {
                inter++;
                break;
            }
    return (double)inter / (a->nterms + b->nterms - inter);
}

/* Fraction of query groups found among the analyzed terms of a title. */
static double title_coverage(const qset_t *q, toro_analyzer_t *an, const char *title, unit_t *scratch)
{
    if (!q->ngroups)
        return 0;
    uterms_t ut = {scratch, MAX_UNIT_TERMS};
    scratch->nterms = 0;
    toro_analyze(an, title, strlen(title), u_tok, &ut);
    int matched = 0;
    for (int g = 0; g < q->ngroups; g++)
        for (int i = 0; i < scratch->nterms; i++)
            if (strcmp(scratch->terms[i], q->stems[g][0]) == 0 || strcmp(scratch->terms[i], q->stems[g][1]) == 0) {
                matched++;
                break;
            }
    return (double)matched / q->ngroups;
}

/* Growable output string with a hard cap. */

static char *snippet_of(const char *s, size_t len)
{
    size_t n = len;
    int cut = 0;
    if (n > SNIPPET_MAX) {
        n = SNIPPET_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        while (n > SNIPPET_MAX / 2 && s[n] != ' ')
            n--;
        cut = 1;
    }
    char *r = malloc(n + 4);
    if (!r)
        return NULL;
    memcpy(r, s, n);
    if (cut)
        memcpy(r + n, "…", 4);
    else
        r[n] = 0;
    for (char *p = r; *p; p++)
        if (*p == '\n')
            *p = ' ';
    return r;
}

static int no_info(toro_answer_t *out, const char *lang)
{
    out->text = strdup(strcmp(lang, "en") == 0 ? TORO_NO_INFO_EN : TORO_NO_INFO_PT);
    out->found_relevant_docs = false;
    return out->text ? 0 : TORO_ENOMEM;
}

static int ext_answer(toro_answerer_t *self, const char *question, toro_answer_t *out, char **errmsg)
{
    extractive_t *x = (extractive_t *)self;
    memset(out, 0, sizeof(*out));
    if (errmsg)
        *errmsg = NULL;
    const char *lang = toro_kb_detect_lang(question);
    toro_kb_hit_t *hits = NULL;
    size_t nh = 0;
    unit_t *units = NULL;
    size_t nu = 0;
    qset_t *q = NULL;
    char (*termpool)[TORO_TOKEN_MAX + 1] = NULL;
    int *cite = NULL;
    toro_strbuf_t sb = {0};
    int rc;
    out->model = strdup("extractive");
    out->kb_version = strdup(toro_kb_version(x->kb));
    if (!out->model || !out->kb_version) {
        rc = TORO_ENOMEM;
        goto out;
    }
    rc = toro_kb_search(x->kb, question, TOP_K, &hits, &nh);
    if (rc) {
        if (errmsg)
            *errmsg = strdup(toro_strerror(rc));
        goto out;
    }
    if (nh == 0 || !toro_kb_hit_is_relevant(x->kb, &hits[0])) {
        rc = no_info(out, lang);
        goto out;
    }
    /* Chunks worth reading: relevant ones, preferring the question's language. */
    size_t use[MAX_CHUNKS], nuse = 0;
    int same_lang = 0;
    for (size_t i = 0; i < nh; i++)
        if (toro_kb_hit_is_relevant(x->kb, &hits[i]) && strcmp(hits[i].lang, lang) == 0)
            same_lang = 1;
    for (size_t i = 0; i < nh && nuse < MAX_CHUNKS; i++) {
        if (!toro_kb_hit_is_relevant(x->kb, &hits[i]) || hits[i].score < 0.4 * hits[0].score)
            continue;
        if (same_lang && strcmp(hits[i].lang, lang) != 0)
            continue;
        use[nuse++] = i;
    }
    if (nuse == 0) {
        rc = no_info(out, lang);
        goto out;
    }

    q = calloc(1, sizeof(*q));
    units = calloc(MAX_UNITS, sizeof(unit_t));
    /* 4 MB of term slots; only the slots of real units are written and read,
     * so leave the rest untouched (calloc would zero every page per answer) */
    termpool = malloc((size_t)MAX_UNITS * MAX_UNIT_TERMS * sizeof(*termpool));
    if (!q || !units || !termpool) {
        rc = TORO_ENOMEM;
        goto out;
    }
    if ((rc = toro_analyzer_new("pt", false, &q->an[0])) || (rc = toro_analyzer_new("en", false, &q->an[1])))
        goto out;
    bool definition = false;
    {
        size_t fl;
        char *f = toro_fold(question, strlen(question), &fl);
        if (!f) {
            rc = TORO_ENOMEM;
            goto out;
        }
        toro_tokenize(f, fl, q_tok, q);
        definition = asks_definition(f);
        free(f);
    }

    /* Split chunks into units and score them. */
    for (size_t ci = 0; ci < nuse && nu < MAX_UNITS; ci++) {
        size_t h = use[ci];
        const char *t = hits[h].text;
        size_t tl = strlen(t);
        toro_analyzer_t *an = q->an[strcmp(hits[h].lang, "en") == 0 ? 1 : 0];
        /* a document about what was asked (its title names it) speaks first */
        unit_t scratch = {.terms = termpool + nu * MAX_UNIT_TERMS};
        double title_cov = title_coverage(q, an, hits[h].title, &scratch);
        for (size_t pos = 0; pos < tl && nu < MAX_UNITS;) {
            size_t e = toro_sentence_end(t, tl, pos);
            size_t a = pos, b = e;
            while (b > a && (t[b - 1] == ' ' || t[b - 1] == '\n'))
                b--;
            pos = e;
            if (b - a < 3)
                continue;
            unit_t *u = &units[nu];
            u->hit = h;
            u->start = a;
            u->len = b - a;
            u->is_item = (b - a > 2 && t[a] == '-' && t[a + 1] == ' ');
            /* A list item continues until the line ends, even across sentences. */
            if (u->is_item) {
                const char *nl = memchr(t + a, '\n', tl - a);
                size_t le = nl ? (size_t)(nl - t) : tl;
                u->len = le - a;
                pos = nl ? le + 1 : tl;
            }
            u->intro = t[a + u->len - 1] == ':';
            u->terms = termpool + nu * MAX_UNIT_TERMS;
            uterms_t ut = {u, MAX_UNIT_TERMS};
            toro_analyze(an, t + a, u->len, u_tok, &ut);
            for (int g = 0; g < q->ngroups; g++)
                for (int i = 0; i < u->nterms; i++)
                    if (strcmp(u->terms[i], q->stems[g][0]) == 0 || strcmp(u->terms[i], q->stems[g][1]) == 0) {
                        u->gmask |= 1u << g;
                        break;
                    }
            int matched = __builtin_popcount(u->gmask);
            double cov = q->ngroups ? (double)matched / q->ngroups : 0;
            /* Earlier chunks and earlier sentences in a chunk say it best. */
            int lead = a == 0; /* a chunk's first sentence usually states the point */
            u->score = cov + 0.25 / (1.0 + (double)ci) + (lead ? 0.15 : 0.0) + 0.3 * title_cov;
            if (definition && matched) {
                size_t fl;
                char *f = toro_fold(t + a, u->len, &fl);
                if (f && defines_term(q, f))
                    u->score += 0.5; /* "O CDI é ..." answers "o que é CDI?" */
                free(f);
            }
            if (matched == 0)
                u->score = 0.12 / (1.0 + (double)ci); /* context only */
            if (u->len < 25)
                u->score *= 0.6;
            nu++;
        }
    }

    /* Greedy pick by score within the budget, dropping near-duplicates. */
    size_t used = 0;
    int npicked = 0;
    for (;;) {
        size_t best = nu;
        for (size_t i = 0; i < nu; i++)
            if (!units[i].picked && units[i].score > 0 && (best == nu || units[i].score > units[best].score))
                best = i;
        if (best == nu)
            break;
        unit_t *u = &units[best];
        u->picked = -1; /* considered */
        if (npicked > 0 && (u->gmask == 0 || used + u->len > BUDGET))
            continue;
        int dup = 0;
        for (size_t i = 0; i < nu && !dup; i++)
            if (units[i].picked == 1 && jaccard(&units[i], u) > DUP_JACCARD)
                dup = 1;
        if (dup)
            continue;
        u->picked = 1;
        used += u->len + 1;
        npicked++;
        /* A sentence that introduces a list brings its items along. */
        if (u->intro)
            for (size_t i = best + 1; i < nu && units[i].hit == u->hit && units[i].is_item; i++) {
                if (used + units[i].len > BUDGET + 200)
                    break;
                if (units[i].picked != 1) {
                    units[i].picked = 1;
                    used += units[i].len + 1;
                }
            }
        if (used >= BUDGET)
            break;
    }

    /* Compose: chunks in rank order, units in source order, one marker per chunk. */
    cite = calloc(nh, sizeof(int));
    out->sources = calloc(nuse, sizeof(toro_source_t));
    if (!cite || !out->sources) {
        rc = TORO_ENOMEM;
        goto out;
    }
    /* Chunks in the order of their best picked sentence, so the answer opens
     * with the sentence that answers best. */
    double best_of[MAX_CHUNKS] = {0};
    for (size_t i = 0; i < nu; i++)
        for (size_t ci = 0; ci < nuse; ci++)
            if (units[i].picked == 1 && units[i].hit == use[ci] && units[i].score > best_of[ci])
                best_of[ci] = units[i].score;
    for (size_t a = 1; a < nuse; a++) /* insertion sort, stable */
        for (size_t b = a; b > 0 && best_of[b] > best_of[b - 1]; b--) {
            double ts = best_of[b];
            best_of[b] = best_of[b - 1];
            best_of[b - 1] = ts;
            size_t tu = use[b];
            use[b] = use[b - 1];
            use[b - 1] = tu;
        }
    size_t header = 0; /* bytes of the language note, not content */
    if (same_lang == 0 && strcmp(hits[use[0]].lang, lang) != 0) {
        toro_strbuf_str(&sb, strcmp(lang, "en") == 0 ? "From the knowledge base (content in Portuguese):\n\n"
                                                     : "Da base de conhecimento (conteúdo em inglês):\n\n");
        header = sb.n;
    }
    for (size_t ci = 0; ci < nuse; ci++) {
        size_t h = use[ci];
        int any = 0;
        for (size_t i = 0; i < nu; i++)
            if (units[i].hit == h && units[i].picked == 1)
                any = 1;
        if (!any)
            continue;
        int n = (int)++out->n_sources;
        cite[h] = n;
        toro_source_t *src = &out->sources[n - 1];
        src->doc_id = strdup(hits[h].doc_id);
        src->title = strdup(hits[h].title);
        src->section = strdup(hits[h].section);
        src->chunk_id = strdup(hits[h].chunk_id);
        src->score = hits[h].score;
        if (sb.n > header)
            toro_strbuf_str(&sb, "\n\n");
        int first = 1, prev_item = 0;
        size_t last = 0;
        for (size_t i = 0; i < nu; i++)
            if (units[i].hit == h && units[i].picked == 1)
                last = i;
        for (size_t i = 0; i < nu; i++) {
            unit_t *u = &units[i];
            if (u->hit != h || u->picked != 1)
                continue;
            if (!src->snippet)
                src->snippet = snippet_of(hits[h].text + u->start, u->len);
            if (!first)
                toro_strbuf_str(&sb, (u->is_item || prev_item) ? "\n" : " ");
            toro_strbuf_add(&sb, hits[h].text + u->start, u->len);
            if (i == last) {
                char m[16];
                snprintf(m, sizeof(m), " [%d]", n);
                toro_strbuf_str(&sb, m);
            }
            first = 0;
            prev_item = u->is_item;
        }
        if (!src->doc_id || !src->title || !src->section || !src->chunk_id || !src->snippet)
            rc = TORO_ENOMEM;
    }
    if (sb.err)
        rc = sb.err;
    if (rc)
        goto out;
    if (out->n_sources == 0) {
        rc = no_info(out, lang);
        goto out;
    }
    out->text = sb.s;
    sb.s = NULL;
    out->found_relevant_docs = true;
out:
    if (rc) {
        toro_answer_clear(out);
        if (errmsg && !*errmsg)
            *errmsg = strdup(toro_strerror(rc));
    }
    free(sb.s);
    free(cite);
    free(termpool);
    free(units);
    if (q) {
        toro_analyzer_free(q->an[0]);
        toro_analyzer_free(q->an[1]);
    }
    free(q);
    toro_kb_hits_free(hits, nh);
    return rc;
}

static void ext_destroy(toro_answerer_t *self)
{
    free(self);
}

static const toro_answerer_ops_t EXTRACTIVE_OPS = {
    .name = "extractive",
    .answer = ext_answer,
    .destroy = ext_destroy,
};

int toro_answerer_extractive_new(toro_kb_t *kb, toro_answerer_t **out)
{
    *out = NULL;
    if (!kb)
        return TORO_EINVAL;
    extractive_t *x = calloc(1, sizeof(*x));
    if (!x)
        return TORO_ENOMEM;
    x->base.ops = &EXTRACTIVE_OPS;
    x->kb = kb;
    *out = &x->base;
    return 0;
}
