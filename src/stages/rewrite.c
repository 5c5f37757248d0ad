/* rewrite.c: the rule-based follow-up rewrite (see rewrite.h). Words are
 * runs of letters, digits and + % (and inner dashes), compared folded
 * (kb/analyzer.h); the original spelling is kept for the output and for
 * telling acronyms ("LCA", "FIIs") and names apart. */
#include "stages/rewrite.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/strbuf.h"
#include "kb/analyzer.h"

#define MAX_WORDS 96
#define WORD_BYTES 48

typedef enum { W_CONTENT, W_STOP, W_QWORD, W_ANAPHOR } word_kind_t;

typedef struct word {
    const char *s;          /* in the original text (borrowed) */
    size_t len;
    char fold[WORD_BYTES];  /* folded form ("" when too long) */
    word_kind_t kind;
    bool entity;            /* an acronym, or capitalized past the first word */
    bool acronym;
} word_t;

typedef struct words {
    word_t w[MAX_WORDS];
    size_t n;
    bool question_mark;     /* the text ends with '?' */
} words_t;

static bool in_list(const char *const *list, const char *w)
{
    for (; *list; list++)
        if (strcmp(*list, w) == 0)
            return true;
    return false;
}

/* Question words and words that make a clause of their own (a new predicate). */
static const char *const QWORDS[] = {"que", "qual", "quais", "quanto", "quanta", "quantos", "quantas", "como",
                                     "quando", "onde", "porque", "quem", "se", "posso", "devo", "pode", "vale",
                                     "existe", "what", "which", "how", "when", "where", "why", "who", "whom",
                                     "whose", "is", "are", "do", "does", "did", "can", "could", "should", "will",
                                     "would", "if", "much", "many", NULL};
/* Pronouns that point back at the previous subject. */
static const char *const ANAPHORS[] = {"ele", "ela", "eles", "elas", "dele", "dela", "deles", "delas", "nele",
                                       "nela", "neles", "nelas", "isso", "disso", "nisso", "isto", "disto", "esse",
                                       "essa", "esses", "essas", "desse", "dessa", "desses", "dessas", "nesse",
                                       "nessa", "it", "its", "they", "them", "their", "this", "these", "those",
                                       NULL};
/* Continuation words that open a follow-up ("e" only as written, not "é"). */
static const char *const MARKERS[] = {"e", "and", "also", "tambem", "mas", "but", "entao", "then", "ou", "or",
                                      "plus", NULL};
/* Articles and prepositions between a continuation word and its subject. */
static const char *const LEADS[] = {"a", "o", "as", "os", "um", "uma", "the", "for", "about", "of", "de", "do",
                                    "da", "dos", "das", "no", "na", "nos", "nas", "com", "para", "pra", "em",
                                    "sobre", "on", "in", "with", "ao", "aos", "caso", "case", NULL};

static bool is_word_byte(const char *p, const char *end)
{
    unsigned char c = (unsigned char)*p;
    if (c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' ||
        c == '%')
        return true;
    return c == '-' && p + 1 < end && ((unsigned char)p[1] >= 0x80 || (p[1] >= 'a' && p[1] <= 'z') ||
                                       (p[1] >= 'A' && p[1] <= 'Z') || (p[1] >= '0' && p[1] <= '9'));
}

/* Two or more capitals, all letters capitals but a plural 's' ("LCA", "FIIs", "IPCA+"). */
static bool is_acronym(const char *s, size_t len)
{
    size_t caps = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            caps++;
        else if (c >= 'a' && c <= 'z' && !(c == 's' && i == len - 1 && caps >= 2))
            return false;
        else if ((unsigned char)c >= 0x80)
            return false;
    }
    return caps >= 2 && len <= 12;
}

static word_kind_t classify(const char *fold)
{
    if (in_list(ANAPHORS, fold))
        return W_ANAPHOR;
    if (in_list(QWORDS, fold))
        return W_QWORD;
    size_t n = strlen(fold);
    if (!*fold || toro_is_stopword("pt", fold, n) || toro_is_stopword("en", fold, n) || toro_is_query_filler(fold, n))
        return W_STOP;
    return W_CONTENT;
}

