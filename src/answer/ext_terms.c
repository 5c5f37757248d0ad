/* ext_terms.c: what a question and a unit of text say, for the extractive
 * answerer (ext.h): analyzed terms (stems, folded accents, plurals folded,
 * stems matched across derivations and one typing slip), acronyms spelled
 * by initials, definitions ("O CDI é o …") and the share of the question
 * their subject names, sub-questions ("CDB tem FGC? E paga quanto?"). It
 * does not retrieve, score or compose. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer/ext.h"
#include "answer/qkind.h"
#include "core/error.h"
#include "core/strbuf.h"
#include "kb/analyzer.h"

/* ---- terms ---------------------------------------------------------------- */

/* Plural to singular before stemming, so FII/FIIs, ação/ações and
 * título/títulos give one term whatever the stemmer does with them. */
size_t toro_ext_singular(char *w, size_t n)
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

/* A question's rate per day ("rende por dia", "ao dia") is what the texts
 * write as an adjective ("a taxa diária", "diariamente"); "dia" itself is a
 * stop word ("hoje em dia"), so the question reads it as "diario"
 * (rate_per_day), and the adjective's forms are one word (the stemmer
 * keeps "diari" and "diar" apart). Other units are not mapped: "mensal"
 * as "mês" would match every "no mês". */
static bool day_adjective(const char *w, size_t n)
{
    return (n == 6 && memcmp(w, "diaria", 6) == 0) || (n == 11 && memcmp(w, "diariamente", 11) == 0);
}

/* Whether a word token is left out of the answerer's terms: a stop word of
 * either language. */
static bool skip_word(const char *tok, size_t len)
{
    return toro_is_stopword("pt", tok, len) || toro_is_stopword("en", tok, len);
}

/* The folded question with a rate per day ("rende por dia", "ao dia")
 * written as the adjective ("diario"), which the texts use ("a taxa
 * diária"); "dia" alone stays a stop word. NULL on ENOMEM. */
static char *rate_per_day(const char *f, size_t len, size_t *out_len)
{
    static const char *const phrases[] = {"por dia", "ao dia", NULL};
    toro_strbuf_t b = {0};
    for (size_t i = 0; i < len;) {
        size_t pl = 0;
        for (int k = 0; phrases[k] && !pl; k++) {
            size_t n = strlen(phrases[k]);
            if (i + n <= len && memcmp(f + i, phrases[k], n) == 0 && (i == 0 || f[i - 1] == ' ') &&
                (i + n == len || !((f[i + n] >= 'a' && f[i + n] <= 'z') || (f[i + n] >= '0' && f[i + n] <= '9'))))
                pl = n;
        }
        if (pl) {
            toro_strbuf_str(&b, "diario");
            i += pl;
        } else {
            toro_strbuf_add(&b, f + i, 1);
            i++;
        }
    }
    toro_strbuf_add(&b, "", 0);
    if (b.err || !b.s) {
        free(b.s);
        return NULL;
    }
    *out_len = b.n;
    return b.s;
}

/* A Portuguese plural in "-ns" is a singular in "-m" (comum/comuns,
 * bem/bens, item/itens); English words in "-ns" (loans, tokens) are left to
 * toro_ext_singular. Then the stem of an's language. Returns the stem's length. */
static size_t stem_word(toro_analyzer_t *an, char *w, size_t n, term_t out)
{
    bool pt = strcmp(toro_analyzer_lang(an), "pt") == 0;
    if (pt && n > 4 && w[n - 1] == 's' && w[n - 2] == 'n' && strchr("aeiou", w[n - 3])) {
        w[n - 2] = 'm', w[n - 1] = 0;
        n--;
    } else {
        n = toro_ext_singular(w, n);
    }
    if (day_adjective(w, n)) /* "diária", "diariamente": "diário" */
        memcpy(w, "diario", (n = 6) + 1);
    return toro_analyzer_stem(an, w, n, out);
}

