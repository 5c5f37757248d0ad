/* analyzer.h: text analysis shared by indexing, search and the answerer:
 * Unicode normalization (NFKC), case and accent folding, tokenization that
 * keeps numbers and financial tokens intact ("R$ 250.000" -> "250000",
 * "22,5%", "ipca+", "d+0"), stop words and Snowball stemming for Portuguese
 * and English. It does not know about chunks, files or the index. */
#ifndef TORO_KB_ANALYZER_H
#define TORO_KB_ANALYZER_H

#include <stdbool.h>
#include <stddef.h>

/* Part of every snapshot's version id: bump when analysis output changes. */
#define TORO_ANALYZER_VERSION "toro-analyzer/2"

/* Longest token kept, in bytes; longer runs are dropped. */
#define TORO_TOKEN_MAX 64

typedef struct toro_analyzer toro_analyzer_t;

/* Why: one analyzer per language and per thread (Snowball stemmers are not
 * thread-safe). lang is "pt" or "en". cache=true keeps a stem cache (4 MB),
 * worth it for builds, not for one query. Returns 0 or TORO_EINVAL/ENOMEM. */
int toro_analyzer_new(const char *lang, bool cache, toro_analyzer_t **out);
void toro_analyzer_free(toro_analyzer_t *a);
const char *toro_analyzer_lang(const toro_analyzer_t *a);

/* Token kinds from the tokenizer: words are stemmed, specials never are. */
enum { TORO_TOK_WORD = 0, TORO_TOK_SPECIAL = 1 };

/* Called once per token; tok is NUL-terminated and borrowed for the call.
 * A non-zero return stops the walk and is returned by the walker. */
typedef int (*toro_token_cb)(void *ud, const char *tok, size_t len, int kind);

/* Why: case/accent folding used everywhere text is compared (tokens, key
 * facts, near-duplicate checks). NFKC + casefold + strip marks; invalid UTF-8
 * bytes become spaces. Returns a new string (caller frees), NULL on ENOMEM. */
char *toro_fold(const char *s, size_t len, size_t *outlen);

/* Why: the raw token stream of folded text, before stop words and stems;
 * query analysis stems the same tokens once per snapshot language. */
int toro_tokenize(const char *folded, size_t len, toro_token_cb cb, void *ud);

/* Why: stop words are per language; lang "pt" or "en", word folded. */
bool toro_is_stopword(const char *lang, const char *word, size_t len);

/* Why: questions are written in chat spelling ("pq", "hj", "qnto", "vc");
 * the query side drops these fillers besides the stop words of both
 * languages (documents are not analyzed with them). word folded. */
bool toro_is_query_filler(const char *word, size_t len);

/* Why: typo-tolerant matching of query words the index does not know:
 * an edit distance between folded words (or stems) where letters that sound
 * alike (s/c/z/x, i/e, o/u) and doubled letters ("ss") cost half an edit.
 * Returns the distance, or a value > max as soon as it exceeds max (and for
 * words longer than 32 bytes). */
double toro_typo_distance(const char *a, size_t na, const char *b, size_t nb, double max);

/* Why: the terms a text contributes to the index (or a query): fold,
 * tokenize, drop stop words, stem words. */
int toro_analyze(toro_analyzer_t *a, const char *text, size_t len, toro_token_cb cb, void *ud);

/* Why: stems one folded word token; result borrowed until the next call on a
 * (or a copy in out, at most TORO_TOKEN_MAX+1 bytes). Returns its length. */
size_t toro_analyzer_stem(toro_analyzer_t *a, const char *word, size_t len, char out[TORO_TOKEN_MAX + 1]);

/* Why: language detection from stop-word counts; returns "pt" or "en"
 * (static string), "pt" when undecided. */
const char *toro_lang_detect(const char *text, size_t len);

#endif
