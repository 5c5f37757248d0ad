/* extractive.c: the default answerer, which needs no model. An answer is
 * built in three steps:
 *   retrieve  the one retrieval path of every answerer (toro_prompt_retrieve),
 *             keeping the relevant chunks, in the question's language when
 *             it has any;
 *   select    the chunks are cut into units (sentences, list items, whole
 *             tables); each unit is scored by lexical similarity to the
 *             question (analyzer stems, folded accents, plurals folded) and
 *             by what the question asks (qkind.h): a definition, an amount,
 *             a date, steps, yes/no, a comparison. The best unit leads; at
 *             most three supporting points follow, near-duplicates dropped;
 *             a unit that introduces a list, a table or an example brings it;
 *   compose   lead paragraph, then the points, each cited [n]; tables stay
 *             Markdown tables; advice and live-data questions open with the
 *             fixed no-recommendation note (qkind.h).
 * When no chunk is relevant it answers the fixed "no information" text. It
 * keeps no per-call state in the answerer, so concurrent calls on one
 * instance are safe (the kb handle is thread-safe). */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer/answer.h"
#include "answer/prompt.h"
#include "answer/qkind.h"
#include "core/error.h"
#include "core/strbuf.h"
#include "kb/analyzer.h"
#include "kb/chunker.h"

#define RETRIEVE_K 16      /* chunks retrieved (enough to find one in the question's language) */
#define MAX_CHUNKS 16      /* relevant chunks read for sentences */
#define MAX_UNITS 384      /* sentences, items and tables considered */
#define MAX_UNIT_TERMS 96  /* analyzed terms kept per unit */
#define MAX_QGROUPS 32     /* question words */
#define MAX_POINTS 3       /* supporting points after the lead */
#define MAX_BLOCK 24       /* units in one lead or point (a sentence with its list) */
#define POINT_BUDGET 900   /* bytes of supporting points (tables and lists excluded) */
#define DUP_JACCARD 0.5    /* term overlap above which two units say the same */
#define MIN_NOVELTY 0.34   /* share of new terms a point must bring */
#define MAX_PARTS 4        /* sub-questions ("CDB tem FGC? E paga quanto de IR?") answered each */
#define CHUNK_W 0.3        /* weight of the chunk's own match (the kb's idf-weighted coverage) in a unit's score */
#define PRIOR_W 0.6        /* weight of the chunk's retrieval score (relative to the best chunk) in a unit's score */
#define TOPIC_RANKS 3      /* chunks retrieval ranks first ... */
#define TOPIC_PRIOR 0.75   /* ... with a score this close to the best are about the question whatever their title */
#define KIND_FULL_LEX 0.4  /* share of the question a unit must match to get its kind bonus in full */
#define NEAR_PREFIX 6      /* stems this long match the longer stems they start (liquid: liquidação) */
#define NEAR_EDIT 6        /* stems this long match stems one typing slip away */

typedef char term_t[TORO_TOKEN_MAX + 1];

typedef struct extractive {
    toro_answerer_t base; /* ops first */
    toro_kb_t *kb;        /* borrowed */
} extractive_t;

typedef enum { U_SENTENCE = 0, U_ITEM = 1, U_TABLE = 2 } unit_kind_t;

typedef struct unit {
    size_t hit;        /* index of the chunk in ctx.hits */
    size_t start, len; /* byte range in hits[hit].text */
    int kind;          /* unit_kind_t */
    int para;          /* block number in the chunk (sentences of a paragraph share it) */
    bool intro;        /* ends with ':' (introduces a list or table) */
    bool example;      /* opens an example ("Exemplo: ...", a sentence under an "Exemplo" heading) */
    bool anaphor;      /* starts with a pronoun pointing to the sentence before */
    bool defines;      /* defines a question word ("O CDI é o ...") */
    double def_share;  /* weighted share of the question its defined subject names (0 when defines is false) */
    bool table_head;   /* a table whose header names a question word ("Alíquota de IR") */
    unsigned feat;     /* TORO_F_* */
    uint32_t gmask;    /* question groups matched */
    uint32_t subject;  /* question groups named by the subject it defines */
    double lex;        /* weighted share of the question it matches, 0..1 */
    double ctx_lex;    /* lex, or part of its paragraph's or list intro's */
    double score;
    double base;       /* score without the kind bonus and before the factors */
    double mult;       /* the factors (short, long, off-topic document) */
    int picked;        /* 0, or the block (1 = lead, 2.. = points) it belongs to */
    term_t *terms;     /* analyzed terms (deduped), in the termpool */
    int nterms;
} unit_t;

typedef struct question {
    term_t stems[MAX_QGROUPS][2]; /* each word stemmed as pt and as en */
    term_t words[MAX_QGROUPS];    /* folded words */
    double w[MAX_QGROUPS];        /* weight: rarer among the units is worth more; 0 when absent */
    int ngroups;
    unsigned kind;                /* TORO_Q_* */
    uint32_t part_mask[MAX_PARTS]; /* groups of each sub-question (split at '?') */
    unsigned part_kind[MAX_PARTS]; /* kinds of each sub-question */
    int nparts;
    toro_analyzer_t *an[2];       /* pt, en */
} question_t;

/* One call's working set. */
typedef struct sel {
    toro_prompt_ctx_t ctx;        /* retrieval (owned) */
    size_t use[MAX_CHUNKS];       /* chunks read, rank order */
    size_t nuse;
    bool same_lang;               /* use[] holds only chunks in the question's language */
    question_t *q;
    unit_t *units;
    size_t nu;
    term_t *termpool;             /* MAX_UNITS * MAX_UNIT_TERMS */
    int nblocks;                  /* lead + points picked */
    bool on_topic[RETRIEVE_K];    /* per hit: its document's title shares a question word */
    uint32_t head[RETRIEVE_K];    /* per hit: question groups in its title and section */
    uint32_t title[RETRIEVE_K];   /* per hit: question groups in its title */
    unsigned head_kind[RETRIEVE_K]; /* per hit: what its section heading asks ("Quanto guardar": an amount) */
} sel_t;

/* ---- terms ---------------------------------------------------------------- */

/* Plural to singular before stemming, so FII/FIIs, ação/ações and
 * título/títulos give one term whatever the stemmer does with them. */
static size_t singular(char *w, size_t n)
{
    if (n > 4 && (memcmp(w + n - 3, "oes", 3) == 0 || memcmp(w + n - 3, "aes", 3) == 0)) {
        w[n - 3] = 'a', w[n - 2] = 'o', w[n - 1] = 0;
        return n - 1;
    }
    if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's' && w[n - 2] != 'u') {
        w[--n] = 0;
        return n;
    }
    return n;
}

typedef struct term_walk {
    toro_analyzer_t *an; /* stemmer of the text's language */
    term_t *terms;
    int n, cap;
} term_walk_t;

static int term_tok(void *ud, const char *tok, size_t len, int kind)
{
    term_walk_t *t = ud;
    term_t w;
    if (kind == TORO_TOK_WORD && (toro_is_stopword("pt", tok, len) || toro_is_stopword("en", tok, len)))
        return 0;
    memcpy(w, tok, len + 1);
    if (kind == TORO_TOK_WORD) {
        len = singular(w, len);
        term_t s;
        toro_analyzer_stem(t->an, w, len, s);
        memcpy(w, s, sizeof w);
    }
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->terms[i], w) == 0)
            return 0;
    if (t->n == t->cap)
        return 1;
    memcpy(t->terms[t->n++], w, sizeof w);
    return 0;
}

/* Analyzed terms of folded text into terms[0..cap). Returns the count. */
static int terms_of(toro_analyzer_t *an, const char *folded, size_t len, term_t *terms, int cap)
{
    term_walk_t t = {an, terms, 0, cap};
    toro_tokenize(folded, len, term_tok, &t);
    return t.n;
}

