/* ext_select.c: the select step of the extractive answerer (ext.h): the
 * lead unit chosen by score and question kind, then at most MAX_POINTS
 * supporting blocks (one per further sub-question, the opening of each
 * side's own section for a question on a difference, what is asked and not
 * yet offered, uncovered question words, the best remaining), never
 * repeating, never from a document that is not itself relevant; a unit
 * brings its list, table, example, the sentence its pronoun points to or
 * the short opening of its paragraph that names what it leaves out, and
 * picked neighbours of one paragraph join into one passage. It does
 * not score units or write text. */
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

/* ---- select: lead and points ---------------------------------------------- */

#define CLOSING_MAX 200 /* bytes of a sentence that closes a list */
#define OPENER_MAX 160  /* bytes of a paragraph's opening sentence brought before a picked one */

/* Whether a unit may join a block as part of another unit's: not taken,
 * or only considered and left out as a point of its own (-1); never one
 * left out on purpose (-2: an intro without its list). */
static bool is_free(const unit_t *u)
{
    return u->picked == 0 || u->picked == -1;
}

/* The short sentence right after a list that names a question word closes
 * it ("Se alguma condição não for cumprida, os rendimentos são tributados
 * em 20%" after the conditions): it joins the list's block. */
static void take_closing(sel_t *s, size_t j, int blk)
{
    if (j >= s->nu || j == 0)
        return;
    unit_t *v = &s->units[j];
    if (v->hit == s->units[j - 1].hit && v->kind == U_SENTENCE && is_free(v) && !v->intro && v->gmask &&
        v->len <= CLOSING_MAX)
        v->picked = blk;
}

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
        if (j > 0 && s->units[j - 1].hit == u->hit && s->units[j - 1].intro && is_free(&s->units[j - 1])) {
            take_block(s, j - 1, blk);
            u->picked = blk;
            return;
        }
        if (u->kind == U_ITEM) /* a list without intro: items that match another question word come along */
            for (size_t k = j; k < s->nu && s->units[k].hit == u->hit && s->units[k].kind == U_ITEM; k++)
                if (is_free(&s->units[k]) && (s->units[k].gmask & ~u->gmask) && k != i)
                    s->units[k].picked = blk;
    }
    u->picked = blk;
    if (u->anaphor && i > 0 && s->units[i - 1].hit == u->hit && s->units[i - 1].para == u->para &&
        is_free(&s->units[i - 1]))
        s->units[i - 1].picked = blk;
    if (u->kind != U_SENTENCE && i > 0 && s->units[i - 1].hit == u->hit && s->units[i - 1].intro &&
        is_free(&s->units[i - 1])) {
        s->units[i - 1].picked = blk; /* the sentence that opens this list or table */
        if (u->kind == U_ITEM)
            return;
    }
    if (u->intro || u->example) {
        int n = 0;
        size_t j = i + 1;
        for (; j < s->nu && s->units[j].hit == u->hit && n < MAX_BLOCK; j++, n++) {
            const unit_t *v = &s->units[j];
            bool belongs = v->kind != U_SENTENCE || (u->example && v->para == u->para) ||
                           (u->intro && j == i + 1 && toro_ext_display(s, j));
            if (!belongs)
                break;
            if (is_free(v))
                s->units[j].picked = blk;
        }
        if (u->intro && j > i + 1)
            take_closing(s, j, blk);
    }
    if (u->kind == U_SENTENCE && i + 1 < s->nu && s->units[i + 1].hit == u->hit && s->units[i + 1].anaphor &&
        s->units[i + 1].para == u->para && is_free(&s->units[i + 1]))
        take_block(s, i + 1, blk); /* with its list when it opens one ("Elas cumprem papéis diferentes:") */
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
    toro_ext_singular(ws->w[ws->n++], len);
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
        if (s->units[i].picked > 0 && toro_ext_jaccard(&s->units[i], u) > DUP_JACCARD)
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

