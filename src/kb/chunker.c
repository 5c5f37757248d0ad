/* chunker.c: document parsing and chunking (see chunker.h).
 *
 * Every format is reduced to a list of blocks (paragraphs, list items, table
 * rows) with a section path; each byte of a block's stripped text remembers
 * its source offset, so chunk offsets are exact whatever markup was removed.
 * Blocks are then packed into chunks that never cross a heading. */
#include "kb/chunker.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "kb/analyzer.h"

#define MAX_DEPTH 6
#define SECTION_MAX 512

/* A growable text whose every byte carries a source offset. */
typedef struct mtext {
    char *s;
    size_t *map;
    size_t n, cap;
} mtext_t;

/* Makes room for more bytes (and the NUL). */
static int mt_reserve(mtext_t *t, size_t more)
{
    if (t->n + more + 1 <= t->cap)
        return 0;
    size_t nc = t->cap ? t->cap * 2 : 256;
    while (nc < t->n + more + 1)
        nc *= 2;
    char *s = realloc(t->s, nc);
    if (!s)
        return TORO_ENOMEM;
    t->s = s;
    size_t *m = realloc(t->map, nc * sizeof(size_t));
    if (!m)
        return TORO_ENOMEM;
    t->map = m;
    t->cap = nc;
    return 0;
}

static int mt_push(mtext_t *t, char c, size_t off)
{
    if (mt_reserve(t, 1))
        return TORO_ENOMEM;
    t->s[t->n] = c;
    t->map[t->n] = off;
    t->n++;
    t->s[t->n] = 0;
    return 0;
}

static void mt_free(mtext_t *t)
{
    free(t->s);
    free(t->map);
    memset(t, 0, sizeof(*t));
}

typedef struct block {
    char *text;    /* stripped text */
    size_t *map;   /* source offset of each byte */
    size_t len;
    int section;   /* index into sections */
} block_t;

typedef struct parser {
    block_t *blocks;
    size_t nb, capb;
    char **sections;    /* distinct section paths in order */
    size_t ns, caps;
    char *heads[MAX_DEPTH]; /* current heading at each level */
    int cur_section;    /* index of the current path */
    char *title;        /* first H1 */
    int seen_h2;        /* a heading below H1 was seen (disclaimer detection) */
} parser_t;

static char *dupn(const char *s, size_t n)
{
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = 0;
    }
    return r;
}

static char *trim_dup(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n' || s[n - 1] == '#'))
        n--;
    while (n && s[n - 1] == ' ')
        n--;
    return dupn(s, n);
}

static int add_section(parser_t *p, const char *path)
{
    if (p->ns && strcmp(p->sections[p->ns - 1], path) == 0) {
        p->cur_section = (int)p->ns - 1;
        return 0;
    }
    if (p->ns == p->caps) {
        size_t nc = p->caps ? p->caps * 2 : 16;
        char **s = realloc(p->sections, nc * sizeof(char *));
        if (!s)
            return TORO_ENOMEM;
        p->sections = s;
        p->caps = nc;
    }
    p->sections[p->ns] = strdup(path);
    if (!p->sections[p->ns])
        return TORO_ENOMEM;
    p->cur_section = (int)p->ns++;
    return 0;
}

/* Level 1 is the document title; the path joins levels 2..6. */
static int set_heading(parser_t *p, int level, char *text)
{
    if (level == 1 && !p->title) {
        p->title = text;
        free(p->heads[0]);
        p->heads[0] = NULL;
    } else {
        free(p->heads[level - 1]);
        p->heads[level - 1] = text;
    }
    if (level >= 2)
        p->seen_h2 = 1;
    for (int l = level; l < MAX_DEPTH; l++) {
        free(p->heads[l]);
        p->heads[l] = NULL;
    }
    char path[SECTION_MAX];
    size_t o = 0;
    path[0] = 0;
    for (int l = 1; l < MAX_DEPTH; l++) {
        if (!p->heads[l] || !*p->heads[l])
            continue;
        size_t hl = strlen(p->heads[l]);
        if (o + hl + 4 >= sizeof(path))
            break;
        if (o) {
            memcpy(path + o, " > ", 3);
            o += 3;
        }
        memcpy(path + o, p->heads[l], hl);
        o += hl;
        path[o] = 0;
    }
    /* A second H1 (or an H1 after the title) is a section too. */
    if (level == 1 && p->heads[0]) {
        size_t hl = strlen(p->heads[0]);
        if (hl < sizeof(path)) {
            memcpy(path, p->heads[0], hl);
            path[hl] = 0;
        }
    }
    return add_section(p, path);
}