static int q_tok(void *ud, const char *tok, size_t len, int kind)
{
    question_t *q = ud;
    if (kind == TORO_TOK_WORD && (toro_is_stopword("pt", tok, len) || toro_is_stopword("en", tok, len)))
        return 0;
    if (q->ngroups == MAX_QGROUPS)
        return 1;
    int g = q->ngroups;
    term_t w;
    memcpy(w, tok, len + 1);
    size_t wl = kind == TORO_TOK_WORD ? singular(w, len) : len;
    for (int l = 0; l < 2; l++) {
        if (kind == TORO_TOK_SPECIAL)
            memcpy(q->stems[g][l], tok, len + 1);
        else
            toro_analyzer_stem(q->an[l], w, wl, q->stems[g][l]);
    }
    for (int i = 0; i < g; i++) /* a repeated word is one group */
        if (strcmp(q->stems[i][0], q->stems[g][0]) == 0 && strcmp(q->stems[i][1], q->stems[g][1]) == 0)
            return 0;
    memcpy(q->words[g], w, wl + 1);
    q->ngroups++;
    return 0;
}

/* Whether a and b differ by at most one edit (insert, delete, substitute). */
static bool one_edit(const char *a, size_t la, const char *b, size_t lb)
{
    if (la > lb)
        return one_edit(b, lb, a, la);
    size_t i = 0;
    while (i < la && a[i] == b[i])
        i++;
    if (la == lb)
        return i == la || strcmp(a + i + 1, b + i + 1) == 0;
    return strcmp(a + i, b + i + 1) == 0;
}

/* Whether two stems name one word: equal; one a long prefix of the other
 * ("liquid" and "liquidaca": liquidam, liquidação); or one typing slip
 * apart ("horar"/"horari" hardly, "poupans"/"poupanc"). Short stems must
 * be equal, so "renda"/"rende" never decide. */
static bool same_term(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return true;
    size_t la = strlen(a), lb = strlen(b), m = la < lb ? la : lb;
    if (m >= NEAR_PREFIX && strncmp(a, b, m) == 0 && (la > lb ? la - lb : lb - la) <= 4)
        return true;
    return m >= NEAR_EDIT && (la > lb ? la - lb : lb - la) <= 1 && one_edit(a, la, b, lb);
}

/* Question groups found among terms (stems of language l). */
static uint32_t match_groups(const question_t *q, int l, const term_t *terms, int n)
{
    uint32_t m = 0;
    for (int g = 0; g < q->ngroups; g++)
        for (int i = 0; i < n; i++)
            if (same_term(terms[i], q->stems[g][l])) {
                m |= 1u << g;
                break;
            }
    return m;
}

static double weight_of(const question_t *q, uint32_t mask)
{
    double t = 0, w = 0;
    for (int g = 0; g < q->ngroups; g++) {
        t += q->w[g];
        if (mask & (1u << g))
            w += q->w[g];
    }
    return t > 0 ? w / t : 0;
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

/* ---- definitions ------------------------------------------------------------ */

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
static bool definition_verb(const char *p, bool accented_e)
{
    static const char *const verbs[] = {" e ", " sao ", " is ", " are ", " means ", " significa ", NULL};
    static const char *const openers[] = {"um ", "uma ", "o ", "a ", "os ", "as ", "the ", "an ", "titulo", "tipo",
                                          "forma ", "modalidade", "investimento", "aplicac", "fundo", "taxa ",
                                          "indice", "imposto", "tributo", "conta ", "papel", "papeis", "valor",
                                          "instrumento", "produto", "plano", "programa", "mecanismo", NULL};
    for (int v = 0; verbs[v]; v++) {
        size_t vl = strlen(verbs[v]);
        if (strncmp(p, verbs[v], vl) != 0 || (v == 0 && !accented_e)) /* "e" is "é" only if the text has one */
            continue;
        for (int o = 0; openers[o]; o++)
            if (strncmp(p + vl, openers[o], strlen(openers[o])) == 0)
                return true;
    }
    return false;
}

/* Where the subject of a definition of a question word ends in folded text
 * ("<word> [(…)] [e <other> [(…)]] <verb> <opener>…", e.g. "o cdi e o
 * principal referencial", "lci (letra …) e lca (letra …) sao titulos"):
 * the offset of the verb, or 0 when the text defines no question word. */
static size_t defines_term(const question_t *q, const char *folded, bool accented_e)
{
    for (int g = 0; g < q->ngroups; g++) {
        size_t wl = strlen(q->words[g]);
        if (wl < 2)
            continue;
        for (const char *p = strstr(folded, q->words[g]); p; p = strstr(p + 1, q->words[g])) {
            if (!(p == folded || p[-1] == ' ' || p[-1] == '('))
                continue;
            const char *after = p + wl;
            if (*after == 's') /* plural: "FIIs são …" */
                after++;
            if (*after == ')') /* "Fundos Imobiliários (FIIs) são …" */
                after++;
            after = skip_paren(after);
            if (definition_verb(after, accented_e))
                return (size_t)(after - folded);
            if (strncmp(after, " e ", 3) == 0) { /* "X e Y (…) são …": a pair defined together */
                const char *w = after + 3;
                while (*w && *w != ' ' && *w != '(')
                    w++;
                w = skip_paren(w);
                if (definition_verb(w, accented_e))
                    return (size_t)(w - folded);
            }
        }
    }
    return 0;
}

/* Whether s[0..len) holds needle. */
static bool has_bytes(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(s + i, needle, n) == 0)
            return true;
    return false;
}

static bool starts_with_any(const char *folded, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (strncmp(folded, words[i], strlen(words[i])) == 0)
            return true;
    return false;
}

/* ---- retrieve --------------------------------------------------------------- */

static uint32_t heading_groups(const sel_t *s, size_t h, const char *heading);

/* The relevant chunks worth reading, preferring the question's language. */
static int ext_retrieve(toro_kb_t *kb, const char *question, sel_t *s, char **errmsg)
{
    int rc = toro_prompt_retrieve(kb, question, RETRIEVE_K, &s->ctx, errmsg);
    if (rc)
        return rc;
    const toro_kb_hit_t *h = s->ctx.hits;
    for (size_t i = 0; i < s->ctx.n_passages; i++)
        if (strcmp(h[i].lang, s->ctx.lang) == 0)
            s->same_lang = true;
    for (size_t i = 0; i < s->ctx.n_passages && s->nuse < MAX_CHUNKS; i++) {
        if (h[i].score < 0.4 * h[0].score)
            continue;
        if (s->same_lang && strcmp(h[i].lang, s->ctx.lang) != 0)
            continue;
        s->use[s->nuse++] = i;
    }
    /* The question found relevant documents; a retrieved chunk under the
     * threshold still counts when its document's title names most of the
     * question ("Tesouro Selic — …" for "como funciona o Tesouro Selic"). */
    int ng = s->q->ngroups;
    for (size_t i = s->ctx.n_passages; s->nuse > 0 && i < s->ctx.n_hits && s->nuse < MAX_CHUNKS; i++) {
        if (s->same_lang && strcmp(h[i].lang, s->ctx.lang) != 0)
            continue;
        int named = __builtin_popcount(heading_groups(s, i, h[i].title));
        if (named >= 2 && 2 * named >= ng)
            s->use[s->nuse++] = i;
    }
    return 0;
}

/* ---- select: units ---------------------------------------------------------- */

/* Cuts one chunk into units: a table (consecutive "|" rows) or a list item
 * ("- " to the end of its line) is one unit; paragraphs are cut into
 * sentences. */
