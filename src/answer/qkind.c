/* qkind.c: question kinds and sentence features from folded words (see
 * qkind.h). Matching is on whole words of the folded text padded with
 * spaces, so "quando" never matches inside "quandoo" and "é"/"e" and
 * "ações"/"acoes" are one word. The word lists are about how people ask
 * (interrogatives, verbs of advice, units of time), never about one
 * document or one question. */
#include "answer/qkind.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kb/analyzer.h"

#define PAD_MAX 4096 /* bytes of a question or sentence considered */

/* " " + words separated by single spaces + " "; letters, digits and the
 * characters of financial tokens (% $ +) kept, the rest a space. */
static size_t pad(const char *folded, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    out[o++] = ' ';
    for (size_t i = 0; i < len && o + 2 < cap; i++) {
        unsigned char c = (unsigned char)folded[i];
        bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '%' || c == '$' || c == '+' || c >= 0x80;
        if (!keep)
            c = ' ';
        if (c == ' ' && out[o - 1] == ' ')
            continue;
        out[o++] = (char)c;
    }
    if (out[o - 1] != ' ')
        out[o++] = ' ';
    out[o] = 0;
    return o;
}

#define SLIP_WORD 7 /* letters of a one-word phrase that also matches one typing slip away */

/* Whether some word of padded text is the one-word phrase w (" diferenca ")
 * but for one typing slip ("difrenca"): long words only, so "quanto" and
 * "quando" stay apart. */
static bool slipped(const char *padded, const char *w)
{
    size_t wl = strlen(w) - 2;
    if (wl < SLIP_WORD || strchr(w + 1, ' ') != w + 1 + wl)
        return false;
    for (const char *p = padded + 1; *p;) {
        size_t n = strcspn(p, " ");
        if (n + 1 >= wl && n <= wl + 1 && toro_typo_distance(p, n, w + 1, wl, 1.0) <= 1.0)
            return true;
        p += n;
        while (*p == ' ')
            p++;
    }
    return false;
}

/* Whether padded text holds any of the phrases (each written " a b ") */
static bool any(const char *padded, const char *const *phrases)
{
    for (int i = 0; phrases[i]; i++)
        if (strstr(padded, phrases[i]))
            return true;
    return false;
}

/* any() for a question, where people type fast: a long one-word phrase
 * also matches with one typing slip ("difrença", "aliqota"). */
static bool asks(const char *padded, const char *const *phrases)
{
    if (any(padded, phrases))
        return true;
    for (int i = 0; phrases[i]; i++)
        if (slipped(padded, phrases[i]))
            return true;
    return false;
}

/* Whether padded text starts with any of the phrases. */
static bool starts(const char *padded, const char *const *phrases)
{
    for (int i = 0; phrases[i]; i++)
        if (strncmp(padded, phrases[i], strlen(phrases[i])) == 0)
            return true;
    return false;
}

static const char *const DEFINITION[] = {" o que e ", " o que sao ", " oque e ", " que e ", " o q e ", " o que significa ",
                                         " o que quer dizer ", " significado ",
                                         " oq e ", " oq sao ", " oq significa ", " significa o que ", " quer dizer o que ", " conceito de ", " como funciona ",
                                         " como funcionam ", " explique ", " explica ", " what is ", " what are ",
                                         " whats ", " what s ", " what does ", " define ", " meaning of ",
                                         " how does ", " how do ", " qual a definicao ", NULL};
static const char *const AMOUNT[] = {" quanto ", " quantos ", " quantas ", " qto ", " aliquota ", " aliquotas ",
                                     " qual o valor ", " qual a taxa ", " qual o limite ", " limite ", " minimo ", " minima ", " maxima ",
                                     " maximo ", " percentual ", " porcentagem ", " how much ", " how many ",
                                     " what rate ", " which rate ", " rate ", " rates ", " percent ",
                                     " percentage ", " limit ", " minimum ", " maximum ", " custa ", " cost ", NULL};
static const char *const TIME[] = {" quando ", " qnd ", " qdo ", " em quais meses ", " em que mes ",
                                   " qual mes ", " quais meses ", " que dia ", " qual dia ", " qual o prazo ",
                                   " quanto tempo ", " quantos dias ", " ate quando ", " que horas ", " horario ",
                                   " prazo ", " when ", " how long ", " what time ", " which month ", " what day ",
                                   " deadline ", " how soon ", " quantos anos ", NULL};