static int add_block(parser_t *p, mtext_t *t)
{
    /* Trim spaces at both ends, keeping the map aligned. */
    size_t a = 0, b = t->n;
    while (a < b && (t->s[a] == ' ' || t->s[a] == '\t'))
        a++;
    while (b > a && (t->s[b - 1] == ' ' || t->s[b - 1] == '\t'))
        b--;
    if (b - a == 0 || (b - a == 2 && t->s[a] == '-' && t->s[a + 1] == ' ')) {
        t->n = 0;
        return 0;
    }
    if (p->nb == p->capb) {
        size_t nc = p->capb ? p->capb * 2 : 32;
        block_t *nbk = realloc(p->blocks, nc * sizeof(block_t));
        if (!nbk)
            return TORO_ENOMEM;
        p->blocks = nbk;
        p->capb = nc;
    }
    block_t *bk = &p->blocks[p->nb];
    bk->len = b - a;
    bk->text = dupn(t->s + a, bk->len);
    bk->map = malloc(bk->len * sizeof(size_t));
    if (!bk->text || !bk->map) {
        free(bk->text);
        free(bk->map);
        return TORO_ENOMEM;
    }
    memcpy(bk->map, t->map + a, bk->len * sizeof(size_t));
    assert(p->cur_section >= 0 && (size_t)p->cur_section < p->ns);
    bk->section = p->cur_section;
    p->nb++;
    t->n = 0;
    return 0;
}

/* Appends Markdown inline text s[0..n) (source offset base) to t with
 * emphasis, code ticks and link targets removed. */
static int push_inline(mtext_t *t, const char *s, size_t n, size_t base, int markup)
{
    int rc = mt_reserve(t, n);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char c = s[i];
        if (c == '\r')
            continue;
        if (markup) {
            if (c == '*' || c == '`')
                continue;
            if (c == '_' && i + 1 < n && s[i + 1] == '_') {
                i++;
                continue;
            }
            if (c == '!' && i + 1 < n && s[i + 1] == '[')
                continue;
            if (c == '[') { /* [text](url): keep text, skip (url) */
                const char *close = memchr(s + i, ']', n - i);
                if (close && (size_t)(close - s) + 1 < n && close[1] == '(') {
                    const char *par = memchr(close, ')', n - (size_t)(close - s));
                    if (par) {
                        size_t tl = (size_t)(close - s) - i - 1;
                        rc = push_inline(t, s + i + 1, tl, base + i + 1, markup);
                        i = (size_t)(par - s);
                        continue;
                    }
                }
            }
        }
        if (c == '\t')
            c = ' ';
        if (c == ' ' && (t->n == 0 || t->s[t->n - 1] == ' '))
            continue;
        t->s[t->n] = c; /* room reserved above: at most n bytes come from s */
        t->map[t->n++] = base + i;
    }
    if (t->s)
        t->s[t->n] = 0;
    return rc;
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

/* Returns the length of a list marker ("- ", "* ", "1. ") after indentation, or 0. */
static size_t list_marker(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i + 1 < n && (s[i] == '-' || s[i] == '*' || s[i] == '+') && s[i + 1] == ' ')
        return i + 2;
    size_t d = i;
    while (d < n && s[d] >= '0' && s[d] <= '9')
        d++;
    if (d > i && d - i <= 3 && d + 1 < n && (s[d] == '.' || s[d] == ')') && s[d + 1] == ' ')
        return d + 2;
    return 0;
}

