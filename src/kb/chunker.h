/* chunker.h: turns one source document (Markdown, plain text or HTML) into
 * chunks along headings and paragraphs, each of bounded size with overlap and
 * carrying its section path and byte offsets in the source. It reads YAML-like
 * front matter (doc_id, title, lang). It does not analyze or index text. */
#ifndef TORO_KB_CHUNKER_H
#define TORO_KB_CHUNKER_H

#include <stddef.h>

typedef enum { TORO_FMT_MD = 0, TORO_FMT_TXT = 1, TORO_FMT_HTML = 2 } toro_doc_format_t;

typedef struct toro_chunk_params {
    size_t max_chars;     /* a chunk's text is at most this long (unless one sentence is longer) */
    size_t overlap_chars; /* trailing blocks of a chunk up to this size start the next one */
} toro_chunk_params_t;

#define TORO_CHUNK_PARAMS_DEFAULT {900, 200}

typedef struct toro_chunk {
    char *section; /* "Heading > Subheading", "" at top level */
    char *text;    /* markup stripped; blocks joined by '\n', list items start with "- " */
    size_t start;  /* byte offset in the source of the first character used */
    size_t end;    /* byte offset just past the last character used */
} toro_chunk_t;

typedef struct toro_doc {
    char *doc_id;         /* front matter doc_id, else the default given */
    char *title;          /* front matter title, else first H1 / <title>, else doc_id */
    char *lang;           /* front matter lang ("pt"/"en"), else detected */
    toro_chunk_t *chunks; /* in source order */
    size_t n_chunks;
} toro_doc_t;

/* Why: the one place that knows document formats. doc_id_default is used when
 * the front matter has none. params NULL = TORO_CHUNK_PARAMS_DEFAULT. On 0,
 * *out is caller-cleared (toro_doc_clear); on failure (TORO_ENOMEM) *out is
 * already cleared (zeroed, nothing to free). */
int toro_chunk_document(const char *doc_id_default, const char *src, size_t len, toro_doc_format_t fmt,
                        const toro_chunk_params_t *params, toro_doc_t *out);
void toro_doc_clear(toro_doc_t *d);

/* Why: `kb build` picks the parser by extension (.md .markdown .txt .html .htm,
 * any case); returns -1 for files it should skip. */
int toro_doc_format_from_path(const char *path);

/* Why: the answerer splits chunk text into sentences and list items with the
 * same rules the chunker uses to split long paragraphs. Returns the end of the
 * sentence starting at pos (exclusive, includes the terminator). */
size_t toro_sentence_end(const char *s, size_t len, size_t pos);

#endif
