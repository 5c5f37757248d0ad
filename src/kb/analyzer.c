/* analyzer.c: folding, tokenization, stop words and stemming (see analyzer.h).
 * Documents and queries go through exactly the same code so that
 * "aplicação"/"aplicacao", "R$ 250.000"/"250000" and "22.5%"/"22,5%" meet in
 * the index. It does not allocate per token: tokens are built in a stack
 * buffer and handed to a callback. */
#include "kb/analyzer.h"

#include <assert.h>
#include <libstemmer.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"

#define CACHE_SLOTS 65536 /* direct-mapped stem cache, power of two */
#define CACHE_WORD 30     /* longest cached word/stem, bytes */

typedef struct cache_slot {
    unsigned char wlen;         /* 0 = empty */
    unsigned char slen;         /* stem length */
    char word[CACHE_WORD];      /* folded word (not NUL-terminated) */
    char stem[CACHE_WORD];      /* its stem */
} cache_slot_t;

struct toro_analyzer {
    char lang[4];               /* "pt" or "en" */
    struct sb_stemmer *stemmer; /* owned, not thread-safe */
    cache_slot_t *cache;        /* NULL when caching is off */
};

/* Folded stop words. Question words are included: they never carry the topic. */
static const char *const STOP_PT[] = {
    "a", "o", "os", "as", "um", "uma", "uns", "umas", "de", "do", "da", "dos", "das", "em", "no", "na",
    "nos", "nas", "num", "numa", "por", "pelo", "pela", "pelos", "pelas", "para", "pra", "com", "sem", "e",
    "ou", "que", "se", "ao", "aos", "e", "ser", "sao", "foi", "era", "sera", "como", "qual", "quais",
    "quanto", "quanta", "quantos", "quantas", "quando", "onde", "porque", "porquê", "isso", "isto",
    "esse", "essa", "este", "esta", "esses", "essas", "estes", "estas", "aquele", "aquela", "ele",
    "ela", "eles", "elas", "eu", "voce", "voces", "meu", "minha", "meus", "minhas", "seu", "sua", "seus",
    "suas", "nao", "mais", "muito", "muita", "tem", "ter", "ha", "sobre", "entre", "ja", "tambem", "so",
    "mas", "lhe", "me", "te", "nosso", "nossa", "existe", "sim", "posso", "devo", "pode", "podem", "estao",
    "está", "esta", "ate", "apos", "todo", "toda", "todos", "todas", "cada", "qualquer", "outro", "outra",
    "mesmo", "mesma", "ainda", "entao", "assim", "seja", "sejam", "sendo", "estar", "fica", "ficar",
    "algum", "alguma", "alguns", "algumas", "quem", "dele", "dela", "nele", "nela", "diz", "significa",
    "funciona", "vale", "faz", "fazer", "hoje", "tenho", "temos", "quero", "queria", "preciso", "deu",
    "dela", "dia", "nesse", "nessa", "neste", "nesta", NULL};
static const char *const STOP_EN[] = {
    "a", "an", "the", "of", "to", "in", "on", "for", "and", "or", "is", "are", "was", "were", "be",
    "been", "being", "it", "its", "this", "that", "these", "those", "with", "as", "at", "by", "from",
    "what", "which", "who", "whom", "how", "when", "where", "why", "do", "does", "did", "can", "could",
    "should", "would", "will", "shall", "may", "might", "must", "i", "you", "he", "she", "we", "they",
    "my", "your", "our", "their", "his", "her", "me", "us", "them", "about", "there", "here", "if",
    "not", "no", "so", "than", "then", "into", "any", "some", "much", "many", "have", "has", "had",
    "also", "but", "only", "more", "most", "other", "such", "each", "all", "both", "very", "just",
    "s", "t", "up", "out", "over", "under", "yes", "mean", "means", "work", "works", "get", "does",
    "today", NULL};

/* Chat spellings and fillers of questions ("pq", "hj", "qnto", "vc", "oq",
 * "wat"): they never carry the topic, and in no document, so as query words
 * they would only look like unknown words. Query-side only (not indexed
 * text), so they need no rebuild. */
