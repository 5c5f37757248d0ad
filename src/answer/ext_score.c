/* ext_score.c: the retrieve step of the extractive answerer and the
 * scoring of units (ext.h): chunks cut into sentences, list items and whole
 * tables; each unit scored by the weighted share of the question it
 * matches (with its paragraph, list intro and headings), what the question
 * asks (qkind.h) and the chunk's own retrieval score. It does not pick or
 * compose. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer/ext.h"
#include "answer/qkind.h"
#include "core/error.h"
#include "kb/analyzer.h"
#include "kb/chunker.h"

/* ---- retrieve --------------------------------------------------------------- */

/* A question word the knowledge base knows in no language ("horaro") is
 * read as retrieval read it: the closest indexed term ("horari"), so the
 * sentences that answer it match it. Sub-question masks are already made. */
static void fix_typos(toro_kb_t *kb, question_t *q)
{
    for (int g = 0; g < q->ngroups; g++) {
        term_t fixed[2];
        int r[2];
        for (int l = 0; l < 2; l++)
            r[l] = toro_kb_typo_fix(kb, q->stems[g][l], fixed[l]);
        if (r[0] < 0 || r[1] < 0 || (r[0] == 0 && r[1] == 0))
            continue; /* known in a language: a word, not a typo */
        for (int l = 0; l < 2; l++) /* a stem too short to fix takes the other language's fix */
            memcpy(q->stems[g][l], fixed[r[l] ? l : 1 - l], sizeof(term_t));
    }
}