/* A Markdown heading line of level h: closes the open block, then sets the
 * section path from the heading text without emphasis. */
static int md_heading(parser_t *p, mtext_t *t, const char *line, size_t ln, size_t h)
{
    int rc;
    if ((rc = add_block(p, t)) != 0)
        return rc;
    char *txt = trim_dup(line + h + 1, ln - h - 1);
    if (!txt)
        return TORO_ENOMEM;
    /* Strip emphasis from heading text. */
    size_t o = 0;
    for (size_t i = 0; txt[i]; i++)
        if (txt[i] != '*' && txt[i] != '`')
            txt[o++] = txt[i];
    txt[o] = 0;
    return set_heading(p, (int)h, txt);
}

/* A table row: one block "| a | b |", the shape kept for answers. */
static int md_table_row(parser_t *p, mtext_t *t, const char *line, size_t ln, size_t base)
{
    int rc;
    if ((rc = add_block(p, t)) != 0)
        return rc;
    for (size_t i = 0; i < ln && rc == 0; i++) {
        if (line[i] == '|')
            rc = mt_push(t, '|', base + i);
        else
            rc = push_inline(t, line + i, 1, base + i, 1);
    }
    return rc ? rc : add_block(p, t);
}

/* A list item: a block of its own that starts with "- ". lm is the marker's length. */
static int md_list_item(parser_t *p, mtext_t *t, const char *line, size_t ln, size_t base, size_t lm)
{
    int rc;
    if ((rc = add_block(p, t)) != 0)
        return rc;
    rc = mt_push(t, '-', base + lm - 2);
    if (!rc)
        rc = mt_push(t, ' ', base + lm - 1);
    if (!rc)
        rc = push_inline(t, line + lm, ln - lm, base + lm, 1);
    return rc;
}

/* The Markdown structure of one line outside a code fence: a heading, a rule
 * or table separator, a quote, a table row or a list item. *done is set when
 * the line is consumed; otherwise it is paragraph text, and *line, *ln, *base
 * may have moved past a quote marker. */
static int md_line(parser_t *p, mtext_t *t, const char **linep, size_t *lnp, size_t *basep, int *done)
{
    const char *line = *linep;
    size_t ln = *lnp, base = *basep, h = 0;
    *done = 1;
    while (h < ln && h < 7 && line[h] == '#')
        h++;
    if (h >= 1 && h <= 6 && h < ln && line[h] == ' ')
        return md_heading(p, t, line, ln, h);
    /* Horizontal rules and table separators carry no text. */
    int rule = ln >= 3;
    for (size_t i = 0; i < ln && rule; i++) /* a NUL counts as a rule character, as strchr found it */
        rule = line[i] == '-' || line[i] == '*' || line[i] == '_' || line[i] == '=' || line[i] == '|' ||
               line[i] == ':' || line[i] == ' ' || line[i] == '\t' || line[i] == 0;
    if (rule)
        return add_block(p, t);
    if (line[0] == '>') {
        if (!p->seen_h2) /* the disclaimer under the title is not content */
            return 0;
        size_t k = 1;
        while (k < ln && line[k] == ' ')
            k++;
        line += k, ln -= k, base += k;
        *linep = line, *lnp = ln, *basep = base;
    }
    if (ln > 0 && line[0] == '|')
        return md_table_row(p, t, line, ln, base);
    size_t lm = list_marker(line, ln);
    if (lm)
        return md_list_item(p, t, line, ln, base, lm);
    *done = 0; /* continuation lines join the open item or paragraph */
    return 0;
}

/* Parses Markdown (markup=1) or plain text (markup=0) lines of src[body..len).
 * map, when given, maps positions of src to offsets of the original file. */
