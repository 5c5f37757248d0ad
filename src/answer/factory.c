/* factory.c: maps an answerer name to an instance (see factory.h). A
 * provider that is selected but lacks its configuration is not an error: the
 * service still answers, with the extractive answerer, and says so in the
 * log. A misspelled name is an error, so a typo never silently changes the
 * answerer. It does not wrap answerers (fault injection stays with the caller). */
#include <stdlib.h>
#include <string.h>

#include "answer/factory.h"
#include "answer/prompt.h"
#include "core/error.h"
#include "core/log.h"

typedef int (*ctor_fn)(toro_kb_t *kb, toro_answerer_t **out, char **err);

static const struct {
    const char *name;
    ctor_fn ctor;
} PROVIDERS[] = {
    {"openai", toro_answerer_openai_new},
    {"bedrock", toro_answerer_bedrock_new},
    {"bedrock-kb", toro_answerer_bedrock_kb_new},
};

int toro_answerer_create(const char *name, toro_kb_t *kb, toro_answerer_t **out, char **err)
{
    *out = NULL;
    if (err)
        *err = NULL;
    if (!name || !*name)
        name = getenv("TORO_ANSWERER");
    if (!name || !*name)
        name = "extractive";
    if (strcmp(name, "extractive") == 0)
        return toro_answerer_extractive_new(kb, out);
    for (size_t i = 0; i < sizeof(PROVIDERS) / sizeof(PROVIDERS[0]); i++) {
        if (strcmp(name, PROVIDERS[i].name) != 0)
            continue;
        char *why = NULL;
        int rc = PROVIDERS[i].ctor(kb, out, &why);
        if (rc == TORO_EUNAVAIL) {
            toro_log_warn("answer", NULL, "%s; falling back to the extractive answerer",
                          why ? why : "provider not configured");
            free(why);
            return toro_answerer_extractive_new(kb, out);
        }
        if (rc) {
            if (err)
                *err = why ? why : toro_prompt_strcat3("cannot create the ", name, " answerer");
            else
                free(why);
            return rc;
        }
        free(why);
        toro_log_info("answer", NULL, "answerer: %s", name);
        return 0;
    }
    if (err)
        *err = toro_prompt_strcat3("unknown answerer '", name, "' (extractive|openai|bedrock|bedrock-kb)");
    return TORO_EINVAL;
}