static void split_chunk(sel_t *s, size_t ci)
{
    size_t h = s->use[ci];
    const char *t = s->ctx.hits[h].text;
    size_t tl = strlen(t);
    int para = 0;
    for (size_t pos = 0; pos < tl && s->nu < MAX_UNITS;) {
        size_t a = pos, e;
        int kind = U_SENTENCE;
        if (t[a] == '|' || (t[a] == '-' && a + 1 < tl && t[a + 1] == ' ')) {
            kind = t[a] == '|' ? U_TABLE : U_ITEM;
            e = a;
            do { /* a table takes every following row */
                const char *nl = memchr(t + e, '\n', tl - e);
                e = nl ? (size_t)(nl - t) + 1 : tl;
            } while (kind == U_TABLE && e < tl && t[e] == '|');
        } else {
            e = toro_sentence_end(t, tl, pos);
        }
        size_t b = e;
        while (b > a && (t[b - 1] == ' ' || t[b - 1] == '\n'))
            b--;
        pos = e;
        if (b - a >= 3) {
            unit_t *u = &s->units[s->nu++];
            u->hit = h;
            u->start = a;
            u->len = b - a;
            u->kind = kind;
            u->para = para;
            u->intro = t[b - 1] == ':';
        }
        if (kind != U_SENTENCE || (e > 0 && t[e - 1] == '\n'))
            para++;
    }
}

/* Acronyms: a short word of one side spelled by the initials of
 * consecutive words of the other ("IR" and "Imposto de Renda", "FGC" and
 * "Fundo Garantidor de Créditos"), stop words skipped. */
typedef struct initials {
    char c[MAX_UNIT_TERMS];           /* first letter of each non-stop word */
    term_t w[MAX_UNIT_TERMS];         /* the word itself */
    int n;
} initials_t;

static int initials_tok(void *ud, const char *tok, size_t len, int kind)
{
    initials_t *t = ud;
    if (kind != TORO_TOK_WORD || toro_is_stopword("pt", tok, len) || toro_is_stopword("en", tok, len))
        return 0;
    if (t->n == MAX_UNIT_TERMS)
        return 1;
    t->c[t->n] = tok[0];
    memcpy(t->w[t->n++], tok, len + 1);
    return 0;
}

static bool is_acronym(const char *w)
{
    size_t n = strlen(w);
    if (n < 2 || n > 4)
        return false;
    for (size_t i = 0; i < n; i++)
        if (w[i] < 'a' || w[i] > 'z')
            return false;
    return true;
}

/* Whether some run of words in `in` has initials spelling `acr`. */
static bool spelled(const initials_t *in, const char *acr)
{
    size_t n = strlen(acr);
    for (int i = 0; i + (int)n <= in->n; i++)
        if (memcmp(in->c + i, acr, n) == 0)
            return true;
    return false;
}

/* Groups of the question matched through acronyms in folded unit text. */
static uint32_t acronym_groups(const question_t *q, const char *folded, size_t len)
{
    initials_t *u = malloc(sizeof(*u));
    if (!u)
        return 0;
    u->n = 0;
    toro_tokenize(folded, len, initials_tok, u);
    uint32_t m = 0;
    for (int g = 0; g < q->ngroups; g++) /* question "IR", unit "imposto de renda" */
        if (is_acronym(q->words[g]) && spelled(u, q->words[g]))
            m |= 1u << g;
    for (int i = 0; i < u->n; i++) { /* unit "IR", question "imposto de renda" */
        if (!is_acronym(u->w[i]))
            continue;
        size_t n = strlen(u->w[i]);
        for (int g = 0; g + (int)n <= q->ngroups; g++) {
            int k = 0;
            while (k < (int)n && q->words[g + k][0] == u->w[i][k])
                k++;
            if (k == (int)n)
                for (k = 0; k < (int)n; k++)
                    m |= 1u << (g + k);
        }
    }
    free(u);
    return m;
}

/* Question groups named by a heading (the chunk's title or section). */
static uint32_t heading_groups(const sel_t *s, size_t h, const char *heading)
{
    const toro_kb_hit_t *hit = &s->ctx.hits[h];
    term_t terms[MAX_QGROUPS * 2];
    size_t fl;
    char *f = toro_fold(heading, strlen(heading), &fl);
    if (!f)
        return 0;
    int l = strcmp(hit->lang, "en") == 0 ? 1 : 0;
    int n = terms_of(s->q->an[l], f, fl, terms, MAX_QGROUPS * 2);
    uint32_t m = match_groups(s->q, l, terms, n) | acronym_groups(s->q, f, fl);
    free(f);
    return m;
}

typedef struct exact_walk {
    const question_t *q;
    uint32_t mask;
} exact_walk_t;

static int exact_tok(void *ud, const char *tok, size_t len, int kind)
{
    exact_walk_t *e = ud;
    term_t w;
    memcpy(w, tok, len + 1);
    if (kind == TORO_TOK_WORD)
        singular(w, len);
    for (int g = 0; g < e->q->ngroups; g++)
        if (strcmp(e->q->words[g], w) == 0)
            e->mask |= 1u << g;
    return 0;
}

/* Question words a title holds as written (plural and accents aside) or
 * spells as an acronym: a shared stem alone ("rende"/"renda") does not
 * make a document about the question. */
static uint32_t title_words(const sel_t *s, size_t h)
{
    size_t fl;
    char *f = toro_fold(s->ctx.hits[h].title, strlen(s->ctx.hits[h].title), &fl);
    if (!f)
        return 0;
    exact_walk_t e = {s->q, 0};
    toro_tokenize(f, fl, exact_tok, &e);
    uint32_t m = e.mask | acronym_groups(s->q, f, fl);
    free(f);
    return m;
}

/* Question groups named in folded[0..len), the subject of a definition. */
static uint32_t subject_groups(const question_t *q, int l, const char *folded, size_t len)
{
    term_t terms[MAX_UNIT_TERMS];
    int n = terms_of(q->an[l], folded, len, terms, MAX_UNIT_TERMS);
    return match_groups(q, l, terms, n) | acronym_groups(q, folded, len);
}

/* A table matches the question as its best row does (with the header):
 * a big table holds every word of the domain somewhere. */
static uint32_t table_groups(const question_t *q, int l, const char *folded, size_t len, bool *head_match)
{
    term_t terms[MAX_UNIT_TERMS];
    size_t hl = 0;
    while (hl < len && folded[hl] != '\n')
        hl++;
    int nh = terms_of(q->an[l], folded, hl, terms, MAX_UNIT_TERMS);
    uint32_t head = match_groups(q, l, terms, nh), best = head;
    *head_match = head != 0;
    for (size_t a = hl; a < len;) {
        size_t b = a + 1;
        while (b < len && folded[b] != '\n')
            b++;
        int n = terms_of(q->an[l], folded + a, b - a, terms, MAX_UNIT_TERMS);
        uint32_t m = head | match_groups(q, l, terms, n);
        if (__builtin_popcount(m) > __builtin_popcount(best))
            best = m;
        a = b;
    }
    return best;
}

/* A sentence ending in ':' whose list or table is not in the chunk cannot
 * stand alone ("…, que deve:"): it is never picked nor attached. */
static void drop_dangling(sel_t *s)
{
    for (size_t i = 0; i < s->nu; i++) {
        unit_t *u = &s->units[i];
        bool has_list = i + 1 < s->nu && s->units[i + 1].hit == u->hit && s->units[i + 1].kind != U_SENTENCE;
        if (u->kind == U_SENTENCE && u->intro && !has_list)
            u->picked = -2; /* never: neither as a unit nor as part of a block */
    }
}

/* A short line without final punctuation right before a list ("Conservador"
 * over its items, a bold pseudo-heading) introduces the list like a ':' does. */