/* A token as the answerer compares it, in place in w (len bytes, room for
 * TORO_TOKEN_MAX): a product name with a glued '+' is its word ("IPCA+",
 * "Renda+": the text and the question write it with and without); "20k"
 * is the "R$ 20 mil" the text writes, which the tokenizer reads "20000".
 * Returns the token's kind. */
static int norm_token(char *w, size_t *len, int kind)
{
    size_t n = *len;
    if (kind != TORO_TOK_SPECIAL || n < 2)
        return kind;
    if (w[n - 1] == '+') {
        size_t i = 0;
        while (i < n - 1 && ((w[i] >= 'a' && w[i] <= 'z') || (unsigned char)w[i] >= 0x80))
            i++;
        if (i == n - 1 && n >= 3) {
            w[--*len] = 0;
            return TORO_TOK_WORD;
        }
    }
    if (w[n - 1] == 'k' && n + 2 <= TORO_TOKEN_MAX && strspn(w, "0123456789") == n - 1) {
        memcpy(w + n - 1, "000", 4);
        *len = n + 2;
    }
    return kind;
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
    if (kind == TORO_TOK_WORD && skip_word(tok, len))
        return 0;
    memcpy(w, tok, len + 1);
    kind = norm_token(w, &len, kind);
    if (kind == TORO_TOK_WORD) {
        term_t s;
        stem_word(t->an, w, len, s);
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
    if (kind == TORO_TOK_WORD && skip_word(tok, len))
        return 0;
    if (q->ngroups == MAX_QGROUPS)
        return 1;
    int g = q->ngroups;
    term_t w, tw;
    memcpy(w, tok, len + 1);
    kind = norm_token(w, &len, kind);
    memcpy(tw, w, len + 1);
    size_t wl = kind == TORO_TOK_WORD ? toro_ext_singular(w, len) : len;
    for (int l = 0; l < 2; l++) {
        term_t raw;
        memcpy(raw, tw, len + 1);
        if (kind == TORO_TOK_SPECIAL)
            memcpy(q->stems[g][l], tw, len + 1);
        else
            stem_word(q->an[l], raw, len, q->stems[g][l]);
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

/* A noun in -ção and the participle in -to of one verb: stems "<x>t" and
 * "<x>ca" ("isent" and "isenca": isentos, isenções), x at least NEAR_DERIV
 * letters; la + 1 == lb. */
static bool derived(const char *a, size_t la, const char *b, size_t lb)
{
    return la + 1 == lb && la > NEAR_DERIV && a[la - 1] == 't' && memcmp(b + lb - 2, "ca", 2) == 0 &&
           strncmp(a, b, la - 1) == 0;
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
    if (m >= NEAR_EDIT && (la > lb ? la - lb : lb - la) <= 1 && one_edit(a, la, b, lb))
        return true;
    return la > lb ? derived(b, lb, a, la) : derived(a, la, b, lb);
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

double toro_ext_weight_of(const question_t *q, uint32_t mask)
{
    double t = 0, w = 0;
    for (int g = 0; g < q->ngroups; g++) {
        t += q->w[g];
        if (mask & (1u << g))
            w += q->w[g];
    }
    return t > 0 ? w / t : 0;
}

double toro_ext_jaccard(const unit_t *a, const unit_t *b)
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

/* Groups of the question matched through acronyms in folded unit text;
 * *spells (may be NULL) gets the question's acronyms the text spells out. */
static uint32_t acronym_groups_of(const question_t *q, const char *folded, size_t len, uint32_t *spells)
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
    if (spells)
        *spells = m;
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

static uint32_t acronym_groups(const question_t *q, const char *folded, size_t len)
{
    return acronym_groups_of(q, folded, len, NULL);
}

/* Question groups named by a heading (the chunk's title or section). */
uint32_t toro_ext_heading_groups(const sel_t *s, size_t h, const char *heading)
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

uint32_t toro_ext_side_groups(const sel_t *s, size_t h)
{
    const toro_kb_hit_t *hit = &s->ctx.hits[h];
    const char *label = strrchr(hit->section, '>');
    label = label ? label + 1 : hit->section;
    char plain[256];
    size_t o = 0;
    int depth = 0;
    for (const char *p = label; *p && o + 1 < sizeof plain; p++) { /* "Híbrido (inflação + taxa)": its name */
        depth += *p == '(';
        if (!depth)
            plain[o++] = *p;
        depth -= *p == ')' && depth > 0;
    }
    plain[o] = 0;
    size_t fl;
    char *f = toro_fold(plain, o, &fl);
    if (!f)
        return 0;
    int l = strcmp(hit->lang, "en") == 0 ? 1 : 0;
    term_t terms[MAX_QGROUPS];
    int n = terms_of(s->q->an[l], f, fl, terms, MAX_QGROUPS), named = 0;
    uint32_t m = 0;
    for (int i = 0; i < n; i++) {
        uint32_t g = match_groups(s->q, l, &terms[i], 1) | acronym_groups(s->q, terms[i], strlen(terms[i]));
        named += g != 0;
        m |= g;
    }
    free(f);
    return n > 0 && named == n ? m : 0;
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
    kind = norm_token(w, &len, kind);
    if (kind == TORO_TOK_WORD)
        toro_ext_singular(w, len);
    for (int g = 0; g < e->q->ngroups; g++)
        if (strcmp(e->q->words[g], w) == 0)
            e->mask |= 1u << g;
    return 0;
}

/* Question words a title holds as written (plural and accents aside) or
 * spells as an acronym: a shared stem alone ("rende"/"renda") does not
 * make a document about the question. */
uint32_t toro_ext_title_words(const sel_t *s, size_t h)
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

/* How much of a definition's subject (folded[0..len), parenthesized
 * expansions aside) is the question: "O Tesouro Selic é …" names "Selic"
 * but defines something else; 0.5..1, 1 when the question's word is only
 * in the parentheses ("Fundos Imobiliários (FIIs)": the expansion). */
static double subject_purity(const question_t *q, int l, const char *folded, size_t len)
{
    char out[512];
    size_t o = 0;
    int depth = 0;
    for (size_t i = 0; i < len && o + 1 < sizeof out; i++) {
        depth += folded[i] == '(';
        if (!depth)
            out[o++] = folded[i];
        depth -= folded[i] == ')' && depth > 0;
    }
    term_t terms[MAX_UNIT_TERMS];
    int n = terms_of(q->an[l], out, o, terms, MAX_UNIT_TERMS), named = 0;
    for (int i = 0; i < n; i++)
        named += match_groups(q, l, &terms[i], 1) != 0;
    if (n == 0 || named == 0)
        return 1.0;
    double r = (double)named / n;
    return r < 0.5 ? 0.5 : r;
}

/* ---- periods ---------------------------------------------------------------- */

/* A holding period stated in a question ("se eu deixar 2 anos", "held for
 * 3 months") is answered by the unit whose stated range holds it ("15%
 * acima de 720 dias", "| Up to 180 days | 22.5% |"): a unit whose range
 * holds the question's period matches the period's words. */

#define PERIOD_WORDS 64 /* words of a unit scanned for ranges */

typedef struct pwords {
    char w[PERIOD_WORDS][24];
    int n;
} pwords_t;

/* Words of folded text: runs of letters and digits; ',' or '.' between
 * digits stays in the number ("1.000", "22,5"). */
static void period_words(const char *f, size_t len, pwords_t *pw)
{
    pw->n = 0;
    for (size_t i = 0; i < len && pw->n < PERIOD_WORDS;) {
        size_t o = 0;
        while (i < len && o + 1 < sizeof pw->w[0]) {
            char c = f[i];
            bool digit_sep = (c == '.' || c == ',') && o > 0 && i + 1 < len && f[i + 1] >= '0' && f[i + 1] <= '9' &&
                             pw->w[pw->n][o - 1] >= '0' && pw->w[pw->n][o - 1] <= '9';
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || digit_sep))
                break;
            pw->w[pw->n][o++] = c;
            i++;
        }
        if (o) {
            pw->w[pw->n][o] = 0;
            pw->n++;
        } else {
            i++;
        }
    }
}

/* Days in one unit of time word w, 0 when it is none. */
static double unit_days(const char *w)
{
    static const struct {
        const char *w;
        double d;
    } units[] = {{"dia", 1},     {"dias", 1},    {"day", 1},    {"days", 1},     {"semana", 7},  {"semanas", 7},
                 {"week", 7},    {"weeks", 7},   {"mes", 30},   {"meses", 30},   {"month", 30},  {"months", 30},
                 {"ano", 365},   {"anos", 365},  {"year", 365}, {"years", 365}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(w, units[i].w) == 0)
            return units[i].d;
    return 0;
}

/* The count word w writes (a numeral or "dois", "two"), 0 when none. */
static double count_of(const char *w)
{
    static const char *const pt[] = {"um", "dois", "tres", "quatro", "cinco", "seis", NULL};
    static const char *const en[] = {"one", "two", "three", "four", "five", "six", NULL};
    if (w[0] >= '0' && w[0] <= '9') {
        if (strchr(w, ',')) /* "22,5": a rate, not a count of days */
            return 0;
        double v = 0;
        for (const char *p = w; *p; p++)
            if (*p >= '0' && *p <= '9')
                v = v * 10 + (*p - '0');
        return v;
    }
    for (int i = 0; pt[i]; i++)
        if (strcmp(w, pt[i]) == 0 || strcmp(w, en[i]) == 0 || (i < 2 && strcmp(w, i ? "duas" : "uma") == 0))
            return i + 1;
    return 0;
}

/* Whether words[i..] start with the phrase (words separated by one space). */
static bool words_at(const pwords_t *pw, int i, const char *phrase)
{
    for (const char *p = phrase; *p; i++) {
        size_t n = strcspn(p, " ");
        if (i >= pw->n || strlen(pw->w[i]) != n || strncmp(pw->w[i], p, n) != 0)
            return false;
        p += n;
        p += *p == ' ';
    }
    return true;
}

/* Whether folded text states a range of time that holds `days`: "até 180
 * dias", "de 181 a 360 dias", "acima de 720 dias", "up to 180 days",
 * "181 to 360 days", "over 720 days". */
static bool range_holds(const char *f, size_t len, double days)
{
    static const char *const below[] = {"ate", "up to", "until", "within", "menos de", "less than", NULL};
    static const char *const above[] = {"acima de", "mais de", "over", "above", "more than", "after", NULL};
    pwords_t *pw = malloc(sizeof *pw);
    if (!pw)
        return false;
    period_words(f, len, pw);
    bool holds = false;
    for (int i = 0; i < pw->n && !holds; i++) {
        int side = 0, skip = 0; /* -1: up to, 1: above */
        for (int k = 0; below[k] && !side; k++)
            if (words_at(pw, i, below[k]))
                side = -1, skip = (int)(strchr(below[k], ' ') != NULL) + 1;
        for (int k = 0; above[k] && !side; k++)
            if (words_at(pw, i, above[k]))
                side = 1, skip = (int)(strchr(above[k], ' ') != NULL) + 1;
        int j = i + skip;
        double a = j < pw->n ? count_of(pw->w[j]) : 0;
        if (side && a > 0 && j + 1 < pw->n && unit_days(pw->w[j + 1]) > 0) {
            double d = a * unit_days(pw->w[j + 1]);
            holds = side < 0 ? days <= d : days > d;
        } else if (!side && count_of(pw->w[i]) > 0 && i + 3 < pw->n &&
                   (words_at(pw, i + 1, "a") || words_at(pw, i + 1, "to")) && count_of(pw->w[i + 2]) > 0 &&
                   unit_days(pw->w[i + 3]) > 0) {
            double u = unit_days(pw->w[i + 3]);
            holds = days >= count_of(pw->w[i]) * u && days <= count_of(pw->w[i + 2]) * u;
        }
    }
    free(pw);
    return holds;
}

/* The holding period a folded question states ("2 anos", "3 months") and
 * the groups that write it. */
static void question_period(question_t *q, const char *f, size_t len)
{
    pwords_t *pw = malloc(sizeof *pw);
    if (!pw)
        return; /* no period: the answer is scored without it */
    period_words(f, len, pw);
    for (int i = 0; i + 1 < pw->n && q->dur_days == 0; i++) {
        double c = count_of(pw->w[i]), u = unit_days(pw->w[i + 1]);
        if (c <= 0 || u <= 0)
            continue;
        q->dur_days = c * u;
        for (int k = i; k <= i + 1; k++) {
            term_t w;
            snprintf(w, sizeof w, "%s", pw->w[k]);
            toro_ext_singular(w, strlen(w));
            for (int g = 0; g < q->ngroups; g++)
                if (strcmp(q->words[g], w) == 0)
                    q->dur_mask |= 1u << g;
        }
    }
    free(pw);
}

/* The period groups a unit's folded text matches through a range. */
static uint32_t period_groups(const question_t *q, const char *f, size_t len)
{
    return q->dur_mask && range_holds(f, len, q->dur_days) ? q->dur_mask : 0;
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
        uint32_t m = head | match_groups(q, l, terms, n) | period_groups(q, folded + a, b - a);
        if (__builtin_popcount(m) > __builtin_popcount(best))
            best = m;
        a = b;
    }
    return best;
}

/* Terms, question groups and features of every unit. */
int toro_ext_analyze_units(sel_t *s)
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
            u->gmask |= acronym_groups_of(s->q, f, fl, &u->spells) | period_groups(s->q, f, fl);
        u->feat = toro_qkind_features(f, fl);
        u->anaphor = u->kind == U_SENTENCE && starts_with_any(f, ANAPHORS);
        const char *body = f; /* an item's text: "- **Exemplos:** …" is an example too */
        while (*body == '-' || *body == '*' || *body == ' ')
            body++;
        u->example = starts_with_any(body, EXAMPLES);
        size_t subj = u->gmask ? defines_term(s->q, f, has_bytes(h->text + u->start, u->len, "é ")) : 0;
        u->defines = subj > 0;
        u->subject = u->defines ? subject_groups(s->q, l, f, subj) : 0;
        u->subj_pure = u->defines ? subject_purity(s->q, l, f, subj) : 0;
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


void toro_ext_clear(sel_t *s)
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
    if (kind == TORO_TOK_WORD && skip_word(tok, len))
        return 0;
    memcpy(w, tok, len + 1);
    kind = norm_token(w, &len, kind);
    if (kind == TORO_TOK_WORD)
        stem_word(q->an[0], w, len, st);
    else
        memcpy(st, w, len + 1);
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
int toro_ext_analyze_question(sel_t *s, const char *question)
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
    size_t rl;
    char *r = rate_per_day(f, fl, &rl);
    free(f);
    if (!r)
        return TORO_ENOMEM;
    toro_tokenize(r, rl, q_tok, s->q);
    question_period(s->q, r, rl);
    free(r);
    s->q->kind = toro_qkind_of(question);
    return split_parts(s->q, question);
}

int toro_answer_sentence_match(const char *question, const char *sentence, const char *lang, int *matched,
                               int *total)
{
    sel_t s = {0};
    *matched = *total = 0;
    int rc = toro_ext_analyze_question(&s, question);
    if (!rc) {
        int l = lang && strcmp(lang, "en") == 0 ? 1 : 0;
        size_t fl;
        char *f = toro_fold(sentence, strlen(sentence), &fl);
        if (!f) {
            rc = TORO_ENOMEM;
        } else {
            int n = terms_of(s.q->an[l], f, fl, s.termpool, MAX_UNIT_TERMS);
            uint32_t m = match_groups(s.q, l, s.termpool, n) | acronym_groups(s.q, f, fl) | period_groups(s.q, f, fl);
            *matched = __builtin_popcount(m);
            *total = s.q->ngroups;
            free(f);
        }
    }
    toro_ext_clear(&s);
    return rc;
}