static const char *const HOWTO[] = {" como ", " how do i ", " how can i ", " how to ", " how should i ",
                                    " passo a passo ", " o que preciso ", " what do i need ", " steps ", NULL};
static const char *const HOWTO_NOT[] = {" como funciona ", " como funcionam ", " how does ", NULL};
static const char *const DIFFERENCE[] = {" diferenca ", " diferencas ", " diferente ", " difference ", " differences ",
                                         " compare ", " comparar ", " comparacao ", " versus ", " vs ", " x ", NULL};
static const char *const PLACE[] = {" onde ", " aonde ", " where ", NULL};
static const char *const CHOICE[] = {" melhor ", " better ", " rende mais ", " ou ", " or ", NULL}; /* a comparison too */
static const char *const ADVICE[] = {" devo comprar ", " devo vender ", " devo investir ", " devo aplicar ",
                                     " compro ", " vale a pena comprar ", " vale a pena investir ",
                                     " hora de comprar ", " hora de vender ", " comprar ou vender ",
                                     " recomenda ", " recomendacao ", " recomendam ", " me indica ",
                                     " qual acao comprar ", " quais acoes comprar ", " vai subir ", " vai cair ",
                                     " vao subir ", " vao cair ", " previsao ", " should i buy ", " should i sell ",
                                     " should i invest ", " buy or sell ", " recommend ", " will it go up ",
                                     " go up ", " go down ", " prediction ", " forecast ", " best stock ",
                                     " melhor acao ", " melhores acoes ", NULL};
static const char *const LIVE[] = {" cotacao ", " cotacoes ", " preco atual ", " preco hoje ", " preco da acao ",
                                   " preco das acoes ", " quanto esta ", " quanto ta ", " price today ",
                                   " current price ", " stock price ", " share price ", " quote ", " quotes ",
                                   " real time ", " tempo real ", NULL};
/* A cause or a condition asked: "why" and its forms; "when is it worth it"
 * asks a condition, not a date. */
static const char *const REASON[] = {" por que ", " porque ", " pq ", " por qual motivo ", " qual o motivo ",
                                     " o que faz ", " why ", " how come ", " what makes ", NULL};
static const char *const CONDITION[] = {" quando vale a pena ", " qdo vale a pena ", " qnd vale a pena ",
                                        " quando compensa ", " em que casos ", " em quais casos ",
                                        " em que situacao ", " em que situacoes ", " when is it worth ",
                                        " when does it make sense ", " in which cases ", " in what cases ", NULL};
static const char *const WH[] = {" o que ", " oque ", " oq ", " que ", " qual ", " quais ", " quanto ", " quantos ",
                                 " quantas ", " quando ", " como ", " onde ", " por que ", " porque ", " pq ",
                                 " quem ", " what ", " which ", " how ", " when ", " where ", " why ", " who ", NULL};

/* Yes/no: a sub-question (between '?') with no interrogative word. */
static bool yes_no(const char *question)
{
    char buf[PAD_MAX];
    const char *p = question;
    while (*p) {
        size_t n = strcspn(p, "?");
        size_t fl;
        char *f = toro_fold(p, n, &fl);
        if (f) {
            pad(f, fl, buf, sizeof buf);
            free(f);
            if (strlen(buf) > 3 && !any(buf, WH))
                return true;
        }
        p += n;
        while (*p == '?')
            p++;
    }
    return false;
}

unsigned toro_qkind_of(const char *question)
{
    char buf[PAD_MAX];
    size_t fl;
    char *f = toro_fold(question, strlen(question), &fl);
    if (!f)
        return 0;
    pad(f, fl, buf, sizeof buf);
    free(f);
    unsigned k = 0;
    if (asks(buf, DEFINITION))
        k |= TORO_Q_DEFINITION;
    if (asks(buf, AMOUNT))
        k |= TORO_Q_AMOUNT;
    if (asks(buf, TIME))
        k |= TORO_Q_TIME;
    if (asks(buf, HOWTO) && !asks(buf, HOWTO_NOT))
        k |= TORO_Q_HOWTO;
    if (asks(buf, DIFFERENCE))
        k |= TORO_Q_COMPARISON | TORO_Q_DIFFERENCE;
    if (asks(buf, CHOICE))
        k |= TORO_Q_COMPARISON;
    if (asks(buf, PLACE))
        k |= TORO_Q_PLACE;
    if (any(buf, REASON))
        k |= TORO_Q_REASON;
    if (any(buf, CONDITION))
        k = (k | TORO_Q_REASON) & ~TORO_Q_TIME;
    if (asks(buf, ADVICE))
        k |= TORO_Q_ADVICE;
    if (asks(buf, LIVE))
        k |= TORO_Q_LIVE;
    if (yes_no(question))
        k |= TORO_Q_YESNO;
    return k;
}

