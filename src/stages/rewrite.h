/* rewrite.h: the follow-up rewrite of the process stage. A question asked
 * inside a conversation often leans on the previous turn: "E a LCA?" after
 * "Quanto rende o CDB?", "e quanto rende?" after "O que é LCA?", "and for
 * FIIs?" after "How are CDBs taxed?". Retrieval needs a standalone query, so
 * such a follow-up is rewritten by rules (no model, deterministic):
 *   - a follow-up opens with a continuation word ("e", "and", "what about",
 *     "e quanto a"...), leans on a pronoun ("dele", "isso", "it"...), or is
 *     a fragment without a question word of at most three content words;
 *   - a follow-up without a question word or pronoun that names an acronym
 *     or a capitalized name brings a new subject: the subject of the
 *     previous question (its acronyms, else its trailing noun phrase) is
 *     replaced by the follow-up's words;
 *   - any other follow-up asks something new of the same subject ("e quanto
 *     rende?", "Qual o prazo dele?", "E o prazo?"): its pronouns are dropped
 *     and the previous subject appended.
 * It knows words (stop words of kb/analyzer.h), never particular questions
 * or documents. It does not read the store. */
#ifndef TORO_STAGES_REWRITE_H
#define TORO_STAGES_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

/* Why: whether question leans on an earlier turn (the rules above). */
bool toro_rewrite_is_followup(const char *question);

/* Why: the process stage's standalone query for a follow-up. previous holds
 * the earlier questions of the conversation in their standalone form
 * (their retrieval query when they had one), newest first; the newest with
 * a subject is used. Returns 0 with *out NULL when question stands alone (or
 * nothing can be added), else 0 with *out the rewritten query (caller
 * frees); TORO_ENOMEM with *out NULL. */
int toro_rewrite_followup(const char *question, const char *const *previous, size_t n_previous, char **out);

#endif