static const char *const FILLERS[] = {
    "q", "pq", "pk", "hj", "oq", "qnto", "qnta", "qntos", "qntas", "qto", "qta", "qts", "qnts", "qnd", "qdo",
    "qndo", "vc", "vcs", "tb", "tbm", "ta", "to", "td", "tds", "msm", "mt", "mto", "mta", "mtos", "mtas", "eh",
    "tah", "ne", "neh", "kd", "cade", "blz", "vlw", "obg", "pfv", "pf", "sou", "agora", "aqui", "ai", "la",
    "coisa", "coisas", "gente", "alguem", "wat", "whats", "im", "u", "ur", "pls", "plz", "thx", "hey",
    "hi", "hello", "please", "thanks", "ok", "okay", NULL};

bool toro_is_query_filler(const char *word, size_t len)
{
    for (const char *const *p = FILLERS; *p; p++)
        if (strlen(*p) == len && memcmp(*p, word, len) == 0)
            return true;
    return false;
}

static const char *const *stoplist(const char *lang)
{
    return strcmp(lang, "en") == 0 ? STOP_EN : STOP_PT;
}

/* The stop words of both languages in one open-addressing set (built once,
 * read-only after): a build asks for every token, a list scan was a fifth of
 * its time. Each slot remembers which lists hold the word. */
#define STOP_SLOTS 1024 /* power of two, more than twice the words */
enum { IN_PT = 1, IN_EN = 2 };
static struct {
    const char *w;
    unsigned char len, in;
} stopset[STOP_SLOTS];
static pthread_once_t stop_once = PTHREAD_ONCE_INIT;

static uint32_t fnv1a(const char *s, size_t n);

static void stop_add(const char *const *list, unsigned char bit)
{
    for (const char *const *p = list; *p; p++) {
        size_t n = strlen(*p);
        uint32_t h = fnv1a(*p, n) & (STOP_SLOTS - 1);
        while (stopset[h].w && !(stopset[h].len == n && memcmp(stopset[h].w, *p, n) == 0))
            h = (h + 1) & (STOP_SLOTS - 1);
        stopset[h].w = *p;
        stopset[h].len = (unsigned char)n;
        stopset[h].in |= bit;
    }
}

static void stop_init(void)
{
    stop_add(STOP_PT, IN_PT);
    stop_add(STOP_EN, IN_EN);
}

bool toro_is_stopword(const char *lang, const char *word, size_t len)
{
    pthread_once(&stop_once, stop_init);
    unsigned char bit = stoplist(lang) == STOP_EN ? IN_EN : IN_PT;
    if (len == 0 || len > 32)
        return false;
    for (uint32_t h = fnv1a(word, len) & (STOP_SLOTS - 1); stopset[h].w; h = (h + 1) & (STOP_SLOTS - 1))
        if (stopset[h].len == len && memcmp(stopset[h].w, word, len) == 0)
            return (stopset[h].in & bit) != 0;
    return false;
}

int toro_analyzer_new(const char *lang, bool cache, toro_analyzer_t **out)
{
    *out = NULL;
    const char *algo;
    if (strcmp(lang, "pt") == 0)
        algo = "portuguese";
    else if (strcmp(lang, "en") == 0)
        algo = "english";
    else
        return TORO_EINVAL;
    toro_analyzer_t *a = calloc(1, sizeof(*a));
    if (!a)
        return TORO_ENOMEM;
    memcpy(a->lang, lang, 3);
    a->stemmer = sb_stemmer_new(algo, "UTF_8");
    if (cache)
        a->cache = calloc(CACHE_SLOTS, sizeof(cache_slot_t));
    if (!a->stemmer || (cache && !a->cache)) {
        toro_analyzer_free(a);
        return TORO_ENOMEM;
    }
    *out = a;
    return 0;
}

void toro_analyzer_free(toro_analyzer_t *a)
{
    if (!a)
        return;
    if (a->stemmer)
        sb_stemmer_delete(a->stemmer);
    free(a->cache);
    free(a);
}

const char *toro_analyzer_lang(const toro_analyzer_t *a)
{
    return a->lang;
}

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int is_vowel(char c)
{
    return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' || c == 'y';
}