static const char *const F_TIME[] = {" janeiro ", " fevereiro ", " marco ", " abril ", " maio ", " junho ",
                                     " julho ", " agosto ", " setembro ", " outubro ", " novembro ", " dezembro ",
                                     " january ", " february ", " march ", " april ", " may ", " june ", " july ",
                                     " august ", " september ", " october ", " november ", " december ",
                                     " segunda ", " sexta ", " sabado ", " domingo ", " dia util ", " dias uteis ",
                                     " business day ", " business days ", " ultimo dia ", " last day ",
                                     " ate o dia ", " no dia ", " d+0 ", " d+1 ", " d+2 ", " d+3 ", " d+30 ",
                                     " vencimento ", " maturity ", " mensalmente ", " monthly ", " semestral ",
                                     " semestrais ", " semiannual ", " duas vezes por ano ", " twice a year ",
                                     " todo mes ", " every month ", " horario ", NULL};
static const char *const F_PERIOD[] = {" dia ", " dias ", " mes ", " meses ", " ano ", " anos ", " semestre ",
                                       " prazo ", " prazos ", " semana ", " semanas ", " hora ", " horas ", " day ", " days ",
                                       " week ", " weeks ", " hour ", " hours ", " month ", " months ", " year ",
                                       " years ", " period ", " periodo ", " data ", " date ", " antes ",
                                       " depois ", " apos ", " before ", " after ", NULL};
static const char *const F_POLAR[] = {" nao ", " sim ", " isento ", " isenta ", " isentos ", " isentas ",
                                      " isencao ", " sem ", " nenhum ", " nenhuma ", " apenas ", " somente ",
                                      " nunca ", " proibido ", " permitido ", " pode ", " podem ", " yes ",
                                      " no ", " not ", " exempt ", " exemption ", " only ", " never ", " cannot ",
                                      " can ", " free ", NULL};
static const char *const F_CONTRAST[] = {" enquanto ", " ja o ", " ja a ", " ja os ", " ja as ", " ao contrario ",
                                         " diferenca ", " diferente ", " diferentes ", " principal diferenca ",
                                         " whereas ", " while ", " unlike ", " difference ", " differs ",
                                         " mais ", " menos ", " more ", " less ", " maior ", " menor ", NULL};
static const char *const F_CAUSE[] = {" porque ", " pois ", " por causa ", " devido ", " se ", " caso ", " quando ",
                                      " por isso ", " because ", " due to ", " since ", " if ", " when ", " so ",
                                      NULL};
static const char *const F_STEP[] = {" abra ", " acesse ", " escolha ", " informe ", " envie ", " confirme ",
                                     " clique ", " preencha ", " transfira ", " emita ", " selecione ", " open ",
                                     " choose ", " send ", " confirm ", " click ", " select ", " log in ",
                                     " transfer ", " fill ", " passo ", " step ", NULL};

unsigned toro_qkind_features(const char *folded, size_t len)
{
    char buf[PAD_MAX];
    pad(folded, len, buf, sizeof buf);
    unsigned f = 0;
    for (const char *p = buf; *p; p++)
        if ((*p >= '0' && *p <= '9') || *p == '%' || *p == '$') {
            f |= TORO_F_NUMBER;
            break;
        }
    if (any(buf, F_TIME))
        f |= TORO_F_TIME;
    for (const char *p = buf; *p && !(f & TORO_F_TIME); p++) /* "10h", "18h30" */
        if (p[0] >= '0' && p[0] <= '9' && p[1] == 'h' && (p[2] == ' ' || (p[2] >= '0' && p[2] <= '9')))
            f |= TORO_F_TIME;
    if (any(buf, F_PERIOD))
        f |= TORO_F_PERIOD;
    if (any(buf, F_POLAR))
        f |= TORO_F_POLAR;
    if (any(buf, F_CONTRAST))
        f |= TORO_F_CONTRAST;
    if (any(buf, F_CAUSE))
        f |= TORO_F_CAUSE;
    if (starts(buf, F_STEP))
        f |= TORO_F_STEP;
    return f;
}

const char *toro_qkind_advice_note(const char *lang)
{
    return lang && strcmp(lang, "en") == 0 ? TORO_ADVICE_NOTE_EN : TORO_ADVICE_NOTE_PT;
}
