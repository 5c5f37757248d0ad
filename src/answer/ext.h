/* ext.h: what the files of the extractive answerer share (not a public
 * interface: only src/answer/ext_*.c and extractive.c include it). One
 * answer's working set (sel_t): the retrieved chunks, the question's words
 * and kinds, and the units (sentences, list items, tables) cut from the
 * chunks with their scores and the block each was picked for.
 *   ext_terms.c   question and unit terms: stems, plurals, acronyms,
 *                 derivations and typing slips, definitions, sub-questions;
 *   ext_score.c   retrieve, cut chunks into units, weigh question words,
 *                 score each unit;
 *   ext_select.c  pick the lead and at most MAX_POINTS supporting blocks;
 *   extractive.c  compose the answer text and sources; the answerer.
 * It does no I/O. */
#ifndef TORO_ANSWER_EXT_H
#define TORO_ANSWER_EXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "answer/prompt.h"
#include "kb/analyzer.h"
#include "kb/kb.h"

#define RETRIEVE_K 16      /* chunks retrieved (enough to find one in the question's language) */
#define MAX_CHUNKS 16      /* relevant chunks read for sentences */
#define MAX_UNITS 384      /* sentences, items and tables considered */
#define MAX_UNIT_TERMS 96  /* analyzed terms kept per unit */
#define MAX_QGROUPS 32     /* question words */
#define MAX_POINTS 3       /* supporting points after the lead */
#define MAX_BLOCK 24       /* units in one lead or point (a sentence with its list) */
#define POINT_BUDGET 900   /* bytes of supporting points (tables and lists excluded) */
#define DUP_JACCARD 0.5    /* term overlap above which two units say the same */
#define MIN_NOVELTY 0.25   /* share of new terms a point must bring (tuned on the odd lines of kb/eval) */
#define MAX_PARTS 4        /* sub-questions ("CDB tem FGC? E paga quanto de IR?") answered each */
#define CHUNK_W 0.3        /* weight of the chunk's own match (the kb's idf-weighted coverage) in a unit's score */
#define PRIOR_W 0.6        /* weight of the chunk's retrieval score (relative to the best chunk) in a unit's score */
#define PRIOR_W_LEX 0.3    /* the same for a BM25-only score: lexical overlap, which the unit's own score already counts */
#define LANG_CLOSE 0.75    /* chunks in the question's language this close to the best answer it when no relevant one is */
#define TOPIC_RANKS 3      /* chunks retrieval ranks first ... */
#define TOPIC_PRIOR 0.75   /* ... with a score this close to the best are about the question whatever their title */
#define EXTEND_SHARE 0.65  /* a sentence scoring this share of the lead's score may follow a picked one */
#define ON_TOPIC_LEAD 0.8 /* a lead from a chunk not about the question gives way to one that is, scoring this share of it */
#define EXAMPLE_LEAD 0.8   /* an example does not lead when a unit that is none scores this share of it */
#define DISPLAY_MAX 240    /* bytes of a display line (a formula) an introducing sentence brings */
#define TERSE_DEF 120     /* a defining lead this short brings the next sentence of its paragraph */
#define KIND_FULL_LEX 0.4  /* share of the question a unit must match to get its kind bonus in full */
#define NEAR_PREFIX 6      /* stems this long match the longer stems they start (liquid: liquidação) */
#define NEAR_EDIT 6        /* stems this long match stems one typing slip away */
#define NEAR_DERIV 4       /* letters shared by a -ção noun and its -to participle (isenção: isento) */

typedef char term_t[TORO_TOKEN_MAX + 1];

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
    double def_share;  /* weighted share of the question its defined subject names, times subj_pure */
    double subj_pure;  /* share of the subject's words that are the question's, 0.5..1 (0: defines nothing) */
    bool table_head;   /* a table whose header names a question word ("Alíquota de IR") */
    uint32_t spells;   /* question acronyms it spells out ("juros sobre capital próprio" for "JCP") */
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
    double dur_days;              /* a holding period the question states ("2 anos": 730), 0 when none */
    uint32_t dur_mask;            /* its groups (the number and the unit word) */
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