static void mark_labels(sel_t *s)
{
    for (size_t i = 0; i + 1 < s->nu; i++) {
        unit_t *u = &s->units[i];
        const unit_t *v = &s->units[i + 1];
        if (u->kind != U_SENTENCE || u->intro || v->kind == U_SENTENCE || v->hit != u->hit || u->len > 80)
            continue;
        char last = s->ctx.hits[u->hit].text[u->start + u->len - 1];
        if (!strchr(".!?;", last))
            u->intro = true;
    }
}

/* Terms, question groups and features of every unit. */
static int analyze_units(sel_t *s)
{
    static const char *const ANAPHORS[] = {"ele ", "ela ", "eles ", "elas ", "isso ", "isto ", "esse ", "essa ",
                                           "esses ", "essas ", "este ", "esta ", "nesse ", "nessa ", "assim", "por isso",
                                           "portanto", "dessa forma", "desse modo", "therefore", "so ",
                                           "it ", "this ", "these ", "they ", "that ", NULL};
    static const char *const EXAMPLES[] = {"exemplo", "por exemplo", "example", "for example", "e.g.", NULL};
    for (size_t i = 0; i < s->nu; i++) {
        unit_t *u = &s->units[i];
        const toro_kb_hit_t *h = &s->ctx.hits[u->hit];
        int l = strcmp(h->lang, "en") == 0 ? 1 : 0;
        size_t fl;
        char *f = toro_fold(h->text + u->start, u->len, &fl);
        if (!f)
            return TORO_ENOMEM;
        u->terms = s->termpool + i * MAX_UNIT_TERMS;
        u->nterms = terms_of(s->q->an[l], f, fl, u->terms, MAX_UNIT_TERMS);
        u->gmask = u->kind == U_TABLE ? table_groups(s->q, l, f, fl, &u->table_head) : match_groups(s->q, l, u->terms, u->nterms);
        if (u->kind != U_TABLE)
            u->gmask |= acronym_groups(s->q, f, fl);
        u->feat = toro_qkind_features(f, fl);
        u->anaphor = u->kind == U_SENTENCE && starts_with_any(f, ANAPHORS);
        u->example = starts_with_any(f, EXAMPLES);
        size_t subj = u->gmask ? defines_term(s->q, f, has_bytes(h->text + u->start, u->len, "é ")) : 0;
        u->defines = subj > 0;
        u->subject = u->defines ? subject_groups(s->q, l, f, subj) : 0;
        free(f);
        if (!u->example && u->kind == U_SENTENCE && u->start == 0) { /* first sentence under "Exemplo" */
            char *sf = toro_fold(h->section, strlen(h->section), &fl);
            if (!sf)
                return TORO_ENOMEM;
            u->example = strstr(sf, "exemplo") || strstr(sf, "example");
            free(sf);
        }
    }
    return 0;
}


/* Group weights: every question word found counts, one held by few units
 * a little more (it tells them apart: idf over the units read); a word no
 * unit holds ("funciona", "acontece") does not count. */
static void weigh_groups(sel_t *s)
{
    question_t *q = s->q;
    for (size_t ci = 0; ci < s->nuse; ci++) {
        size_t h = s->use[ci];
        s->title[h] = heading_groups(s, h, s->ctx.hits[h].title);
        s->head[h] = s->title[h] | heading_groups(s, h, s->ctx.hits[h].section);
        const char *sec = strrchr(s->ctx.hits[h].section, '>');
        s->head_kind[h] = toro_qkind_of(sec ? sec + 1 : s->ctx.hits[h].section) &
                          (TORO_Q_DEFINITION | TORO_Q_AMOUNT | TORO_Q_TIME | TORO_Q_HOWTO | TORO_Q_COMPARISON);
    }
    for (int g = 0; g < q->ngroups; g++) {
        size_t df = 0;
        for (size_t i = 0; i < s->nu; i++)
            if ((s->units[i].gmask | s->head[s->units[i].hit]) & (1u << g))
                df++;
        q->w[g] = df ? 1.0 + 0.3 * log(1.0 + (double)s->nu / (double)df) : 0;
    }
}


/* The chunk's retrieval score relative to the best chunk read, 0..1. */
static double chunk_prior(const sel_t *s, size_t h)
{
    double top = s->ctx.hits[s->use[0]].score;
    return top > 0 ? s->ctx.hits[h].score / top : 0;
}

/* What the question asks for, as a bonus on units that offer it. */
static double kind_bonus(unsigned kind, const unit_t *u)
{
    double b = 0;
    if ((kind & TORO_Q_DEFINITION) && u->defines)
        b += 0.6 * u->def_share; /* "Marcação a mercado é …" defines "o mercado fracionário" only in part */
    if (kind & TORO_Q_AMOUNT)
        b += (u->feat & TORO_F_NUMBER ? 0.25 : 0) + (u->table_head ? 0.15 : 0);
    if (kind & TORO_Q_TIME)
        b += u->feat & TORO_F_TIME ? 0.5 : (u->feat & TORO_F_PERIOD ? 0.1 : 0);
    if ((kind & TORO_Q_HOWTO) && (u->intro || u->kind == U_ITEM || (u->feat & TORO_F_STEP)))
        b += 0.15;
    if ((kind & TORO_Q_YESNO) && (u->feat & TORO_F_POLAR))
        b += 0.15;
    if ((kind & TORO_Q_COMPARISON) && (u->feat & TORO_F_CONTRAST) && __builtin_popcount(u->gmask) >= 2)
        b += 0.2;
    return b;
}

static void score_units(sel_t *s)
{
    double tcov[MAX_CHUNKS];
    for (size_t ci = 0; ci < s->nuse; ci++) {
        tcov[ci] = weight_of(s->q, s->title[s->use[ci]]);
        /* about the question: its title names a question word, or retrieval
         * ranks it among the first few, close to the best */
        s->on_topic[s->use[ci]] = (tcov[ci] > 0 && title_words(s, s->use[ci]) != 0) ||
                                  (ci < TOPIC_RANKS && chunk_prior(s, s->use[ci]) >= TOPIC_PRIOR);
    }
    size_t intro = SIZE_MAX; /* the sentence that opened the current list */
    for (size_t i = 0; i < s->nu; i++) {
        unit_t *u = &s->units[i];
        const unit_t *prev = i > 0 && s->units[i - 1].hit == u->hit ? &s->units[i - 1] : NULL;
        size_t ci = 0;
        while (ci + 1 < s->nuse && s->use[ci] != u->hit)
            ci++;
        u->lex = weight_of(s->q, u->gmask);
        u->def_share = weight_of(s->q, u->subject);
        u->ctx_lex = u->lex;
        const unit_t *nx = i + 1 < s->nu ? &s->units[i + 1] : NULL;
        if (nx && nx->hit == u->hit && nx->anaphor && nx->para == u->para) /* shown together: matched together */
            u->ctx_lex = weight_of(s->q, u->gmask | nx->gmask);
        if (prev && prev->para == u->para && u->ctx_lex < 0.5 * prev->lex) /* "Ele ocorre …" after its subject */
            u->ctx_lex = 0.5 * prev->lex;
        if (u->kind == U_SENTENCE)
            intro = u->intro ? i : SIZE_MAX;
        else if (intro != SIZE_MAX && s->units[intro].hit == u->hit && u->ctx_lex < 0.6 * s->units[intro].lex)
            u->ctx_lex = 0.6 * s->units[intro].lex;
        double under = 0.6 * weight_of(s->q, u->gmask | s->head[u->hit]); /* "R$ 250 mil …" under "Limites" */
        if (u->ctx_lex < under)
            u->ctx_lex = under;
        if (u->ctx_lex <= 0 || (u->kind == U_TABLE && !u->table_head && u->lex < 0.5)) {
            u->score = 0; /* a table speaks only through its header or a row that matches most of the question */
            continue;
        }
        double bonus = kind_bonus(s->q->kind, u);
        const unit_t *next = i + 1 < s->nu ? &s->units[i + 1] : NULL;
        if (next && next->hit == u->hit && next->anaphor && next->para == u->para) {
            double nb = kind_bonus(s->q->kind, next); /* "… Ele ocorre em maio e novembro." answers with it */
            if (nb > bonus)
                bonus = nb;
        }
        if (s->q->kind & s->head_kind[u->hit]) /* under a heading that asks what the question asks */
            bonus += 0.2;
        if (u->ctx_lex < KIND_FULL_LEX) /* what is asked counts in full only in a unit about the question */
            bonus *= u->ctx_lex / KIND_FULL_LEX;
        double prior = chunk_prior(s, u->hit);
        u->base = u->ctx_lex + 0.35 * tcov[ci] + 0.12 / (1.0 + (double)ci) + (u->start == 0 ? 0.05 : 0) +
                  CHUNK_W * s->ctx.hits[u->hit].coverage + PRIOR_W * prior;
        u->mult = 1.0;
        if (u->len < 25)
            u->mult *= 0.6;
        else if (u->len > 450 && u->kind == U_SENTENCE)
            u->mult *= 0.85;
        u->score = (u->base + bonus) * u->mult;
    }
}