/* Plural folding the Snowball stemmers miss on folded words: an acronym's
 * "s" ("fiis" "cdbs" "etfs" "lcis": three or more letters with at most one
 * vowel, or ending "ii", before the "s") and, in Portuguese, "-oes" -> "-ao"
 * ("acoes" "opcoes": Snowball sees no nasal vowel once accents are folded,
 * so "acao" and "acoes" would get different stems). Writes the word to use
 * into buf (TORO_TOKEN_MAX + 1 bytes) and returns its length. */
static size_t fold_plural(const char *lang, const char *word, size_t len, char *buf)
{
    assert(len <= TORO_TOKEN_MAX);
    memcpy(buf, word, len);
    buf[len] = 0;
    if (len >= 4 && len <= 7 && word[len - 1] == 's') {
        size_t vowels = 0;
        for (size_t i = 0; i + 1 < len; i++)
            vowels += (size_t)is_vowel(word[i]);
        int acronym = vowels <= 1 || (word[len - 2] == 'i' && word[len - 3] == 'i');
        for (size_t i = 0; i + 1 < len && acronym; i++)
            acronym = word[i] >= 'a' && word[i] <= 'z';
        if (acronym) {
            buf[--len] = 0;
            return len;
        }
    }
    if (strcmp(lang, "pt") == 0 && len >= 5 && memcmp(word + len - 3, "oes", 3) == 0) {
        memcpy(buf + len - 3, "ao", 3);
        return len - 1;
    }
    return len;
}

size_t toro_analyzer_stem(toro_analyzer_t *a, const char *word, size_t len, char out[TORO_TOKEN_MAX + 1])
{
    cache_slot_t *slot = NULL;
    if (a->cache && len < CACHE_WORD) {
        slot = &a->cache[fnv1a(word, len) & (CACHE_SLOTS - 1)];
        if (slot->wlen == len && memcmp(slot->word, word, len) == 0) {
            memcpy(out, slot->stem, slot->slen);
            out[slot->slen] = 0;
            return slot->slen;
        }
    }
    char folded[TORO_TOKEN_MAX + 1];
    size_t flen = len <= TORO_TOKEN_MAX ? fold_plural(a->lang, word, len, folded) : 0;
    const char *w = flen ? folded : word;
    if (!flen)
        flen = len;
    const sb_symbol *s = sb_stemmer_stem(a->stemmer, (const sb_symbol *)w, (int)flen);
    size_t n = s ? (size_t)sb_stemmer_length(a->stemmer) : 0;
    if (!s || n == 0 || n > TORO_TOKEN_MAX) { /* stemmer failure: keep the word */
        s = (const sb_symbol *)w;
        n = flen;
    }
    memcpy(out, s, n);
    out[n] = 0;
    if (slot && n < CACHE_WORD) {
        slot->wlen = (unsigned char)len;
        slot->slen = (unsigned char)n;
        memcpy(slot->word, word, len);
        memcpy(slot->stem, out, n);
    }
    return n;
}

/* ---- typo distance ------------------------------------------------------ */

/* Letters a typist swaps for one another by sound (s/c/z/x/ç, i/e/y, o/u,
 * g/j, the "ss" of "isensao"/"isenção"): half an edit. */
static int sound_alike(char a, char b)
{
    static const char *const groups[] = {"sczx", "iey", "ou", "gj", NULL};
    for (const char *const *g = groups; *g; g++)
        if (strchr(*g, a) && strchr(*g, b))
            return 1;
    return 0;
}

/* Cost (in half edits) of inserting/deleting s[i]: half when it doubles a neighbour. */
static int indel_cost(const char *s, size_t n, size_t i)
{
    return (i > 0 && s[i - 1] == s[i]) || (i + 1 < n && s[i + 1] == s[i]) ? 1 : 2;
}