static int parse_md(parser_t *p, const char *src, size_t len, size_t body, int markup, const size_t *map)
{
    mtext_t t = {0};
    int rc = 0, in_fence = 0, done = 0;
    size_t pos = body;
    assert(body <= len);
    while (pos < len && rc == 0) {
        const char *nl = memchr(src + pos, '\n', len - pos);
        size_t lend = nl ? (size_t)(nl - src) : len;
        const char *line = src + pos;
        size_t ln = lend - pos;
        size_t base = pos;
        pos = nl ? lend + 1 : len;
        if (ln && line[ln - 1] == '\r')
            ln--;
        if (markup && ln >= 3 && memcmp(line, "```", 3) == 0) {
            rc = add_block(p, &t);
            in_fence = !in_fence;
            continue;
        }
        if (is_blank(line, ln)) {
            rc = add_block(p, &t);
            continue;
        }
        if (markup && !in_fence && ((rc = md_line(p, &t, &line, &ln, &base, &done)) != 0 || done))
            continue;
        if (t.n && t.s[t.n - 1] != ' ')
            rc = mt_push(&t, ' ', base);
        if (!rc)
            rc = push_inline(&t, line, ln, base, markup && !in_fence);
        /* plain text: a line ending in a period closes nothing; keep joining */
    }
    if (rc == 0)
        rc = add_block(p, &t);
    mt_free(&t);
    if (map && rc == 0)
        for (size_t i = 0; i < p->nb; i++)
            for (size_t j = 0; j < p->blocks[i].len; j++)
                p->blocks[i].map[j] = map[p->blocks[i].map[j]];
    return rc;
}

/* ---- HTML: converted to Markdown-like text with an offset map ----------- */

static int tag_is(const char *tag, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n == l && strncasecmp(tag, name, l) == 0;
}

static const struct {
    const char *name;
    const char *text;
} ENTITIES[] = {{"amp", "&"},   {"lt", "<"},       {"gt", ">"},      {"quot", "\""},   {"apos", "'"},
                {"nbsp", " "},  {"aacute", "á"},  {"eacute", "é"},  {"iacute", "í"},  {"oacute", "ó"},
                {"uacute", "ú"}, {"atilde", "ã"}, {"otilde", "õ"},  {"ccedil", "ç"},  {"acirc", "â"},
                {"ecirc", "ê"}, {"ocirc", "ô"},   {"agrave", "à"},  {"mdash", "—"},  {"ndash", "–"}};

/* The Markdown a layout tag stands for: "# " for headings, "- " for list
 * items, blank lines around blocks, a line break per row, a space per cell. */
static int html_layout_tag(mtext_t *out, const char *tag, size_t tn, int closing, size_t i)
{
    int rc = 0;
    if (tn == 2 && (tag[0] == 'h' || tag[0] == 'H') && tag[1] >= '1' && tag[1] <= '6') {
        rc = mt_push(out, '\n', i);
        if (!closing) {
            rc = mt_push(out, '\n', i);
            for (int k = 0; k < tag[1] - '0' && !rc; k++)
                rc = mt_push(out, '#', i);
            if (!rc)
                rc = mt_push(out, ' ', i);
        } else {
            rc = mt_push(out, '\n', i);
        }
    } else if (tag_is(tag, tn, "li") && !closing) {
        rc = mt_push(out, '\n', i);
        if (!rc)
            rc = mt_push(out, '-', i);
        if (!rc)
            rc = mt_push(out, ' ', i);
    } else if (tag_is(tag, tn, "p") || tag_is(tag, tn, "div") || tag_is(tag, tn, "ul") || tag_is(tag, tn, "ol") ||
               tag_is(tag, tn, "table") || tag_is(tag, tn, "section") || tag_is(tag, tn, "article") ||
               tag_is(tag, tn, "blockquote")) {
        rc = mt_push(out, '\n', i);
        if (!rc)
            rc = mt_push(out, '\n', i);
    } else if (tag_is(tag, tn, "br") || tag_is(tag, tn, "tr")) {
        rc = mt_push(out, '\n', i);
    } else if (tag_is(tag, tn, "td") || tag_is(tag, tn, "th")) {
        rc = mt_push(out, ' ', i);
    }
    return rc;
}