/* ---- select: lead and points ---------------------------------------------- */

/* Marks unit i and what belongs with it as block `blk`: the list, table or
 * example it introduces, the sentence a pronoun points back to, the
 * sentence that introduces a table. */
static void take_block(sel_t *s, size_t i, int blk)
{
    unit_t *u = &s->units[i];
    if (u->kind != U_SENTENCE) { /* an item or table of a list that a sentence opens: the whole list */
        size_t j = i;
        while (j > 0 && s->units[j - 1].hit == u->hit && s->units[j - 1].kind != U_SENTENCE && i - j < MAX_BLOCK)
            j--;
        if (j > 0 && s->units[j - 1].hit == u->hit && s->units[j - 1].intro && !s->units[j - 1].picked) {
            take_block(s, j - 1, blk);
            u->picked = blk;
            return;
        }
        if (u->kind == U_ITEM) /* a list without intro: items that match another question word come along */
            for (size_t k = j; k < s->nu && s->units[k].hit == u->hit && s->units[k].kind == U_ITEM; k++)
                if (!s->units[k].picked && (s->units[k].gmask & ~u->gmask) && k != i)
                    s->units[k].picked = blk;
    }
    u->picked = blk;
    if (u->anaphor && i > 0 && s->units[i - 1].hit == u->hit && s->units[i - 1].para == u->para &&
        !s->units[i - 1].picked)
        s->units[i - 1].picked = blk;
    if (u->kind != U_SENTENCE && i > 0 && s->units[i - 1].hit == u->hit && s->units[i - 1].intro &&
        !s->units[i - 1].picked) {
        s->units[i - 1].picked = blk; /* the sentence that opens this list or table */
        if (u->kind == U_ITEM)
            return;
    }
    if (u->intro || u->example) {
        int n = 0;
        for (size_t j = i + 1; j < s->nu && s->units[j].hit == u->hit && n < MAX_BLOCK; j++, n++) {
            const unit_t *v = &s->units[j];
            bool belongs = v->kind != U_SENTENCE || (u->example && v->para == u->para);
            if (!belongs)
                break;
            if (!v->picked)
                s->units[j].picked = blk;
        }
    }
    if (u->kind == U_SENTENCE && i + 1 < s->nu && s->units[i + 1].hit == u->hit && s->units[i + 1].anaphor &&
        s->units[i + 1].para == u->para && !s->units[i + 1].picked)
        s->units[i + 1].picked = blk;
}

#define RUN_TOKENS 160 /* words of a unit compared for restatements */

typedef struct words {
    term_t w[RUN_TOKENS];
    int n;
} words_t;

static int word_tok(void *ud, const char *tok, size_t len, int kind)
{
    words_t *ws = ud;
    (void)kind;
    if (ws->n == RUN_TOKENS)
        return 1;
    memcpy(ws->w[ws->n], tok, len + 1);
    singular(ws->w[ws->n++], len);
    return 0;
}

static int words_of(const sel_t *s, const unit_t *u, words_t *ws)
{
    size_t fl;
    char *f = toro_fold(s->ctx.hits[u->hit].text + u->start, u->len, &fl);
    if (!f)
        return TORO_ENOMEM;
    ws->n = 0;
    toro_tokenize(f, fl, word_tok, ws);
    free(f);
    return 0;
}

/* Longest run of consecutive words two units share. */
static int longest_run(const words_t *a, const words_t *b)
{
    int best = 0;
    for (int i = 0; i < a->n; i++)
        for (int j = 0; j < b->n; j++) {
            int k = 0;
            while (i + k < a->n && j + k < b->n && strcmp(a->w[i + k], b->w[j + k]) == 0)
                k++;
            if (k > best)
                best = k;
        }
    return best;
}

/* A restatement: u shares a run of at least 4 words with a picked unit and
 * that run is a good part of u ("Previdência privada: não há come-cotas"
 * after "Não há come-cotas na previdência…"). */
static bool restates(const sel_t *s, const unit_t *u)
{
    words_t *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    bool r = false;
    if (a && b && words_of(s, u, a) == 0)
        for (size_t i = 0; i < s->nu && !r; i++) {
            const unit_t *v = &s->units[i];
            if (v->picked <= 0 || v == u || v->kind == U_TABLE || words_of(s, v, b) != 0)
                continue;
            int run = longest_run(a, b);
            r = run >= 4 && 10 * run >= 4 * a->n;
        }
    free(a);
    free(b);
    return r;
}

/* Whether u repeats what the picked units already say. */
static bool repeats(const sel_t *s, const unit_t *u)
{
    int fresh = 0;
    for (int t = 0; t < u->nterms; t++) {
        bool seen = false;
        for (size_t i = 0; i < s->nu && !seen; i++) {
            const unit_t *v = &s->units[i];
            if (v->picked <= 0 || v == u)
                continue;
            for (int k = 0; k < v->nterms && !seen; k++)
                seen = strcmp(v->terms[k], u->terms[t]) == 0;
        }
        fresh += !seen;
    }
    if (u->nterms && (double)fresh / u->nterms < MIN_NOVELTY)
        return true;
    for (size_t i = 0; i < s->nu; i++)
        if (s->units[i].picked > 0 && jaccard(&s->units[i], u) > DUP_JACCARD)
            return true;
    return u->kind != U_TABLE && restates(s, u);
}

/* The best unit not yet considered offering `need` (TORO_F_* or 0; the
 * definition when want_def) with a score above floor, or nu. own: it must
 * match the question itself, not only through its paragraph. */
static size_t best_unit(const sel_t *s, unsigned need, bool want_def, double floor, bool own)
{
    size_t best = s->nu;
    for (size_t i = 0; i < s->nu; i++) {
        const unit_t *u = &s->units[i];
        if (u->picked || u->score <= floor || (own && !(u->gmask | s->head[u->hit])))
            continue;
        if ((need && !(u->feat & need)) || (want_def && !u->defines))
            continue;
        if (best == s->nu || u->score > s->units[best].score)
            best = i;
    }
    return best;
}