double toro_typo_distance(const char *a, size_t na, const char *b, size_t nb, double max)
{
    enum { W = 33 };
    if (na >= W || nb >= W)
        return max + 1;
    int d[W][W]; /* in half edits: optimal string alignment distance */
    int lim = (int)(2 * max + 0.5);
    for (size_t i = 0; i <= na; i++)
        d[i][0] = i ? d[i - 1][0] + indel_cost(a, na, i - 1) : 0;
    for (size_t j = 1; j <= nb; j++)
        d[0][j] = d[0][j - 1] + indel_cost(b, nb, j - 1);
    for (size_t i = 1; i <= na; i++) {
        int rowmin = d[i][0];
        for (size_t j = 1; j <= nb; j++) {
            int sub = a[i - 1] == b[j - 1] ? 0 : sound_alike(a[i - 1], b[j - 1]) ? 1 : 2;
            int v = d[i - 1][j - 1] + sub;
            int del = d[i - 1][j] + indel_cost(a, na, i - 1), ins = d[i][j - 1] + indel_cost(b, nb, j - 1);
            v = del < v ? del : v;
            v = ins < v ? ins : v;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 2 < v)
                v = d[i - 2][j - 2] + 2; /* transposition */
            d[i][j] = v;
            rowmin = v < rowmin ? v : rowmin;
        }
        if (rowmin > lim) /* every path is already too far */
            return max + 1;
    }
    return d[na][nb] / 2.0;
}

/* ---- folding ---------------------------------------------------------- */

/* NFKC + casefold + strip marks of s[0..len) by utf8proc, after replacing
 * invalid UTF-8 and NULs by spaces (so utf8proc never fails). The reference
 * fold: toro_fold gives the same bytes, faster. Caller frees. */
static char *fold_utf8proc(const char *s, size_t len, size_t *outlen)
{
    char *clean = malloc(len + 1);
    if (!clean)
        return NULL;
    size_t ci = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0 || cp == 0) {
            clean[ci++] = ' ';
            i++;
            continue;
        }
        memcpy(clean + ci, s + i, (size_t)n);
        ci += (size_t)n;
        i += (size_t)n;
    }
    clean[ci] = 0;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)clean, (utf8proc_ssize_t)ci, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD |
                                          UTF8PROC_STRIPMARK);
    free(clean);
    if (n < 0)
        return NULL;
    *outlen = (size_t)n;
    return (char *)dst;
}

/* The fold of each two-byte code point (U+0080..U+07FF) on its own, built
 * once: accented Latin letters are most of the non-ASCII text of a build.
 * With marks stripped before composition nothing in this range composes
 * with a neighbour, so folding a run of them code point by code point gives
 * utf8proc's bytes (tests/unit/kb/test_kb_analyzer.c checks it against
 * fold_utf8proc's algorithm). len 255 = not in the table. */
typedef struct fold2 {
    unsigned char len;
    char s[15];
} fold2_t;
static fold2_t fold2[0x800];
static pthread_once_t fold2_once = PTHREAD_ONCE_INIT;

static void fold2_init(void)
{
    for (unsigned cp = 0x80; cp < 0x800; cp++) {
        char in[2] = {(char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F))};
        size_t n = 0;
        char *r = fold_utf8proc(in, 2, &n);
        fold2[cp].len = 255;
        if (r && n <= sizeof(fold2[cp].s)) {
            memcpy(fold2[cp].s, r, n);
            fold2[cp].len = (unsigned char)n;
        }
        free(r);
    }
}

/* A growable output of toro_fold. */
typedef struct fbuf {
    char *s;
    size_t n, cap;
} fbuf_t;

static int fb_reserve(fbuf_t *b, size_t more)
{
    if (b->n + more + 1 <= b->cap)
        return 0;
    size_t nc = b->cap * 2;
    while (nc < b->n + more + 1)
        nc *= 2;
    char *ns = realloc(b->s, nc);
    if (!ns)
        return TORO_ENOMEM;
    b->s = ns;
    b->cap = nc;
    return 0;
}

/* Folds the non-ASCII run s[0..len): by the table when every code point is
 * a valid two-byte sequence in it, else the whole run by utf8proc. */
