#!/usr/bin/env python3
"""gen_corpus.py: synthetic Markdown corpus for kb benchmarks.
usage: gen_corpus.py OUT_DIR N_CHUNKS [--docs-per-dir 1000]
Each document has 10 sections of one ~600-byte paragraph (one chunk each) built
from a Zipf-ish vocabulary of Portuguese finance words and numbers, so N_CHUNKS
chunks need N_CHUNKS/10 files. Deterministic (seeded)."""
import os, random, sys

WORDS = ("investimento renda fixa tesouro selic cdb lci lca fgc garantia liquidez prazo taxa juros cdi ipca "
         "inflação rentabilidade imposto alíquota resgate aplicação fundo ações dividendos corretora custódia "
         "risco crédito emissor banco título prefixado pós-fixado híbrido vencimento cupom semestral "
         "previdência pgbl vgbl tabela regressiva progressiva come-cotas isenção declaração darf bolsa "
         "mercado preço cotação volatilidade diversificação carteira reserva emergência poupança "
         "debênture incentivada infraestrutura cri cra fii aluguel imóveis etf índice ibovespa bdr exterior "
         "câmbio dólar ouro criptomoeda day trade swing operação compra venda ordem limite stop").split()

def main():
    out, n = sys.argv[1], int(sys.argv[2])
    rnd = random.Random(42)
    vocab = WORDS + ["termo%d" % i for i in range(20000)]
    weights = [1.0 / (i + 1) ** 0.9 for i in range(len(vocab))]
    ndocs = (n + 9) // 10
    for d in range(ndocs):
        sub = os.path.join(out, "d%04d" % (d // 1000))
        os.makedirs(sub, exist_ok=True)
        parts = ["---\ndoc_id: syn%07d\ntitle: Documento sintético %d\nlang: pt\n---\n# Documento %d\n" % (d, d, d)]
        for s in range(10):
            words = rnd.choices(vocab, weights, k=85)
            for i in range(0, 85, 9):
                words[i] = words[i].capitalize()
            txt = " ".join(words)
            txt += ". Valor de R$ %d.%03d e taxa de %d,%d%% ao ano." % (rnd.randint(1, 999), rnd.randint(0, 999),
                                                                     rnd.randint(1, 30), rnd.randint(0, 9))
            parts.append("\n## Seção %d\n\n%s\n" % (s, txt))
        with open(os.path.join(sub, "syn%07d.md" % d), "w") as f:
            f.write("".join(parts))

if __name__ == "__main__":
    main()