/* Score of u for sub-question p: what that part asks, on top of the whole. */
static double part_score(const sel_t *s, const unit_t *u, int p)
{
    const question_t *q = s->q;
    double t = 0, w = 0;
    for (int g = 0; g < q->ngroups; g++)
        if (q->part_mask[p] & (1u << g)) {
            t += q->w[g];
            if ((u->gmask | s->head[u->hit]) & (1u << g))
                w += q->w[g];
        }
    double own = t > 0 ? w / t : 0;
    if (own <= 0 || u->score <= 0)
        return 0;
    return (u->base + own + kind_bonus(q->part_kind[p], u)) * u->mult;
}

/* The best unit not yet taken for sub-question p above floor that has every
 * feature of need (0: any unit), or nu. */
static size_t best_for_part_need(const sel_t *s, int p, double floor, unsigned need)
{
    size_t best = s->nu;
    double bs = floor;
    for (size_t i = 0; i < s->nu; i++) {
        const unit_t *u = &s->units[i];
        if (u->picked || !s->on_topic[u->hit] || (need && !(u->feat & need)))
            continue;
        double sc = part_score(s, u, p);
        if (sc > bs) {
            bs = sc;
            best = i;
        }
    }
    return best;
}

/* The best unit not yet taken for sub-question p above floor, or nu. The lead
 * answered the first part; this gives each later part its own opening. */
static size_t best_for_part(const sel_t *s, int p, double floor)
{
    unsigned k = s->q->part_kind[p];
    unsigned need = (k & TORO_Q_AMOUNT ? TORO_F_NUMBER : 0) | (k & TORO_Q_TIME ? TORO_F_TIME : 0);
    if (need) { /* "qual a alíquota?" is answered by a sentence with a number, when there is one */
        size_t b = best_for_part_need(s, p, floor, need);
        if (b < s->nu)
            return b;
    }
    return best_for_part_need(s, p, floor, 0);
}

static unsigned block_features(const sel_t *s, int blk, bool *defines)
{
    unsigned f = 0;
    for (size_t i = 0; i < s->nu; i++)
        if (s->units[i].picked == blk) {
            f |= s->units[i].feat;
            *defines = *defines || s->units[i].defines;
        }
    return f;
}

/* Whether unit i may join the answer as a point: it says something new and
 * its document is itself about the question (its title names a question
 * word) or is the lead's. */
static bool may_add(const sel_t *s, size_t i, size_t lead)
{
    if (i >= s->nu || repeats(s, &s->units[i]))
        return false;
    return s->on_topic[s->units[i].hit] || s->units[i].hit == s->units[lead].hit;
}

/* The opening unit: the best one; for several questions in one, the best
 * for the first; for "o que é X", the one that defines X when it is close. */
static size_t pick_lead(const sel_t *s)
{
    size_t lead = best_unit(s, 0, false, 0, true);
    if (lead == s->nu) { /* the kb found the chunk relevant but no sentence names the question: its opening */
        for (size_t i = 0; i < s->nu; i++)
            if (s->units[i].hit == s->use[0] && s->units[i].picked == 0)
                return i;
        return lead;
    }
    if (s->q->nparts > 1) {
        size_t p0 = best_for_part(s, 0, 0);
        if (p0 < s->nu)
            lead = p0;
    } else if (s->q->kind & TORO_Q_DEFINITION) {
        size_t d = best_unit(s, 0, true, 0.5 * s->units[lead].score, true);
        if (d < s->nu && s->units[d].def_share >= s->units[lead].lex - 0.1) /* it defines what the lead speaks of */
            lead = d;
    } else if (s->q->kind & (TORO_Q_TIME | TORO_Q_AMOUNT)) { /* "quando": a sentence with the date opens */
        unsigned need = s->q->kind & TORO_Q_TIME ? TORO_F_TIME : TORO_F_NUMBER;
        if (!(s->units[lead].feat & need)) {
            size_t d = best_unit(s, need, false, 0.5 * s->units[lead].score, true);
            if (d < s->nu)
                lead = d;
        }
    }
    return lead;
}

/* For each thing asked that the answer does not offer yet (a number, a
 * date, the definition), the best unit that does. */
static void add_wanted(sel_t *s, size_t lead, double floor)
{
    bool def = false;
    unsigned have = block_features(s, 1, &def);
    static const struct {
        unsigned q, f;
    } wants[] = {{TORO_Q_AMOUNT, TORO_F_NUMBER}, {TORO_Q_TIME, TORO_F_TIME}, {TORO_Q_DEFINITION, 0}};
    for (size_t w = 0; w < sizeof wants / sizeof wants[0] && s->nblocks <= MAX_POINTS; w++) {
        bool want_def = wants[w].q == TORO_Q_DEFINITION;
        if (!(s->q->kind & wants[w].q) || (want_def ? def : (have & wants[w].f) != 0))
            continue;
        size_t i = best_unit(s, wants[w].f, want_def, floor, false);
        if (may_add(s, i, lead)) {
            take_block(s, i, ++s->nblocks);
            have |= block_features(s, s->nblocks, &def);
        }
    }
}

/* A question word no picked unit holds yet ("tijolo" and "papel" of a
 * comparison): the best unit that does, heaviest word first. */
static void cover_groups(sel_t *s, size_t lead, double floor)
{
    uint32_t tried = 0;
    for (int pass = 0; pass < s->q->ngroups && s->nblocks <= MAX_POINTS; pass++) {
        uint32_t covered = tried;
        for (size_t i = 0; i < s->nu; i++)
            if (s->units[i].picked > 0)
                covered |= s->units[i].gmask | s->head[s->units[i].hit];
        int g_best = -1;
        for (int g = 0; g < s->q->ngroups; g++)
            if (s->q->w[g] > 0 && !(covered & (1u << g)) && (g_best < 0 || s->q->w[g] > s->q->w[g_best]))
                g_best = g;
        if (g_best < 0)
            return;
        size_t best = s->nu;
        for (size_t i = 0; i < s->nu; i++) {
            const unit_t *u = &s->units[i];
            if (!u->picked && (u->gmask & (1u << g_best)) && u->score > 0.5 * floor &&
                (best == s->nu || u->score > s->units[best].score))
                best = i;
        }
        tried |= 1u << g_best;
        if (may_add(s, best, lead))
            take_block(s, best, ++s->nblocks);
    }
}

/* Block b disappears into block into; later blocks move down one. */
static void merge_block(sel_t *s, int b, int into)
{
    for (size_t i = 0; i < s->nu; i++) {
        if (s->units[i].picked == b)
            s->units[i].picked = into;
        else if (s->units[i].picked > b)
            s->units[i].picked--;
    }
    s->nblocks--;
}

/* Two picked sentences of one paragraph with at most one sentence between
 * them read as one passage: the sentence between joins them and the two
 * blocks become one (the earlier), which frees a point. Returns whether
 * blocks were joined. */
static bool join_neighbors(sel_t *s)
{
    for (size_t i = 0; i < s->nu; i++) {
        const unit_t *a = &s->units[i];
        if (a->picked <= 0 || a->kind != U_SENTENCE)
            continue;
        for (size_t j = i + 1; j < s->nu && j <= i + 2; j++) {
            unit_t *b = &s->units[j];
            if (b->hit != a->hit || b->para != a->para || b->kind != U_SENTENCE)
                break;
            if (b->picked == 0)
                continue;
            if (b->picked < 0 || b->picked == a->picked)
                break;
            int keep = a->picked < b->picked ? a->picked : b->picked;
            int gone = a->picked < b->picked ? b->picked : a->picked;
            for (size_t k = i + 1; k < j; k++)
                s->units[k].picked = keep;
            merge_block(s, gone, keep);
            return true;
        }
    }
    return false;
}

/* Lead, then one block per further sub-question, then what is asked and
 * not yet offered, then uncovered question words, then the best remaining
 * units: at most MAX_POINTS blocks after the lead, never repeating. */