static int fold_run(fbuf_t *b, const unsigned char *s, size_t len)
{
    int table = 1;
    for (size_t i = 0; i < len && table; i += 2)
        table = i + 1 < len && s[i] >= 0xC2 && s[i] <= 0xDF && (s[i + 1] & 0xC0) == 0x80 &&
                fold2[((s[i] & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu)].len != 255;
    if (table) {
        for (size_t i = 0; i < len; i += 2) {
            const fold2_t *f = &fold2[((s[i] & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu)];
            if (fb_reserve(b, f->len))
                return TORO_ENOMEM;
            memcpy(b->s + b->n, f->s, f->len);
            b->n += f->len;
        }
        return 0;
    }
    size_t n = 0;
    char *r = fold_utf8proc((const char *)s, len, &n);
    if (!r || fb_reserve(b, n)) {
        free(r);
        return TORO_ENOMEM;
    }
    memcpy(b->s + b->n, r, n);
    b->n += n;
    free(r);
    return 0;
}

char *toro_fold(const char *s, size_t len, size_t *outlen)
{
    pthread_once(&fold2_once, fold2_init);
    fbuf_t b = {malloc(len + 16), 0, len + 16};
    if (!b.s)
        return NULL;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (u[i] < 0x80) { /* ASCII folds alone: NFKC keeps it, casefold lowers A-Z */
            if (fb_reserve(&b, 1)) {
                free(b.s);
                return NULL;
            }
            unsigned char c = u[i++];
            b.s[b.n++] = c == 0 ? ' ' : (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c;
            continue;
        }
        size_t j = i;
        while (j < len && u[j] >= 0x80)
            j++;
        if (fold_run(&b, u + i, j - i)) {
            free(b.s);
            return NULL;
        }
        i = j;
    }
    b.s[b.n] = 0;
    if (outlen)
        *outlen = b.n;
    return b.s;
}

/* ---- tokenizer -------------------------------------------------------- */

/* Letter or digit at s[i]; *adv receives the byte length of the code point. */
static int is_wordchar(const char *s, size_t len, size_t i, size_t *adv)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
        *adv = 1;
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z');
    }
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
    if (n <= 0) {
        *adv = 1;
        return 0;
    }
    *adv = (size_t)n;
    utf8proc_category_t cat = utf8proc_category(cp);
    return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
           (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

static int isdig(char c)
{
    return c >= '0' && c <= '9';
}

/* Word after position i (skipping one space) equals w? Returns its end or 0. */
static size_t next_word_is(const char *s, size_t len, size_t i, const char *w)
{
    if (i < len && s[i] == ' ')
        i++;
    size_t wl = strlen(w);
    if (i + wl > len || memcmp(s + i, w, wl) != 0)
        return 0;
    size_t adv;
    if (i + wl < len && is_wordchar(s, len, i + wl, &adv))
        return 0;
    return i + wl;
}

/* A number's digits split at its decimal mark (parts of scan_number). */
typedef struct numparts {
    char intpart[TORO_TOKEN_MAX], frac[TORO_TOKEN_MAX];
    size_t ni, nf;
} numparts_t;

/* Reads digits and '.'/',' groups from s[i]; fills p (integer digits,
 * fraction digits without trailing zeros) and returns the end position. The
 * decimal mark is the last separator when both kinds occur, or the only
 * separator unless exactly three digits follow it ("250.000"). */
static size_t scan_digits(const char *s, size_t len, size_t i, numparts_t *p)
{
    size_t start = i, end = i, lastsep_pos = 0;
    int ndot = 0, ncomma = 0;
    char lastsep = 0;
    while (end < len && isdig(s[end]))
        end++;
    while (end + 1 < len && (s[end] == '.' || s[end] == ',') && isdig(s[end + 1])) {
        if (s[end] == '.')
            ndot++;
        else
            ncomma++;
        lastsep = s[end];
        lastsep_pos = end;
        end++;
        while (end < len && isdig(s[end]))
            end++;
    }
    char dec = 0;
    if (ndot && ncomma)
        dec = lastsep;
    else if (ndot + ncomma == 1 && end - lastsep_pos - 1 != 3)
        dec = lastsep;
    p->ni = p->nf = 0;
    int in_frac = 0;
    for (size_t k = start; k < end; k++) {
        char c = s[k];
        if (c == '.' || c == ',') {
            if (c == dec && k == lastsep_pos)
                in_frac = 1;
            continue;
        }
        if (in_frac) {
            if (p->nf < sizeof(p->frac) - 1)
                p->frac[p->nf++] = c;
        } else if (p->ni < sizeof(p->intpart) - 12) {
            p->intpart[p->ni++] = c;
        }
    }
    while (p->nf > 0 && p->frac[p->nf - 1] == '0') /* 22,50 == 22,5 */
        p->nf--;
    return end;
}

/* Zeros of a multiplier written as a word after the number ("mil",
 * "milhões", "billion"); *end moves past it. 0 when there is none. */
static int multiplier_zeros(const char *s, size_t len, size_t *end)
{
    static const struct {
        const char *w;
        int zeros;
    } words[] = {{"mil", 3},     {"milhao", 6},  {"milhoes", 6}, {"million", 6},
                 {"bilhao", 9},  {"bilhoes", 9}, {"billion", 9}};
    for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
        size_t e2 = next_word_is(s, len, *end, words[k].w);
        if (e2) {
            *end = e2;
            return words[k].zeros;
        }
    }
    return 0;
}

/* Scans a number at s[i] (a digit) into out as canonical digits with ','
 * as the decimal mark, '%' kept and "mil"/"milhões"/"bilhões" expanded.
 * Returns the end position. */
static size_t scan_number(const char *s, size_t len, size_t i, char *out, size_t *olen)
{
    numparts_t p;
    size_t end = scan_digits(s, len, i, &p);
    int zeros = multiplier_zeros(s, len, &end);
    size_t fi = 0;
    while (zeros > 0) {
        p.intpart[p.ni++] = fi < p.nf ? p.frac[fi++] : '0';
        zeros--;
    }
    /* Drop leading zeros of the integer part ("05" == "5"), keep one. */
    size_t lz = 0;
    while (lz + 1 < p.ni && p.intpart[lz] == '0')
        lz++;
    size_t o = p.ni - lz;
    memcpy(out, p.intpart + lz, o);
    if (fi < p.nf) {
        out[o++] = ',';
        size_t k = p.nf - fi;
        if (k > 8)
            k = 8;
        memcpy(out + o, p.frac + fi, k);
        o += k;
    }
    if (end < len && s[end] == '%') {
        out[o++] = '%';
        end++;
    } else if (end + 1 < len && s[end] == ' ' && s[end + 1] == '%') {
        out[o++] = '%';
        end += 2;
    }
    out[o] = 0;
    *olen = o;
    return end;
}

int toro_tokenize(const char *s, size_t len, toro_token_cb cb, void *ud)
{
    char tok[TORO_TOKEN_MAX + 16];
    size_t i = 0;
    while (i < len) {
        size_t adv;
        if (isdig(s[i])) {
            size_t n;
            /* A number glued to letters ("b3", "2a") is a word; check below. */
            size_t j = i;
            while (j < len && isdig(s[j]))
                j++;
            if (j < len && is_wordchar(s, len, j, &adv)) {
                goto word;
            }
            i = scan_number(s, len, i, tok, &n);
            if (n > 0 && n <= TORO_TOKEN_MAX) {
                int rc = cb(ud, tok, n, TORO_TOK_SPECIAL);
                if (rc)
                    return rc;
            }
            continue;
        }
        if (!is_wordchar(s, len, i, &adv)) {
            i += adv;
            continue;
        }
    word:;
        size_t start = i;
        int has_digit = 0;
        while (i < len && is_wordchar(s, len, i, &adv)) {
            if (isdig(s[i]))
                has_digit = 1;
            i += adv;
        }
        size_t n = i - start;
        int special = has_digit;
        size_t extra = 0;
        /* "ipca+", "d+0", "d+30": a '+' glued to a word is part of it. */
        if (i < len && s[i] == '+') {
            size_t k = i + 1;
            while (k < len && isdig(s[k]))
                k++;
            if (k > i + 1 || k >= len || !is_wordchar(s, len, k, &adv)) {
                extra = k - i;
                special = 1;
            }
        }
        if (n + extra > TORO_TOKEN_MAX) {
            i += extra;
            continue;
        }
        memcpy(tok, s + start, n + extra);
        tok[n + extra] = 0;
        i += extra;
        if (n + extra < 2 && !special) /* single letters carry nothing */
            continue;
        int rc = cb(ud, tok, n + extra, special ? TORO_TOK_SPECIAL : TORO_TOK_WORD);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- analysis ----------------------------------------------------------- */

typedef struct analyze_ctx {
    toro_analyzer_t *a;
    toro_token_cb cb;
    void *ud;
} analyze_ctx_t;

static int analyze_tok(void *ud, const char *tok, size_t len, int kind)
{
    analyze_ctx_t *c = ud;
    if (kind == TORO_TOK_SPECIAL)
        return c->cb(c->ud, tok, len, kind);
    if (toro_is_stopword(c->a->lang, tok, len))
        return 0;
    char stem[TORO_TOKEN_MAX + 1];
    size_t n = toro_analyzer_stem(c->a, tok, len, stem);
    return c->cb(c->ud, stem, n, kind);
}

int toro_analyze(toro_analyzer_t *a, const char *text, size_t len, toro_token_cb cb, void *ud)
{
    size_t flen;
    char *f = toro_fold(text, len, &flen);
    if (!f)
        return TORO_ENOMEM;
    analyze_ctx_t c = {a, cb, ud};
    int rc = toro_tokenize(f, flen, analyze_tok, &c);
    free(f);
    return rc;
}

/* ---- language detection ------------------------------------------------- */

/* Words that are frequent in one language and rare in the other. */
static const char *const MARK_PT[] = {"o", "os", "de", "da", "do", "das", "dos", "em", "um", "uma", "que", "nao",
                                      "para", "com", "como", "qual", "quais", "quanto", "e", "sao", "voce", "posso",
                                      "ao", "na", "no", "pelo", "pela", "sobre", "mais", "seu", "sua", "rende",
                                      "investir", "tem", "ha", "quando", "onde", "devo", "imposto", NULL};
static const char *const MARK_EN[] = {"the", "of", "and", "is", "are", "what", "how", "which", "to", "in", "for",
                                      "with", "does", "do", "can", "i", "my", "it", "this", "that", "when", "where",
                                      "why", "who", "should", "an", "be", "much", "tax", "invest", "yield", "on",
                                      "you", "your", "there", NULL};

typedef struct detect_ctx {
    int pt, en;
    int count;
} detect_ctx_t;

static int in_list(const char *const *l, const char *w, size_t n)
{
    for (; *l; l++)
        if (strlen(*l) == n && memcmp(*l, w, n) == 0)
            return 1;
    return 0;
}

static int detect_tok(void *ud, const char *tok, size_t len, int kind)
{
    detect_ctx_t *d = ud;
    d->pt += in_list(MARK_PT, tok, len);
    d->en += in_list(MARK_EN, tok, len);
    return ++d->count >= 2000; /* enough evidence */
}

const char *toro_lang_detect(const char *text, size_t len)
{
    if (!text)
        return "pt";
    size_t flen;
    char *f = toro_fold(text, len, &flen);
    if (!f)
        return "pt";
    detect_ctx_t d = {0, 0, 0};
    /* Single letters are dropped by the tokenizer; count "e"/"o"/"a"/"i" here. */
    for (size_t i = 0; i < flen; i++) {
        int before = i == 0 || f[i - 1] == ' ';
        int after = i + 1 >= flen || f[i + 1] == ' ' || f[i + 1] == '?' || f[i + 1] == ',' || f[i + 1] == '.';
        if (before && after) {
            if (f[i] == 'e' || f[i] == 'o' || f[i] == 'a')
                d.pt++;
            else if (f[i] == 'i')
                d.en++;
        }
    }
    toro_tokenize(f, flen, detect_tok, &d);
    /* Non-ASCII letters in the original are a strong Portuguese hint. */
    for (size_t i = 0; i < len && i < 4096; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == 0xC3) {
            d.pt++;
            i++;
        }
    }
    free(f);
    return d.en > d.pt ? "en" : "pt";
}
