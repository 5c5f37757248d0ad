/* fuzz_analyzer.c: libFuzzer harness for the knowledge-base analyzer
 * (folding, tokenizing, stemming, language detection) and the chunker for
 * every source format. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kb/analyzer.h"
#include "kb/chunker.h"

static int count_token(void *ud, const char *tok, size_t len, int kind)
{
    (void)kind;
    if (len == 0 || len > TORO_TOKEN_MAX || strlen(tok) != len)
        abort();
    (*(size_t *)ud)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static toro_analyzer_t *pt, *en;
    if (!pt && (toro_analyzer_new("pt", false, &pt) != 0 || toro_analyzer_new("en", false, &en) != 0))
        abort();
    const char *text = (const char *)data;
    size_t folded_len = 0, n = 0;
    char *folded = toro_fold(text, size, &folded_len);
    if (folded) {
        toro_tokenize(folded, folded_len, count_token, &n);
        free(folded);
    }
    toro_analyze(pt, text, size, count_token, &n);
    toro_analyze(en, text, size, count_token, &n);
    toro_lang_detect(text, size);
    toro_chunk_params_t params = {120, 40};
    for (int fmt = TORO_FMT_MD; fmt <= TORO_FMT_HTML; fmt++) {
        toro_doc_t doc;
        memset(&doc, 0, sizeof doc);
        if (toro_chunk_document("fuzz", text, size, (toro_doc_format_t)fmt, &params, &doc) == 0) {
            for (size_t i = 0; i < doc.n_chunks; i++)
                if (doc.chunks[i].start > doc.chunks[i].end || doc.chunks[i].end > size)
                    abort(); /* offsets must point into the source */
        }
        toro_doc_clear(&doc);
    }
    for (size_t pos = 0; pos < size;) {
        size_t end = toro_sentence_end(text, size, pos);
        if (end <= pos || end > size)
            abort();
        pos = end;
    }
    return 0;
}