/* Score of u for sub-question p: what that part asks, on top of the whole;
 * a word of the part that only u's heading names counts half. */
static double part_score(const sel_t *s, const unit_t *u, int p)
{
    const question_t *q = s->q;
    double t = 0, w = 0;
    for (int g = 0; g < q->ngroups; g++)
        if (q->part_mask[p] & (1u << g)) {
            t += q->w[g];
            if (u->gmask & (1u << g))
                w += q->w[g];
            else if (s->head[u->hit] & (1u << g)) /* named by its heading only: half */
                w += 0.5 * q->w[g];
        }
    double own = t > 0 ? w / t : 0;
    if (own <= 0 || u->score <= 0)
        return 0;
    /* the part's own words stand in for the whole question's match */
    return (u->base - u->ctx_lex + 2 * own + toro_ext_kind_bonus(q->part_kind[p], u)) * u->mult;
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

size_t toro_ext_prefer_on_topic(const sel_t *s, size_t lead)
{
    if (s->on_topic[s->units[lead].hit])
        return lead;
    size_t best = lead;
    for (size_t i = 0; i < s->nu; i++) {
        const unit_t *u = &s->units[i];
        if (u->picked || !s->on_topic[u->hit] || !(u->gmask | s->head[u->hit]) || u->score < ON_TOPIC_LEAD * s->units[lead].score)
            continue;
        if (best == lead || u->score > s->units[best].score)
            best = i;
    }
    return best;
}

/* An example illustrates an answer, it does not open it: for an example
 * lead, the best unit that is none and scores at least EXAMPLE_LEAD of it
 * (else the example). */
static size_t not_example(const sel_t *s, size_t lead)
{
    if (lead >= s->nu || !s->units[lead].example)
        return lead;
    size_t alt = s->nu;
    for (size_t i = 0; i < s->nu; i++) {
        const unit_t *u = &s->units[i];
        if (u->example || u->picked || !(u->gmask | s->head[u->hit]) || u->score < EXAMPLE_LEAD * s->units[lead].score)
            continue;
        if (alt == s->nu || u->score > s->units[alt].score)
            alt = i;
    }
    return alt < s->nu ? alt : lead;
}

/* The opening unit: the best one; for several questions in one, the best
 * for the first; for "o que é X", the one that defines X when it is close. */
static size_t pick_lead(const sel_t *s)
{
    size_t lead = not_example(s, best_unit(s, 0, false, 0, true));
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
    return toro_ext_prefer_on_topic(s, lead);
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

/* "O que é JCP?" is answered with what the letters stand for: for an
 * acronym the question asks to define, when no picked unit spells it out,
 * the best unit that does. */
static void spell_out(sel_t *s, size_t lead, double floor)
{
    if (!(s->q->kind & TORO_Q_DEFINITION))
        return;
    uint32_t spelled = 0, asked = 0;
    for (size_t i = 0; i < s->nu; i++) {
        asked |= s->units[i].spells;
        if (s->units[i].picked > 0)
            spelled |= s->units[i].spells;
    }
    asked &= s->q->part_mask[0] & ~spelled; /* the first part is the one a definition answers */
    for (int g = 0; g < s->q->ngroups && asked && s->nblocks <= MAX_POINTS; g++) {
        if (!(asked & (1u << g)))
            continue;
        size_t best = s->nu;
        for (size_t i = 0; i < s->nu; i++) {
            const unit_t *u = &s->units[i];
            if (!u->picked && (u->spells & (1u << g)) && u->score > 0.5 * floor &&
                (best == s->nu || u->score > s->units[best].score) && may_add(s, i, lead))
                best = i;
        }
        if (best < s->nu) {
            take_block(s, best, ++s->nblocks);
            asked &= ~s->units[best].spells;
        }
    }
}

/* Whether unit u speaks of question group g: it names it, or its section
 * heading does ("A taxa é definida na compra." under "Prefixado"), or its
 * document's title does and u names another question word ("Sem FGC."
 * in the document on FIIs). */
static bool speaks_of(const sel_t *s, const unit_t *u, int g)
{
    uint32_t bit = 1u << g;
    if (u->gmask & bit)
        return true;
    if ((s->head[u->hit] & ~s->title[u->hit]) & bit)
        return true;
    return (s->title[u->hit] & bit) && u->gmask;
}

/* A question word no picked unit holds yet ("tijolo" and "papel" of a
 * comparison): the best unit that does, heaviest word first. For a
 * comparison a table does not cover its words: each side gets its own words. */
static void cover_groups(sel_t *s, size_t lead, double floor)
{
    uint32_t tried = 0;
    bool compare = s->q->kind & TORO_Q_COMPARISON; /* a table contrasts the sides but does not say what each is */
    for (int pass = 0; pass < s->q->ngroups && s->nblocks <= MAX_POINTS; pass++) {
        uint32_t covered = tried;
        for (size_t i = 0; i < s->nu; i++)
            if (s->units[i].picked > 0 && !(compare && s->units[i].kind == U_TABLE))
                covered |= s->units[i].gmask | s->head[s->units[i].hit];
        int g_best = -1;
        for (int g = 0; g < s->q->ngroups; g++)
            if (s->q->w[g] > 0 && !(covered & (1u << g)) && (g_best < 0 || s->q->w[g] > s->q->w[g_best]))
                g_best = g;
        if (g_best < 0)
            return;
        size_t best = s->nu;
        for (size_t i = 0; i < s->nu; i++) { /* the best one that may join: a better one from an unrelated document does not block it */
            const unit_t *u = &s->units[i];
            if (!u->picked && speaks_of(s, u, g_best) && u->score > 0.5 * floor &&
                (best == s->nu || u->score > s->units[best].score) && may_add(s, i, lead))
                best = i;
        }
        tried |= 1u << g_best;
        if (best < s->nu)
            take_block(s, best, ++s->nblocks);
    }
}

/* The opening of hit h's section as block blk: its first sentence (with
 * what take_block brings), or, when the section opens with a list, the
 * whole list. Returns false when that opening repeats the answer. */
static bool take_opening(sel_t *s, size_t h, int blk)
{
    size_t i = 0;
    while (i < s->nu && (s->units[i].hit != h || s->units[i].picked == -2))
        i++;
    if (i == s->nu || s->units[i].picked || s->units[i].kind == U_TABLE || repeats(s, &s->units[i]))
        return false;
    take_block(s, i, blk);
    for (size_t k = i + 1; s->units[i].kind == U_ITEM && k < s->nu && k - i < MAX_BLOCK; k++) {
        if (s->units[k].hit != h || s->units[k].kind != U_ITEM)
            break;
        if (!s->units[k].picked)
            s->units[k].picked = blk;
    }
    return true;
}

/* A question on the difference between sides that have their own sections
 * ("## PGBL", "## VGBL") is told what each side is: the opening of each side's section not yet in
 * the answer, in retrieval order. */
static void cover_sides(sel_t *s)
{
    if (!(s->q->kind & TORO_Q_DIFFERENCE))
        return;
    uint32_t done = 0;
    for (size_t i = 0; i < s->nu; i++)
        if (s->units[i].picked > 0)
            done |= toro_ext_side_groups(s, s->units[i].hit);
    for (size_t ci = 0; ci < s->nuse && s->nblocks <= MAX_POINTS; ci++) {
        size_t h = s->use[ci];
        uint32_t side = toro_ext_side_groups(s, h);
        if (!side || (side & done) == side || !s->on_topic[h])
            continue;
        done |= side;
        if (take_opening(s, h, s->nblocks + 1))
            s->nblocks++;
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
bool toro_ext_join_neighbors(sel_t *s)
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

/* A picked sentence followed in its paragraph by a short sentence that
 * matches the question on its own and scores above floor brings it: the
 * rule after its example, the condition after its rule. One per block. */
static void extend_blocks(sel_t *s, double floor)
{
    uint32_t done = 0;
    for (size_t i = 0; i + 1 < s->nu; i++) {
        const unit_t *u = &s->units[i];
        unit_t *v = &s->units[i + 1];
        if (u->picked <= 0 || u->picked > 31 || (done & (1u << u->picked)) || v->picked || v->hit != u->hit ||
            v->para != u->para || v->kind != U_SENTENCE || u->kind != U_SENTENCE || !v->gmask || v->score < floor ||
            v->len > 240 || repeats(s, v))
            continue;
        done |= 1u << u->picked;
        take_block(s, i + 1, u->picked); /* with its list when it opens one */
        i++;
    }
}

/* Question groups the units of block blk match. */
static uint32_t block_groups(const sel_t *s, int blk)
{
    uint32_t m = 0;
    for (size_t i = 0; i < s->nu; i++)
        if (s->units[i].picked == blk)
            m |= s->units[i].gmask;
    return m;
}

/* A picked sentence whose paragraph opens, right before it, with a short
 * sentence naming a question word the block does not hold brings that
 * opening: it says what the sentence after it works out ("Para comparar,
 * calcule a taxa equivalente." before the worked comparison). One per block. */
static void extend_back(sel_t *s)
{
    uint32_t done = 0;
    for (size_t i = 1; i < s->nu; i++) {
        const unit_t *u = &s->units[i];
        unit_t *v = &s->units[i - 1];
        if (u->picked <= 0 || u->picked > 31 || (done & (1u << u->picked)) || u->kind != U_SENTENCE || v->picked ||
            v->hit != u->hit || v->para != u->para || v->kind != U_SENTENCE || v->intro || v->len > OPENER_MAX ||
            !(v->gmask & ~block_groups(s, u->picked)) || (i >= 2 && s->units[i - 2].hit == u->hit &&
                                                           s->units[i - 2].para == u->para))
            continue;
        if (repeats(s, v))
            continue;
        done |= 1u << u->picked;
        v->picked = u->picked;
    }
}

/* A definition question answered by a terse definition ("A Selic é a taxa
 * básica de juros.") reads on into the next sentence of its paragraph,
 * which says what the one line leaves out (the name, the mechanism), even
 * when it repeats no question word. Only the lead, only a sentence that
 * defines, only when both stay short. */
static void extend_definition(sel_t *s, size_t lead)
{
    const unit_t *u = &s->units[lead];
    if (!(s->q->kind & TORO_Q_DEFINITION) || u->kind != U_SENTENCE || !u->defines || u->len > TERSE_DEF ||
        lead + 1 >= s->nu)
        return;
    unit_t *v = &s->units[lead + 1];
    if (v->picked || v->hit != u->hit || v->para != u->para || v->kind != U_SENTENCE || v->intro || v->example ||
        v->len > 240 || repeats(s, v))
        return;
    v->picked = u->picked;
}

/* Lead, then one block per further sub-question, then the sides of a
 * difference, then what is asked and
 * not yet offered, then uncovered question words, then the best remaining
 * units: at most MAX_POINTS blocks after the lead, never repeating;
 * picked neighbours joined, a picked sentence's close follower brought. */
void toro_ext_select(sel_t *s)
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
    cover_sides(s);
    add_wanted(s, lead, floor);
    spell_out(s, lead, floor);
    cover_groups(s, lead, floor);
    while (toro_ext_join_neighbors(s))
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
        while (toro_ext_join_neighbors(s))
            ;
    }
    for (size_t i = 0; i < s->nu; i++)
        if (s->units[i].picked < 0)
            s->units[i].picked = 0;
    extend_definition(s, lead);
    extend_blocks(s, EXTEND_SHARE * s->units[lead].score);
    extend_back(s);
}