/* The comment or tag at src[i] == '<' whose '>' is gt. Sets *next to where
 * reading goes on (past the comment, the tag, or the title's text), *skip
 * inside <script> and <style>, and *title from the first <title>. */
static int html_tag(const char *src, size_t len, size_t i, const char *gt, mtext_t *out, char **title, int *skip,
                    size_t *next)
{
    size_t te = (size_t)(gt - src);
    if (i + 4 <= len && memcmp(src + i, "<!--", 4) == 0) {
        const char *end = NULL;
        for (size_t k = i + 4; k + 2 < len; k++)
            if (memcmp(src + k, "-->", 3) == 0) {
                end = src + k + 3;
                break;
            }
        *next = end ? (size_t)(end - src) : len;
        return 0;
    }
    const char *tag = src + i + 1;
    int closing = 0;
    if (*tag == '/')
        closing = 1, tag++;
    size_t tn = 0;
    while (tag + tn < gt && ((tag[tn] >= 'a' && tag[tn] <= 'z') || (tag[tn] >= 'A' && tag[tn] <= 'Z') ||
                             (tag[tn] >= '0' && tag[tn] <= '9')))
        tn++;
    *next = te + 1;
    if (tag_is(tag, tn, "script") || tag_is(tag, tn, "style")) {
        *skip = !closing;
    } else if (tag_is(tag, tn, "title") && !closing) {
        /* src is not NUL-terminated: search within len */
        const char *end = NULL;
        for (size_t k = te; k + 1 < len; k++)
            if (src[k] == '<' && src[k + 1] == '/') {
                end = src + k;
                break;
            }
        if (end && !*title)
            *title = trim_dup(gt + 1, (size_t)(end - gt - 1));
        *next = end ? (size_t)(end - src) : len;
    } else {
        return html_layout_tag(out, tag, tn, closing, i);
    }
    return 0;
}

/* The text of a known entity at src[i] == '&' (within 10 bytes), or NULL;
 * *next is set past its ';'. */
static const char *html_entity(const char *src, size_t len, size_t i, size_t *next)
{
    const char *semi = memchr(src + i, ';', len - i < 10 ? len - i : 10);
    if (!semi)
        return NULL;
    const char *name = src + i + 1;
    size_t nn = (size_t)(semi - name);
    const char *rep = NULL;
    for (size_t k = 0; k < sizeof(ENTITIES) / sizeof(ENTITIES[0]); k++)
        if (strlen(ENTITIES[k].name) == nn && memcmp(ENTITIES[k].name, name, nn) == 0)
            rep = ENTITIES[k].text;
    *next = (size_t)(semi - src) + 1;
    return rep;
}

static int html_to_md(const char *src, size_t len, mtext_t *out, char **title)
{
    int rc = 0;
    size_t i = 0, next = 0;
    int skip = 0; /* inside <script>/<style> */
    while (i < len && rc == 0) {
        char c = src[i];
        if (c == '<') {
            const char *gt = memchr(src + i, '>', len - i);
            if (!gt)
                break;
            rc = html_tag(src, len, i, gt, out, title, &skip, &next);
            i = next;
            continue;
        }
        if (skip) {
            i++;
            continue;
        }
        const char *rep = c == '&' ? html_entity(src, len, i, &next) : NULL;
        if (rep) {
            for (const char *r = rep; *r && !rc; r++)
                rc = mt_push(out, *r, i);
            i = next;
            continue;
        }
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        rc = mt_push(out, c, i);
        i++;
    }
    if (!rc && !out->s)
        rc = mt_push(out, ' ', 0);
    return rc;
}

/* ---- sentences and packing ---------------------------------------------- */