/* Splits text into words (at most MAX_WORDS). 0 or TORO_ENOMEM. */
static int split(const char *text, words_t *ws)
{
    const char *p = text, *end = text + strlen(text);
    memset(ws, 0, sizeof *ws);
    while (p < end && ws->n < MAX_WORDS) {
        while (p < end && !is_word_byte(p, end))
            p++;
        const char *start = p;
        while (p < end && is_word_byte(p, end))
            p++;
        if (p == start)
            break;
        word_t *w = &ws->w[ws->n];
        w->s = start;
        w->len = (size_t)(p - start);
        size_t flen = 0;
        char *f = toro_fold(start, w->len, &flen);
        if (!f)
            return TORO_ENOMEM;
        if (flen < WORD_BYTES)
            memcpy(w->fold, f, flen + 1);
        free(f);
        w->kind = classify(w->fold);
        w->acronym = is_acronym(start, w->len);
        w->entity = w->kind == W_CONTENT && (w->acronym || (ws->n > 0 && *start >= 'A' && *start <= 'Z'));
        ws->n++;
    }
    const char *q = end;
    while (q > text && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\n'))
        q--;
    ws->question_mark = q > text && q[-1] == '?';
    return 0;
}

/* How many leading words are continuation: "e", "and", "what about",
 * "how about", "e quanto a", then articles and prepositions. */
static size_t lead_words(const words_t *ws)
{
    size_t i = 0;
    const word_t *w = ws->w;
    if (ws->n >= 1 && in_list(MARKERS, w[0].fold) && !(w[0].len == 2 && strcmp(w[0].fold, "e") == 0))
        i = 1; /* "é" folds to "e" but is two bytes: a verb, not "and" */
    if (i + 1 < ws->n && (strcmp(w[i].fold, "what") == 0 || strcmp(w[i].fold, "how") == 0) &&
        strcmp(w[i + 1].fold, "about") == 0)
        i += 2; /* "what about", "and how about" */
    if (i == 0)
        return 0;
    if (i + 1 < ws->n && strcmp(w[i].fold, "quanto") == 0 && in_list(LEADS, w[i + 1].fold))
        i++; /* "e quanto à LCA?" */
    while (i < ws->n && in_list(LEADS, w[i].fold))
        i++;
    return i;
}

static size_t count_kind(const words_t *ws, size_t from, word_kind_t kind)
{
    size_t n = 0;
    for (size_t i = from; i < ws->n; i++)
        n += ws->w[i].kind == kind;
    return n;
}

static bool followup_words(const words_t *ws)
{
    if (ws->n == 0 || ws->n >= MAX_WORDS)
        return false;
    size_t content = count_kind(ws, 0, W_CONTENT);
    if (lead_words(ws) > 0)
        return content > 0 || count_kind(ws, 0, W_QWORD) > 0;
    if (count_kind(ws, 0, W_ANAPHOR) > 0 && content <= 4)
        return true;
    return count_kind(ws, 0, W_QWORD) == 0 && content >= 1 && content <= 3;
}

bool toro_rewrite_is_followup(const char *question)
{
    words_t ws;
    return question && split(question, &ws) == 0 && followup_words(&ws);
}

/* The subject of a previous question: its acronyms, else the content words
 * of its trailing noun phrase. Marks subj[i]; returns how many. */
static size_t find_subject(const words_t *ws, bool subj[MAX_WORDS])
{
    size_t n = 0;
    memset(subj, 0, MAX_WORDS * sizeof subj[0]);
    for (size_t i = 0; i < ws->n; i++)
        if (ws->w[i].acronym && ws->w[i].kind == W_CONTENT)
            subj[i] = true, n++;
    for (size_t i = ws->n; n == 0 && i > 0; i--) {
        const word_t *w = &ws->w[i - 1];
        if (w->kind == W_CONTENT)
            subj[i - 1] = true;
        else if (i < ws->n && subj[i])
            break;
    }
    for (size_t i = 0; i < ws->n; i++)
        n += subj[i] && !ws->w[i].acronym;
    return n;
}

static void add_word(toro_strbuf_t *b, const word_t *w)
{
    if (b->n > 0)
        toro_strbuf_add(b, " ", 1);
    toro_strbuf_add(b, w->s, w->len);
}

static bool has_fold(const words_t *ws, size_t from, const char *fold)
{
    for (size_t i = from; i < ws->n; i++)
        if (*fold && strcmp(ws->w[i].fold, fold) == 0)
            return true;
    return false;
}

/* A new subject: prev with its subject replaced by q's words from `from`. */
static void replace_subject(toro_strbuf_t *b, const words_t *q, size_t from, const words_t *prev,
                            const bool subj[MAX_WORDS])
{
    bool done = false;
    for (size_t i = 0; i < prev->n; i++) {
        if (!subj[i]) {
            add_word(b, &prev->w[i]);
        } else if (!done) {
            for (size_t j = from; j < q->n; j++)
                if (q->w[j].kind != W_ANAPHOR)
                    add_word(b, &q->w[j]);
            done = true;
        }
    }
    if (prev->question_mark || q->question_mark)
        toro_strbuf_add(b, "?", 1);
}

/* A new predicate: q as written with prev's subject in place of its first
 * pronoun (other pronouns dropped), or after it when it has none; words of
 * the subject q already names are not repeated. */
static void append_subject(toro_strbuf_t *b, const words_t *q, const words_t *prev, const bool subj[MAX_WORDS])
{
    bool placed = false;
    for (size_t j = 0; j <= q->n; j++) {
        bool anaphor = j < q->n && q->w[j].kind == W_ANAPHOR;
        if (!placed && (anaphor || j == q->n)) {
            for (size_t i = 0; i < prev->n; i++)
                if (subj[i] && !has_fold(q, 0, prev->w[i].fold))
                    add_word(b, &prev->w[i]);
            placed = true;
        }
        if (j < q->n && !anaphor)
            add_word(b, &q->w[j]);
    }
    if (q->question_mark)
        toro_strbuf_add(b, "?", 1);
}

/* Prepositions a follow-up may repeat from the previous question ("E sobre FIIs?"). */
static const char *const PREPS[] = {"de", "do", "da", "dos", "das", "sobre", "para", "pra", "com", "em", "no", "na",
                                    "nos", "nas", "ao", "aos", "for", "about", "of", "on", "in", "with", NULL};

/* A follow-up that repeats a preposition of prev replaces what follows it
 * there ("Qual o IR sobre ações?" + "E sobre FIIs?": "ações"). Marks alt;
 * false when q repeats none or nothing follows it. */
static bool parallel_subject(const words_t *q, size_t from, const words_t *prev, bool alt[MAX_WORDS])
{
    const char *prep = NULL;
    for (size_t j = 0; j < from; j++)
        if (in_list(PREPS, q->w[j].fold))
            prep = q->w[j].fold;
    size_t k = prev->n;
    for (size_t i = 0; prep && i < prev->n; i++)
        if (strcmp(prev->w[i].fold, prep) == 0)
            k = i;
    memset(alt, 0, MAX_WORDS * sizeof alt[0]);
    size_t i = k + 1, n = 0;
    while (i < prev->n && prev->w[i].kind == W_STOP && in_list(LEADS, prev->w[i].fold))
        i++; /* articles */
    for (; i < prev->n && prev->w[i].kind == W_CONTENT; i++, n++)
        alt[i] = true;
    return n > 0;
}

/* The rewrite of q against prev (which has a subject); *out NULL when it
 * would be q itself. */
static int rewrite_with(const words_t *q, const words_t *prev, const bool subj[MAX_WORDS], const char *question,
                        char **out)
{
    toro_strbuf_t b = {.max = 8192};
    bool alt[MAX_WORDS];
    size_t from = lead_words(q);
    bool entity = false;
    for (size_t j = from; j < q->n; j++)
        entity |= q->w[j].entity;
    /* a pronoun points back at the previous subject: never a new one */
    if (count_kind(q, from, W_QWORD) == 0 && count_kind(q, from, W_ANAPHOR) == 0 && entity)
        replace_subject(&b, q, from, prev, parallel_subject(q, from, prev, alt) ? alt : subj);
    else
        append_subject(&b, q, prev, subj);
    if (b.err || strcmp(b.s, question) == 0) {
        free(b.s);
        return b.err == TORO_ENOMEM ? TORO_ENOMEM : 0;
    }
    *out = b.s;
    return 0;
}

int toro_rewrite_followup(const char *question, const char *const *previous, size_t n_previous, char **out)
{
    static _Thread_local words_t q, prev; /* ~20 KB each: kept off small worker stacks */
    bool subj[MAX_WORDS];
    int rc;
    assert(question && out && (previous || n_previous == 0));
    *out = NULL;
    if ((rc = split(question, &q)) != 0 || !followup_words(&q))
        return rc;
    for (size_t k = 0; k < n_previous; k++) {
        if (!previous[k])
            continue;
        if ((rc = split(previous[k], &prev)) != 0)
            return rc;
        if (find_subject(&prev, subj) > 0)
            return rewrite_with(&q, &prev, subj, question, out);
    }
    return 0;
}