/* The relevant chunks worth reading, preferring the question's language. */
int toro_ext_retrieve(toro_kb_t *kb, const char *question, sel_t *s, char **errmsg)
{
    int rc = toro_prompt_retrieve(kb, question, RETRIEVE_K, &s->ctx, errmsg);
    if (rc)
        return rc;
    fix_typos(kb, s->q);
    const toro_kb_hit_t *h = s->ctx.hits;
    for (size_t i = 0; i < s->ctx.n_passages; i++)
        if (strcmp(h[i].lang, s->ctx.lang) == 0)
            s->same_lang = true;
    /* The question found relevant documents, none in its language: the
     * chunks in its language that retrieval ranks close to the best answer
     * it in its own words ("tax free" from the English overview, not the
     * Portuguese page on LCI). */
    size_t n_read = s->ctx.n_passages;
    bool borrow = false;
    for (size_t i = n_read; !s->same_lang && n_read > 0 && i < s->ctx.n_hits; i++)
        if (strcmp(h[i].lang, s->ctx.lang) == 0 && h[i].score >= LANG_CLOSE * h[0].score)
            s->same_lang = borrow = true;
    while (borrow && n_read < s->ctx.n_hits && h[n_read].score >= LANG_CLOSE * h[0].score)
        n_read++;
    for (size_t i = 0; i < n_read && s->nuse < MAX_CHUNKS; i++) {
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
    for (size_t i = n_read; s->nuse > 0 && i < s->ctx.n_hits && s->nuse < MAX_CHUNKS; i++) {
        if (s->same_lang && strcmp(h[i].lang, s->ctx.lang) != 0)
            continue;
        int named = __builtin_popcount(toro_ext_heading_groups(s, i, h[i].title));
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

/* A sentence ending in ':' whose list, table or display line is not in
 * the chunk cannot stand alone ("…, que deve:"): it is never picked nor attached. */
bool toro_ext_display(const sel_t *s, size_t j)
{
    const unit_t *v = &s->units[j];
    if (j == 0 || v->kind != U_SENTENCE || v->len > DISPLAY_MAX)
        return false;
    const unit_t *p = &s->units[j - 1], *n = j + 1 < s->nu ? &s->units[j + 1] : NULL;
    return p->hit == v->hit && p->para != v->para && (!n || n->hit != v->hit || n->para != v->para);
}

static void drop_dangling(sel_t *s)
{
    for (size_t i = 0; i < s->nu; i++) {
        unit_t *u = &s->units[i];
        bool has_list = i + 1 < s->nu && s->units[i + 1].hit == u->hit &&
                        (s->units[i + 1].kind != U_SENTENCE || toro_ext_display(s, i + 1));
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

/* Group weights: every question word found counts, one held by few units
 * a little more (it tells them apart: idf over the units read); a word no
 * unit holds ("funciona", "acontece") does not count. */
static void weigh_groups(sel_t *s)
{
    question_t *q = s->q;
    for (size_t ci = 0; ci < s->nuse; ci++) {
        size_t h = s->use[ci];
        s->title[h] = toro_ext_heading_groups(s, h, s->ctx.hits[h].title);
        s->head[h] = s->title[h] | toro_ext_heading_groups(s, h, s->ctx.hits[h].section);
        const char *sec = strrchr(s->ctx.hits[h].section, '>');
        s->head_kind[h] = toro_qkind_of(sec ? sec + 1 : s->ctx.hits[h].section) &
                          (TORO_Q_DEFINITION | TORO_Q_AMOUNT | TORO_Q_TIME | TORO_Q_HOWTO | TORO_Q_COMPARISON | TORO_Q_PLACE);
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
double toro_ext_kind_bonus(unsigned kind, const unit_t *u)
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
    if ((kind & TORO_Q_REASON) && (u->feat & TORO_F_CAUSE))
        b += 0.15;
    if ((kind & TORO_Q_COMPARISON) && (u->feat & TORO_F_CONTRAST) && __builtin_popcount(u->gmask) >= 2)
        b += 0.2;
    return b;
}

static void score_units(sel_t *s)
{
    double tcov[MAX_CHUNKS];
    for (size_t ci = 0; ci < s->nuse; ci++) {
        tcov[ci] = toro_ext_weight_of(s->q, s->title[s->use[ci]]);
        /* about the question: its title names a question word, or retrieval
         * ranks it among the first few, close to the best */
        s->on_topic[s->use[ci]] = (tcov[ci] > 0 && toro_ext_title_words(s, s->use[ci]) != 0) ||
                                  (ci < TOPIC_RANKS && chunk_prior(s, s->use[ci]) >= TOPIC_PRIOR);
    }
    size_t intro = SIZE_MAX; /* the sentence that opened the current list */
    for (size_t i = 0; i < s->nu; i++) {
        unit_t *u = &s->units[i];
        const unit_t *prev = i > 0 && s->units[i - 1].hit == u->hit ? &s->units[i - 1] : NULL;
        size_t ci = 0;
        while (ci + 1 < s->nuse && s->use[ci] != u->hit)
            ci++;
        u->lex = toro_ext_weight_of(s->q, u->gmask);
        u->def_share = toro_ext_weight_of(s->q, u->subject) * u->subj_pure;
        u->ctx_lex = u->lex;
        const unit_t *nx = i + 1 < s->nu ? &s->units[i + 1] : NULL;
        if (nx && nx->hit == u->hit && nx->anaphor && nx->para == u->para) /* shown together: matched together */
            u->ctx_lex = toro_ext_weight_of(s->q, u->gmask | nx->gmask);
        if (prev && prev->para == u->para && u->ctx_lex < 0.5 * prev->lex) /* "Ele ocorre …" after its subject */
            u->ctx_lex = 0.5 * prev->lex;
        if (u->kind == U_SENTENCE)
            intro = u->intro ? i : SIZE_MAX;
        else if (intro != SIZE_MAX && s->units[intro].hit == u->hit && u->ctx_lex < 0.6 * s->units[intro].lex)
            u->ctx_lex = 0.6 * s->units[intro].lex;
        double under = 0.6 * toro_ext_weight_of(s->q, u->gmask | s->head[u->hit]); /* "R$ 250 mil …" under "Limites" */
        if (u->ctx_lex < under)
            u->ctx_lex = under;
        if (u->ctx_lex <= 0 || (u->kind == U_TABLE && !u->table_head && u->lex < 0.5)) {
            u->score = 0; /* a table speaks only through its header or a row that matches most of the question */
            continue;
        }
        double bonus = toro_ext_kind_bonus(s->q->kind, u);
        const unit_t *next = i + 1 < s->nu ? &s->units[i + 1] : NULL;
        if (next && next->hit == u->hit && next->anaphor && next->para == u->para) {
            double nb = toro_ext_kind_bonus(s->q->kind, next); /* "… Ele ocorre em maio e novembro." answers with it */
            if (nb > bonus)
                bonus = nb;
        }
        if (s->q->kind & s->head_kind[u->hit]) /* under a heading that asks what the question asks */
            bonus += 0.2;
        if (u->ctx_lex < KIND_FULL_LEX) /* what is asked counts in full only in a unit about the question */
            bonus *= u->ctx_lex / KIND_FULL_LEX;
        double prior = chunk_prior(s, u->hit);
        u->base = u->ctx_lex + 0.35 * tcov[ci] + 0.12 / (1.0 + (double)ci) + (u->start == 0 ? 0.05 : 0) +
                  CHUNK_W * s->ctx.hits[u->hit].coverage + (s->ctx.hits[u->hit].cosine != 0 ? PRIOR_W : PRIOR_W_LEX) * prior;
        u->mult = 1.0;
        if (u->len < 25 && u->kind == U_SENTENCE) /* a fragment; a short list item ("- LCI: 12 meses;") is a whole answer */
            u->mult *= 0.6;
        else if (u->len > 450 && u->kind == U_SENTENCE)
            u->mult *= 0.85;
        u->score = (u->base + bonus) * u->mult;
    }
}

int toro_ext_score(sel_t *s)
{
    for (size_t ci = 0; ci < s->nuse; ci++)
        split_chunk(s, ci);
    mark_labels(s);
    drop_dangling(s);
    int rc = toro_ext_analyze_units(s);
    if (rc)
        return rc;
    weigh_groups(s);
    score_units(s);
    return 0;
}