size_t toro_sentence_end(const char *s, size_t len, size_t pos)
{
    for (size_t i = pos; i < len; i++) {
        char c = s[i];
        if (c == '\n')
            return i + 1;
        if ((c == '.' || c == '!' || c == '?') && (i + 1 >= len || s[i + 1] == ' ' || s[i + 1] == '\n')) {
            /* "ex." / "art." / single capitals are abbreviations, not ends. */
            size_t w = i;
            while (w > pos && s[w - 1] != ' ')
                w--;
            size_t wl = i - w;
            if (c == '.' && ((wl == 1 && s[w] >= 'A' && s[w] <= 'Z') ||
                             (wl == 2 && (memcmp(s + w, "ex", 2) == 0 || memcmp(s + w, "Sr", 2) == 0)) ||
                             (wl == 3 && (memcmp(s + w, "art", 3) == 0 || memcmp(s + w, "Art", 3) == 0))))
                continue;
            size_t e = i + 1;
            while (e < len && s[e] == ' ')
                e++;
            return e;
        }
    }
    return len;
}

typedef struct piece {
    const char *text;
    const size_t *map;
    size_t len;
    int section;
} piece_t;

static int emit_chunk(toro_doc_t *d, size_t *capc, const char *section, const piece_t *pc, size_t a, size_t b)
{
    if (d->n_chunks == *capc) {
        size_t nc = *capc ? *capc * 2 : 8;
        toro_chunk_t *c = realloc(d->chunks, nc * sizeof(toro_chunk_t));
        if (!c)
            return TORO_ENOMEM;
        d->chunks = c;
        *capc = nc;
    }
    size_t total = 0;
    for (size_t i = a; i < b; i++)
        total += pc[i].len + 1;
    toro_chunk_t *c = &d->chunks[d->n_chunks];
    c->text = malloc(total + 1);
    c->section = strdup(section);
    if (!c->text || !c->section) {
        free(c->text);
        free(c->section);
        return TORO_ENOMEM;
    }
    size_t o = 0;
    c->start = (size_t)-1;
    c->end = 0;
    assert(a < b);
    for (size_t i = a; i < b; i++) {
        assert(pc[i].len > 0); /* empty blocks are dropped by add_block */
        if (o)
            c->text[o++] = '\n';
        memcpy(c->text + o, pc[i].text, pc[i].len);
        o += pc[i].len;
        if (pc[i].map[0] < c->start)
            c->start = pc[i].map[0];
        if (pc[i].map[pc[i].len - 1] + 1 > c->end)
            c->end = pc[i].map[pc[i].len - 1] + 1;
    }
    assert(o <= total && c->start < c->end);
    c->text[o] = 0;
    d->n_chunks++;
    return 0;
}

/* Packs pieces of one section into chunks of at most max_chars, repeating
 * trailing pieces up to overlap_chars at the start of the next chunk. */
static int pack(toro_doc_t *d, size_t *capc, const char *section, const piece_t *pc, size_t n,
                const toro_chunk_params_t *p)
{
    size_t a = 0;
    while (a < n) {
        size_t b = a, size = 0;
        while (b < n && (b == a || size + 1 + pc[b].len <= p->max_chars)) {
            size += pc[b].len + (b > a);
            b++;
        }
        int rc = emit_chunk(d, capc, section, pc, a, b);
        if (rc)
            return rc;
        if (b >= n)
            break;
        /* Overlap: walk back from b while the tail fits, but always advance. */
        size_t ov = b, osz = 0;
        while (ov > a + 1 && osz + pc[ov - 1].len + 1 <= p->overlap_chars) {
            osz += pc[ov - 1].len + 1;
            ov--;
        }
        /* The next chunk must still have room for the piece at b. */
        while (ov < b && osz + pc[b].len + 1 > p->max_chars) {
            osz -= pc[ov].len + 1;
            ov++;
        }
        a = ov;
    }
    return 0;
}

