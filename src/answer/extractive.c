/* extractive.c: the default answerer, which needs no model. An answer is
 * built in three steps:
 *   retrieve  the one retrieval path of every answerer (toro_prompt_retrieve),
 *             keeping the relevant chunks, in the question's language when
 *             it has any;
 *   select    the chunks are cut into units (sentences, list items, whole
 *             tables); each unit is scored by lexical similarity to the
 *             question (analyzer stems, folded accents, plurals folded) and
 *             by what the question asks (qkind.h): a definition, an amount,
 *             a date, steps, yes/no, a comparison. The best unit leads (a
 *             close one from a chunk about the question before one from a
 *             chunk that is not); at most three supporting points
 *             follow, near-duplicates dropped;
 *             a unit that introduces a list, a table or an example brings it;
 *             a one-line definition leading a "what is" answer brings the
 *             next sentence of its paragraph;
 *   compose   lead paragraph, then the points, each cited [n]; tables stay
 *             Markdown tables; advice and live-data questions open with the
 *             fixed no-recommendation note (qkind.h).
 * The steps live in ext_score.c (retrieve, units, scores), ext_select.c
 * (lead and points) and ext_terms.c (terms and question words), sharing
 * ext.h; this file composes the text and is the answerer.
 * When no chunk is relevant it answers the fixed "no information" text. It
 * keeps no per-call state in the answerer, so concurrent calls on one
 * instance are safe (the kb handle is thread-safe). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer/answer.h"
#include "answer/ext.h"
#include "answer/prompt.h"
#include "answer/qkind.h"
#include "core/error.h"
#include "core/strbuf.h"
#include "kb/kb.h"

typedef struct extractive {
    toro_answerer_t base; /* ops first */
    toro_kb_t *kb;        /* borrowed */
} extractive_t;

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
    int prev = -1, prev_para = -1;
    for (size_t i = first; i < s->nu; i++) {
        const unit_t *u = &s->units[i];
        if (u->picked != blk || u->hit != h)
            continue;
        if (prev >= 0) /* sentences of one paragraph run on; a list, table or display line starts a line */
            toro_strbuf_str(sb, (u->kind != U_SENTENCE || prev != U_SENTENCE || u->para != prev_para) ? "\n" : " ");
        prev_para = u->para;
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
        rc = toro_ext_analyze_question(&s, question);
    if (!rc)
        rc = toro_ext_retrieve(x->kb, question, &s, &err);
    if (!rc && s.nuse > 0) {
        rc = toro_ext_score(&s);
        if (!rc) {
            toro_ext_select(&s);
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
    toro_ext_clear(&s);
    return toro_answer_finish(rc, out, err, errmsg);
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
