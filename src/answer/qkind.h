/* qkind.h: what a question asks for and what a sentence offers, for the
 * extractive answerer. The question's kinds (definition, amount, time,
 * how-to, yes/no, comparison, reason, advice, live data) come from its
 * folded words; a sentence's features (a number, a date or period, a
 * yes/no word, a contrast, a cause) come from the same folding, so accents and case
 * never decide. Both work on Portuguese and English. It does not retrieve,
 * score or compose answers (extractive.c does). */
#ifndef TORO_ANSWER_QKIND_H
#define TORO_ANSWER_QKIND_H

#include <stddef.h>

/* Question kinds (bit mask); several may hold ("CDB paga IR? Qual a alíquota?"). */
enum {
    TORO_Q_DEFINITION = 1 << 0, /* "o que é", "what is", "como funciona" */
    TORO_Q_AMOUNT = 1 << 1,     /* "quanto", "qual a alíquota", "how much", "what rate" */
    TORO_Q_TIME = 1 << 2,       /* "quando", "em quais meses", "prazo", "when", "how long" */
    TORO_Q_HOWTO = 1 << 3,      /* "como declaro", "how do I", "passo a passo" */
    TORO_Q_YESNO = 1 << 4,      /* "CDB paga IR?", "is it exempt?" */
    TORO_Q_COMPARISON = 1 << 5, /* "diferença entre", "X ou Y", "difference between" */
    TORO_Q_ADVICE = 1 << 6,     /* "devo comprar", "should I buy", "vai subir" */
    TORO_Q_LIVE = 1 << 7,       /* "preço hoje", "cotação", "current price" */
    TORO_Q_PLACE = 1 << 9,      /* "onde", "where": answered under a heading that asks it too ("Onde investir") */
    TORO_Q_DIFFERENCE = 1 << 8, /* a comparison asking what sets the sides apart: "diferença", "x", "vs" (not "X ou Y?") */
    TORO_Q_REASON = 1 << 10,    /* a cause or condition: "por que", "pq", "why", "quando vale a pena", "em que casos" */
};

/* Sentence features (bit mask), from its folded text. */
enum {
    TORO_F_NUMBER = 1 << 0,     /* a digit, "%" or "R$" */
    TORO_F_TIME = 1 << 1,       /* month, weekday, "D+2", "dia útil", hour, "até o dia" */
    TORO_F_PERIOD = 1 << 2,     /* a weaker time word: "ano", "mês", "semestral", "days" */
    TORO_F_POLAR = 1 << 3,      /* "não", "isento", "sem", "yes", "exempt", "only" */
    TORO_F_CONTRAST = 1 << 4,   /* "enquanto", "já o", "whereas", "unlike", "diferença" */
    TORO_F_STEP = 1 << 5,       /* imperative steps: "abra", "acesse", "open", "log in" */
    TORO_F_CAUSE = 1 << 6,      /* a cause or condition: "porque", "se", "quando", "por causa", "because", "if" */
};

/* Why: the answerer picks its opening sentence by what is asked. question
 * is raw UTF-8 (folded here). Returns the TORO_Q_* mask, 0 when nothing is
 * recognized (then plain lexical similarity decides). */
unsigned toro_qkind_of(const char *question);

/* Why: the sentence side of the same decision. folded is toro_fold output
 * (lower case, no accents) of one sentence, len bytes. Returns TORO_F_*. */
unsigned toro_qkind_features(const char *folded, size_t len);

/* Why: the fixed statement that opens every advice or live-data answer, in
 * the question's language ("pt" or "en"). Static string. */
const char *toro_qkind_advice_note(const char *lang);

#define TORO_ADVICE_NOTE_PT                                                                                      \
    "A toro não faz recomendações individuais de investimento (comprar, vender ou manter um ativo) e não tem " \
    "cotações nem preços em tempo real."
#define TORO_ADVICE_NOTE_EN                                                                                       \
    "toro gives no individual investment recommendation (to buy, sell or hold an asset) and has no real-time " \
    "quotes or prices."

#endif