static int chunk_blocks(parser_t *ps, const toro_chunk_params_t *p, toro_doc_t *d)
{
    /* Split blocks longer than max_chars at sentence ends (hard cut if needed). */
    size_t cap = ps->nb * 2 + 8, n = 0;
    piece_t *pc = malloc(cap * sizeof(piece_t));
    if (!pc)
        return TORO_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < ps->nb && rc == 0; i++) {
        block_t *b = &ps->blocks[i];
        size_t pos = 0;
        while (pos < b->len) {
            size_t end = b->len;
            if (b->len - pos > p->max_chars) {
                size_t e = pos, last = pos;
                while (e < b->len && e - pos <= p->max_chars) {
                    last = e;
                    e = toro_sentence_end(b->text, b->len, e);
                }
                if (e - pos <= p->max_chars)
                    last = e;
                if (last == pos) { /* one huge sentence: cut at a space */
                    last = pos + p->max_chars;
                    while (last > pos + p->max_chars / 2 && b->text[last] != ' ')
                        last--;
                    /* never split inside a UTF-8 sequence */
                    while (last > pos + 1 && ((unsigned char)b->text[last] & 0xC0) == 0x80)
                        last--;
                }
                end = last;
            }
            size_t te = end;
            while (te > pos && b->text[te - 1] == ' ')
                te--;
            if (te > pos) {
                if (n == cap) {
                    cap *= 2;
                    piece_t *np = realloc(pc, cap * sizeof(piece_t));
                    if (!np) {
                        rc = TORO_ENOMEM;
                        break;
                    }
                    pc = np;
                }
                pc[n++] = (piece_t){b->text + pos, b->map + pos, te - pos, b->section};
            }
            pos = end;
            while (pos < b->len && b->text[pos] == ' ')
                pos++;
        }
    }
    size_t capc = 0;
    for (size_t a = 0; a < n && rc == 0;) {
        size_t b = a;
        while (b < n && pc[b].section == pc[a].section)
            b++;
        const char *sec = pc[a].section >= 0 ? ps->sections[pc[a].section] : "";
        rc = pack(d, &capc, sec, pc + a, b - a, p);
        a = b;
    }
    free(pc);
    return rc;
}

/* ---- front matter and entry point ---------------------------------------- */

/* Parses "---\nkey: value\n---\n"; returns the offset of the body. */
static size_t front_matter(const char *src, size_t len, toro_doc_t *d)
{
    size_t pos = 0;
    if (len >= 3 && memcmp(src, "\xEF\xBB\xBF", 3) == 0)
        pos = 3;
    if (len - pos < 4 || memcmp(src + pos, "---", 3) != 0 || (src[pos + 3] != '\n' && src[pos + 3] != '\r'))
        return pos;
    size_t p = pos + 3;
    while (p < len && src[p] != '\n')
        p++;
    p++;
    while (p < len) {
        const char *nl = memchr(src + p, '\n', len - p);
        size_t le = nl ? (size_t)(nl - src) : len;
        const char *line = src + p;
        size_t ln = le - p;
        if (ln && line[ln - 1] == '\r')
            ln--;
        p = nl ? le + 1 : len;
        if (ln >= 3 && memcmp(line, "---", 3) == 0)
            return p;
        const char *colon = memchr(line, ':', ln);
        if (!colon)
            continue;
        size_t kl = (size_t)(colon - line);
        char *val = trim_dup(colon + 1, ln - kl - 1);
        if (!val)
            continue;
        size_t vl = strlen(val);
        if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
            memmove(val, val + 1, vl - 2);
            val[vl - 2] = 0;
        }
        char **slot = NULL;
        if (kl == 6 && memcmp(line, "doc_id", 6) == 0)
            slot = &d->doc_id;
        else if (kl == 5 && memcmp(line, "title", 5) == 0)
            slot = &d->title;
        else if (kl == 4 && memcmp(line, "lang", 4) == 0 && (strcmp(val, "pt") == 0 || strcmp(val, "en") == 0))
            slot = &d->lang;
        if (slot && !*slot && *val)
            *slot = val;
        else
            free(val);
    }
    return pos; /* unterminated: not front matter */
}

