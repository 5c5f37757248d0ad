/* gen_corpus.c: synthetic Markdown corpus for the kb benchmarks (replaces the
 * Python generator, which needed ~13 min for 1M chunks; this takes seconds).
 * usage: gen_corpus OUT_DIR N_CHUNKS [SECTIONS_PER_DOC=100]
 * Each document has SECTIONS_PER_DOC "## Seção" sections of one ~600-byte
 * paragraph (one chunk each; toro's chunker splits at headings and a chunk is
 * at most 900 characters) built from a Zipf-ish (s=0.9) vocabulary of Portuguese
 * finance words and 20,000 synthetic terms, so N_CHUNKS chunks need
 * N_CHUNKS/SECTIONS_PER_DOC files, 1000 files per subdirectory. Deterministic. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *WORDS =
    "investimento renda fixa tesouro selic cdb lci lca fgc garantia liquidez prazo taxa juros cdi ipca "
    "inflação rentabilidade imposto alíquota resgate aplicação fundo ações dividendos corretora custódia "
    "risco crédito emissor banco título prefixado pós-fixado híbrido vencimento cupom semestral "
    "previdência pgbl vgbl tabela regressiva progressiva come-cotas isenção declaração darf bolsa "
    "mercado preço cotação volatilidade diversificação carteira reserva emergência poupança "
    "debênture incentivada infraestrutura cri cra fii aluguel imóveis etf índice ibovespa bdr exterior "
    "câmbio dólar ouro criptomoeda day trade swing operação compra venda ordem limite stop";

#define NSYN 20000
#define WPP 85 /* words per paragraph */

static uint64_t s = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
static double unif(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: gen_corpus OUT_DIR N_CHUNKS [SECTIONS_PER_DOC]\n");
        return 2;
    }
    const char *out = argv[1];
    long n = atol(argv[2]);
    long spd = argc > 3 ? atol(argv[3]) : 100;
    char *vocab[512 + NSYN];
    size_t nv = 0;
    char *w = strdup(WORDS);
    for (char *t = strtok(w, " "); t; t = strtok(NULL, " "))
        vocab[nv++] = t;
    for (int i = 0; i < NSYN; i++) {
        vocab[nv] = malloc(16);
        snprintf(vocab[nv++], 16, "termo%d", i);
    }
    double *cdf = malloc(nv * sizeof(double)), acc = 0;
    for (size_t i = 0; i < nv; i++)
        cdf[i] = (acc += 1.0 / __builtin_pow((double)(i + 1), 0.9));
    for (size_t i = 0; i < nv; i++)
        cdf[i] /= acc;
    if (mkdir(out, 0755) && errno != EEXIST) {
        perror(out);
        return 1;
    }
    long ndocs = (n + spd - 1) / spd, left = n;
    char path[4096], *buf = malloc((size_t)spd * 2048 + 4096);
    for (long d = 0; d < ndocs; d++) {
        snprintf(path, sizeof path, "%s/d%04ld", out, d / 1000);
        if (d % 1000 == 0 && mkdir(path, 0755) && errno != EEXIST) {
            perror(path);
            return 1;
        }
        char *p = buf;
        p += sprintf(p, "---\ndoc_id: syn%07ld\ntitle: Documento sintético %ld\nlang: pt\n---\n# Documento %ld\n", d, d, d);
        long ns = left < spd ? left : spd;
        left -= ns;
        for (long sec = 0; sec < ns; sec++) {
            p += sprintf(p, "\n## Seção %ld\n\n", sec);
            for (int i = 0; i < WPP; i++) {
                double u = unif();
                size_t lo = 0, hi = nv - 1;
                while (lo < hi) {
                    size_t mid = (lo + hi) / 2;
                    if (cdf[mid] < u)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                const char *word = vocab[lo];
                if (i)
                    *p++ = ' ';
                size_t l = strlen(word);
                memcpy(p, word, l);
                if (i % 9 == 0 && word[0] >= 'a' && word[0] <= 'z')
                    *p -= 32; /* capitalize */
                p += l;
            }
            p += sprintf(p, ". Valor de R$ %d.%03d e taxa de %d,%d%% ao ano.\n", (int)(rnd() % 999) + 1,
                         (int)(rnd() % 1000), (int)(rnd() % 30) + 1, (int)(rnd() % 10));
        }
        snprintf(path, sizeof path, "%s/d%04ld/syn%07ld.md", out, d / 1000, d);
        FILE *f = fopen(path, "w");
        if (!f || fwrite(buf, 1, (size_t)(p - buf), f) != (size_t)(p - buf) || fclose(f)) {
            perror(path);
            return 1;
        }
    }
    return 0;
}