/* ---- ext_terms.c ---------------------------------------------------------- */

/* Why: FII/FIIs, ação/ações and título/títulos give one term whatever the
 * stemmer does: plural to singular in place. Returns the new length. */
size_t toro_ext_singular(char *w, size_t n);
/* Why: the weighted share of the question that the groups of mask name, 0..1. */
double toro_ext_weight_of(const question_t *q, uint32_t mask);
/* Why: two units saying the same: term overlap 0..1. */
double toro_ext_jaccard(const unit_t *a, const unit_t *b);
/* Why: question groups a chunk's title or section names (hit h of s->ctx). */
uint32_t toro_ext_heading_groups(const sel_t *s, size_t h, const char *heading);
/* Why: a comparison's sides have their own sections ("## Renda fixa",
 * "## VGBL"): the question groups hit h's section heading names when every
 * word of it (parentheses aside) is a question word, else 0. */
uint32_t toro_ext_side_groups(const sel_t *s, size_t h);
/* Why: question words hit h's title holds as written (or as an acronym). */
uint32_t toro_ext_title_words(const sel_t *s, size_t h);
/* Why: the question's words (stemmed pt and en), kinds and sub-questions;
 * allocates s->q, s->units and s->termpool. 0 or TORO_ENOMEM (then
 * toro_ext_clear still frees what was made). */
int toro_ext_analyze_question(sel_t *s, const char *question);
/* Why: terms, question groups, features and definitions of s->units[0..nu).
 * 0 or TORO_ENOMEM. */
int toro_ext_analyze_units(sel_t *s);
/* Why: frees everything a sel_t holds (any state, also after a failure). */
void toro_ext_clear(sel_t *s);

/* ---- ext_score.c ---------------------------------------------------------- */

/* Why: the retrieve step: the relevant chunks worth reading into s->use,
 * preferring the question's language. 0, or an error with *errmsg (caller frees). */
int toro_ext_retrieve(toro_kb_t *kb, const char *question, sel_t *s, char **errmsg);
/* Why: the chunks in s->use cut into units, each analyzed and scored.
 * 0 or TORO_ENOMEM. */
int toro_ext_score(sel_t *s);
/* Why: a line set apart as its own paragraph right after the sentence that
 * introduces it ("O ganho é calculado assim:" then the formula) belongs to
 * that sentence as a list would: unit j is one sentence alone in its
 * paragraph, at most DISPLAY_MAX bytes, after another paragraph of its chunk. */
bool toro_ext_display(const sel_t *s, size_t j);
/* Why: what question kinds `kind` ask for, as a score bonus on a unit that offers it. */
double toro_ext_kind_bonus(unsigned kind, const unit_t *u);

/* ---- ext_select.c --------------------------------------------------------- */

/* Why: the select step: marks the lead (block 1) and at most MAX_POINTS
 * further blocks in units[].picked; s->nblocks their count (0: nothing fit). */
void toro_ext_select(sel_t *s);
/* Why: a sentence from a chunk that is not about the question (on_topic
 * false: its title names no question word and retrieval does not rank it
 * among the first, close to the best) must not open the answer when a chunk
 * that is offers a unit matching the question (gmask or its heading) that
 * scores at least ON_TOPIC_LEAD of it: returns that unit (the best such),
 * else lead. Reads only units[].hit/score/gmask/picked, on_topic and head. */
size_t toro_ext_prefer_on_topic(const sel_t *s, size_t lead);
/* Why: two picked sentences of one paragraph with at most one sentence
 * between them read as one passage: the sentence between joins, the later
 * block merges into the earlier and later blocks move down one (nblocks
 * too), which frees a point. Returns whether it joined a pair (call again
 * until false). Reads only units[].hit/para/kind/picked. */
bool toro_ext_join_neighbors(sel_t *s);

#endif