static void ext_select(sel_t *s)
{
    size_t lead = pick_lead(s);
    if (lead == s->nu)
        return;
    take_block(s, lead, ++s->nblocks);
    double floor = 0.35 * s->units[lead].score;
    for (int p = 1; p < s->q->nparts && s->nblocks <= MAX_POINTS; p++) {
        size_t i = best_for_part(s, p, floor);
        if (may_add(s, i, lead))
            take_block(s, i, ++s->nblocks);
    }
    add_wanted(s, lead, floor);
    cover_groups(s, lead, floor);
    while (join_neighbors(s))
            ;
    size_t used = 0;
    while (s->nblocks <= MAX_POINTS && used < POINT_BUDGET) {
        size_t i = best_unit(s, 0, false, floor, true);
        if (i == s->nu)
            break;
        if (!may_add(s, i, lead)) {
            s->units[i].picked = -1; /* considered, left out */
            continue;
        }
        take_block(s, i, ++s->nblocks);
        used += s->units[i].len;
        while (join_neighbors(s))
            ;
    }
    for (size_t i = 0; i < s->nu; i++)
        if (s->units[i].picked < 0)
            s->units[i].picked = 0;
}

/* ---- compose ---------------------------------------------------------------- */

/* Source number of chunk h, adding it on first use. 0 on ENOMEM. */
static int cite_of(sel_t *s, size_t h, int *cite, toro_answer_t *out, const unit_t *first)
{
    if (cite[h])
        return cite[h];
    toro_source_t *src = &out->sources[out->n_sources];
    out->n_sources++; /* counted at once, so clearing the answer frees a half-made entry */
    if (toro_prompt_source_from_hit(&s->ctx.hits[h], src) != 0)
        return 0;
    char *snip = toro_prompt_snippet(s->ctx.hits[h].text + first->start, first->len);
    if (!snip)
        return 0;
    free(src->snippet);
    src->snippet = snip; /* the sentence used, not the chunk's start */
    cite[h] = (int)out->n_sources;
    return cite[h];
}

/* A table as Markdown: header row, separator, rows. */
static void put_table(toro_strbuf_t *sb, const char *t, size_t len)
{
    size_t nl = 0;
    while (nl < len && t[nl] != '\n')
        nl++;
    toro_strbuf_add(sb, t, nl);
    toro_strbuf_str(sb, "\n|");
    for (size_t i = 1; i < nl; i++)
        if (t[i] == '|')
            toro_strbuf_str(sb, "---|");
    if (nl < len)
        toro_strbuf_add(sb, t + nl, len - nl);
}

/* Items taken without the sentence that opens their list get their
 * section heading as a label: "**Onde não há come-cotas:**" over several,
 * "- **Resumo:** " before one (unless the item names its subject itself,
 * "- Prefixado: …"). Returns true when the first item's "- **label:** "
 * was written (the caller writes its text without the "- "). */
static bool put_label(const sel_t *s, int blk, size_t first, size_t last_text, toro_strbuf_t *sb)
{
    const unit_t *f = &s->units[first];
    const char *section = s->ctx.hits[f->hit].section, *label = strrchr(section, '>');
    label = label ? label + 2 : section;
    if (f->kind != U_ITEM || !*label || last_text == s->nu)
        return false;
    int items = 0;
    for (size_t i = first; i < s->nu; i++)
        items += s->units[i].picked == blk && s->units[i].kind == U_ITEM;
    if (items > 1) {
        toro_strbuf_str(sb, "**");
        toro_strbuf_str(sb, label);
        toro_strbuf_str(sb, ":**\n");
        return false;
    }
    if (memchr(s->ctx.hits[f->hit].text + f->start, ':', f->len < 48 ? f->len : 48))
        return false;
    toro_strbuf_str(sb, "- **");
    toro_strbuf_str(sb, label);
    toro_strbuf_str(sb, ":** ");
    return true;
}

/* Writes block blk: its units in source order, the marker after the last
 * sentence or item (a table takes a caption line with it when alone).
 * Returns 0 or TORO_ENOMEM. bullet: the block is one short point, written "- …". */
static int put_block(sel_t *s, int blk, bool bullet, int *cite, toro_answer_t *out, toro_strbuf_t *sb)
{
    size_t first = s->nu, last_text = s->nu;
    for (size_t i = 0; i < s->nu; i++)
        if (s->units[i].picked == blk) {
            if (first == s->nu)
                first = i;
            if (s->units[i].kind != U_TABLE)
                last_text = i;
        }
    if (first == s->nu)
        return 0;
    size_t h = s->units[first].hit;
    int n = cite_of(s, h, cite, out, &s->units[first]);
    if (!n)
        return TORO_ENOMEM;
    char mark[16];
    snprintf(mark, sizeof mark, " [%d]", n);
    const char *text = s->ctx.hits[h].text;
    if (bullet)
        toro_strbuf_str(sb, s->units[first].kind == U_ITEM ? "" : "- ");
    if (last_text == s->nu) { /* a table alone: its section names it */
        toro_strbuf_str(sb, "**");
        toro_strbuf_str(sb, *s->ctx.hits[h].section ? s->ctx.hits[h].section : s->ctx.hits[h].title);
        toro_strbuf_str(sb, "**");
        toro_strbuf_str(sb, mark);
        toro_strbuf_str(sb, "\n");
    }
    bool labelled = put_label(s, blk, first, last_text, sb);
    int prev = -1;
    for (size_t i = first; i < s->nu; i++) {
        const unit_t *u = &s->units[i];
        if (u->picked != blk || u->hit != h)
            continue;
        if (prev >= 0)
            toro_strbuf_str(sb, (u->kind != U_SENTENCE || prev != U_SENTENCE) ? "\n" : " ");
        if (u->kind == U_TABLE) {
            put_table(sb, text + u->start, u->len);
        } else if (labelled && i == first) { /* "- **label:** " written, the item's text follows */
            toro_strbuf_add(sb, text + u->start + 2, u->len - 2);
        } else {
            toro_strbuf_add(sb, text + u->start, u->len);
        }
        if (i == last_text)
            toro_strbuf_str(sb, mark);
        prev = u->kind;
    }
    return sb->err;
}

/* A block is a one-line point when it is one sentence or item. */
static bool simple_block(const sel_t *s, int blk)
{
    int n = 0;
    for (size_t i = 0; i < s->nu; i++)
        if (s->units[i].picked == blk && (++n > 1 || s->units[i].kind == U_TABLE))
            return false;
    return n == 1;
}

static int ext_compose(sel_t *s, toro_answer_t *out)
{
    toro_strbuf_t sb = {0};
    int *cite = calloc(s->ctx.n_hits, sizeof(int));
    out->sources = calloc(s->nuse, sizeof(toro_source_t));
    int rc = (!cite || !out->sources) ? TORO_ENOMEM : 0;
    const char *lang = s->ctx.lang;
    if (!rc && (s->q->kind & (TORO_Q_ADVICE | TORO_Q_LIVE))) {
        toro_strbuf_str(&sb, "> ");
        toro_strbuf_str(&sb, toro_qkind_advice_note(lang));
        toro_strbuf_str(&sb, "\n\n");
    }
    if (!rc && !s->same_lang)
        toro_strbuf_str(&sb, strcmp(lang, "en") == 0 ? "From the knowledge base (content in Portuguese):\n\n"
                                                     : "Da base de conhecimento (conteúdo em inglês):\n\n");
    bool in_list = false;
    for (int blk = 1; blk <= s->nblocks && !rc; blk++) {
        bool bullet = blk > 1 && simple_block(s, blk);
        if (blk > 1)
            toro_strbuf_str(&sb, bullet && in_list ? "\n" : "\n\n");
        rc = put_block(s, blk, bullet, cite, out, &sb);
        in_list = bullet;
    }
    if (!rc)
        rc = sb.err;
    if (!rc) {
        out->text = sb.s;
        sb.s = NULL;
        out->found_relevant_docs = out->n_sources > 0;
    }
    free(sb.s);
    free(cite);
    return rc;
}