int toro_doc_format_from_path(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot)
        return -1;
    if (strcasecmp(dot, ".md") == 0 || strcasecmp(dot, ".markdown") == 0)
        return TORO_FMT_MD;
    if (strcasecmp(dot, ".txt") == 0)
        return TORO_FMT_TXT;
    if (strcasecmp(dot, ".html") == 0 || strcasecmp(dot, ".htm") == 0)
        return TORO_FMT_HTML;
    return -1;
}

void toro_doc_clear(toro_doc_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_chunks; i++) {
        free(d->chunks[i].section);
        free(d->chunks[i].text);
    }
    free(d->chunks);
    free(d->doc_id);
    free(d->title);
    free(d->lang);
    memset(d, 0, sizeof(*d));
}

/* out->lang from the text of the first chunks (about 4000 bytes) and the title. */
static int detect_doc_lang(toro_doc_t *out)
{
    size_t n = 0;
    for (size_t i = 0; i < out->n_chunks && n < 4000; i++)
        n += strlen(out->chunks[i].text) + 1;
    char *buf = malloc(n + strlen(out->title) + 2);
    if (!buf)
        return TORO_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < out->n_chunks && o < 4000; i++) {
        size_t l = strlen(out->chunks[i].text);
        memcpy(buf + o, out->chunks[i].text, l);
        o += l;
        buf[o++] = ' ';
    }
    size_t tl = strlen(out->title);
    memcpy(buf + o, out->title, tl);
    o += tl;
    out->lang = strdup(toro_lang_detect(buf, o));
    free(buf);
    return 0;
}

int toro_chunk_document(const char *doc_id_default, const char *src, size_t len, toro_doc_format_t fmt,
                        const toro_chunk_params_t *params, toro_doc_t *out)
{
    toro_chunk_params_t defp = TORO_CHUNK_PARAMS_DEFAULT;
    if (!params)
        params = &defp;
    memset(out, 0, sizeof(*out));
    parser_t ps;
    memset(&ps, 0, sizeof(ps));
    int rc = add_section(&ps, "");
    mtext_t html = {0};
    char *html_title = NULL;
    if (rc)
        goto out;
    if (fmt == TORO_FMT_HTML) {
        if ((rc = html_to_md(src, len, &html, &html_title)) != 0)
            goto out;
        ps.seen_h2 = 1;
        rc = parse_md(&ps, html.s, html.n, 0, 1, html.map);
    } else {
        size_t body = front_matter(src, len, out);
        if (fmt == TORO_FMT_TXT)
            ps.seen_h2 = 1;
        rc = parse_md(&ps, src, len, body, fmt == TORO_FMT_MD, NULL);
    }
    if (rc)
        goto out;
    if (!out->doc_id && !(out->doc_id = strdup(doc_id_default ? doc_id_default : "doc"))) {
        rc = TORO_ENOMEM;
        goto out;
    }
    if (!out->title) {
        if (ps.title) {
            out->title = ps.title;
            ps.title = NULL;
        } else if (html_title) {
            out->title = html_title;
            html_title = NULL;
        } else {
            out->title = strdup(out->doc_id);
        }
    }
    if ((rc = chunk_blocks(&ps, params, out)) != 0)
        goto out;
    if (!out->lang && out->title && (rc = detect_doc_lang(out)) != 0)
        goto out;
    if (!out->title || !out->lang)
        rc = TORO_ENOMEM;
out:
    for (size_t i = 0; i < ps.nb; i++) {
        free(ps.blocks[i].text);
        free(ps.blocks[i].map);
    }
    free(ps.blocks);
    for (size_t i = 0; i < ps.ns; i++)
        free(ps.sections[i]);
    free(ps.sections);
    for (int i = 0; i < MAX_DEPTH; i++)
        free(ps.heads[i]);
    free(ps.title);
    free(html_title);
    mt_free(&html);
    if (rc)
        toro_doc_clear(out);
    return rc;
}