/* ---- the answerer ------------------------------------------------------------ */

static void sel_clear(sel_t *s)
{
    toro_prompt_ctx_clear(&s->ctx);
    if (s->q) {
        toro_analyzer_free(s->q->an[0]);
        toro_analyzer_free(s->q->an[1]);
    }
    free(s->q);
    free(s->units);
    free(s->termpool);
}

typedef struct part_walk {
    question_t *q;
    uint32_t mask;
} part_walk_t;

static int part_tok(void *ud, const char *tok, size_t len, int kind)
{
    part_walk_t *pw = ud;
    const question_t *q = pw->q;
    term_t w, st;
    if (kind == TORO_TOK_WORD && (toro_is_stopword("pt", tok, len) || toro_is_stopword("en", tok, len)))
        return 0;
    memcpy(w, tok, len + 1);
    size_t wl = kind == TORO_TOK_WORD ? singular(w, len) : len;
    if (kind == TORO_TOK_WORD)
        toro_analyzer_stem(q->an[0], w, wl, st);
    else
        memcpy(st, tok, len + 1);
    for (int g = 0; g < q->ngroups; g++)
        if (strcmp(q->stems[g][0], st) == 0)
            pw->mask |= 1u << g;
    return 0;
}

/* Where a folded text joins a second question: " e quanto …", " and how …". */
static size_t next_join(const char *f, size_t len)
{
    static const char *const joins[] = {" e qual ", " e quais ", " e quanto ", " e quantos ", " e quando ",
                                        " e como ", " e onde ", " e o que ", " e por que ", " e se ", " and what ",
                                        " and how ", " and when ", " and which ", " and where ", NULL};
    size_t best = len;
    for (int i = 0; joins[i]; i++) {
        size_t jl = strlen(joins[i]);
        for (size_t k = 1; k + jl <= len; k++)
            if (memcmp(f + k, joins[i], jl) == 0) {
                if (k < best)
                    best = k;
                break;
            }
    }
    return best;
}

static void add_part(question_t *q, const char *folded, size_t len)
{
    part_walk_t pw = {q, 0};
    toro_tokenize(folded, len, part_tok, &pw);
    if (!pw.mask || q->nparts == MAX_PARTS)
        return;
    char *part = strndup(folded, len);
    q->part_mask[q->nparts] = pw.mask;
    q->part_kind[q->nparts++] = part ? toro_qkind_of(part) : 0;
    free(part);
}

/* Sub-questions: the text between '?' marks, cut again where " e quanto",
 * " e como", " and how" join a second question; each part has its own
 * words and kinds. One part (the usual case) leaves nparts at 1. */
static int split_parts(question_t *q, const char *question)
{
    q->nparts = 0;
    for (const char *p = question; *p && q->nparts < MAX_PARTS;) {
        size_t n = strcspn(p, "?");
        size_t fl;
        char *f = toro_fold(p, n, &fl);
        if (!f)
            return TORO_ENOMEM;
        for (size_t a = 0; a < fl;) {
            size_t b = a + next_join(f + a, fl - a);
            add_part(q, f + a, b - a);
            a = b < fl ? b + 1 : fl;
        }
        free(f);
        p += n;
        while (*p == '?')
            p++;
    }
    if (q->nparts == 0)
        q->nparts = 1, q->part_mask[0] = UINT32_MAX, q->part_kind[0] = q->kind;
    return 0;
}

/* The question's words and kinds. */
static int analyze_question(sel_t *s, const char *question)
{
    s->q = calloc(1, sizeof(*s->q));
    s->units = calloc(MAX_UNITS, sizeof(unit_t));
    /* term slots are written only for real units: malloc, not calloc */
    s->termpool = malloc((size_t)MAX_UNITS * MAX_UNIT_TERMS * sizeof(term_t));
    if (!s->q || !s->units || !s->termpool)
        return TORO_ENOMEM;
    int rc = toro_analyzer_new("pt", false, &s->q->an[0]);
    if (!rc)
        rc = toro_analyzer_new("en", false, &s->q->an[1]);
    if (rc)
        return rc;
    size_t fl;
    char *f = toro_fold(question, strlen(question), &fl);
    if (!f)
        return TORO_ENOMEM;
    toro_tokenize(f, fl, q_tok, s->q);
    free(f);
    s->q->kind = toro_qkind_of(question);
    return split_parts(s->q, question);
}

/* The no-information answer; advice questions keep their note. */
static int no_info(const char *lang, bool advice, toro_answer_t *out)
{
    const char *ni = strcmp(lang, "en") == 0 ? TORO_NO_INFO_EN : TORO_NO_INFO_PT;
    if (advice)
        out->text = toro_prompt_strcat3(toro_qkind_advice_note(lang), "\n\n", ni);
    else
        out->text = strdup(ni);
    out->found_relevant_docs = false;
    return out->text ? 0 : TORO_ENOMEM;
}

static int ext_answer(toro_answerer_t *self, const char *question, toro_answer_t *out, char **errmsg)
{
    extractive_t *x = (extractive_t *)self;
    sel_t s = {0};
    char *err = NULL;
    memset(out, 0, sizeof(*out));
    if (errmsg)
        *errmsg = NULL;
    out->model = strdup("extractive");
    out->kb_version = strdup(toro_kb_version(x->kb));
    int rc = (!out->model || !out->kb_version) ? TORO_ENOMEM : 0;
    if (!rc)
        rc = analyze_question(&s, question);
    if (!rc)
        rc = ext_retrieve(x->kb, question, &s, &err);
    if (!rc && s.nuse > 0) {
        for (size_t ci = 0; ci < s.nuse; ci++)
            split_chunk(&s, ci);
        mark_labels(&s);
        drop_dangling(&s);
        rc = analyze_units(&s);
        if (!rc) {
            weigh_groups(&s);
            score_units(&s);
            ext_select(&s);
            if (s.nblocks > 0)
                rc = ext_compose(&s, out);
        }
    }
    if (!rc && !out->found_relevant_docs) {
        toro_answer_t keep = {.model = out->model, .kb_version = out->kb_version};
        out->model = out->kb_version = NULL;
        toro_answer_clear(out);
        *out = keep;
        rc = no_info(s.ctx.lang ? s.ctx.lang : toro_kb_detect_lang(question),
                     s.q && (s.q->kind & (TORO_Q_ADVICE | TORO_Q_LIVE)), out);
    }
    sel_clear(&s);
    return toro_answer_finish(rc, out, err, errmsg);
}

int toro_answer_sentence_match(const char *question, const char *sentence, const char *lang, int *matched,
                               int *total)
{
    sel_t s = {0};
    *matched = *total = 0;
    int rc = analyze_question(&s, question);
    if (!rc) {
        int l = lang && strcmp(lang, "en") == 0 ? 1 : 0;
        size_t fl;
        char *f = toro_fold(sentence, strlen(sentence), &fl);
        if (!f) {
            rc = TORO_ENOMEM;
        } else {
            int n = terms_of(s.q->an[l], f, fl, s.termpool, MAX_UNIT_TERMS);
            uint32_t m = match_groups(s.q, l, s.termpool, n) | acronym_groups(s.q, f, fl);
            *matched = __builtin_popcount(m);
            *total = s.q->ngroups;
            free(f);
        }
    }
    sel_clear(&s);
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
