/* factory.h: choosing the answerer by name (--answerer / $TORO_ANSWERER) and
 * the constructors of the model-backed answerers. Each provider reads its own
 * configuration from the environment when created:
 *
 *   extractive  built in, needs nothing (the default and the fallback)
 *   openai      TORO_OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1; default
 *               https://api.openai.com/v1 when only an API key is set),
 *               TORO_OPENAI_MODEL (default gpt-4o-mini), OPENAI_API_KEY or
 *               TORO_OPENAI_API_KEY (optional for local servers)
 *   bedrock     AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *               (optional), AWS_REGION / AWS_DEFAULT_REGION (default us-east-1),
 *               TORO_BEDROCK_MODEL_ID (default us.amazon.nova-pro-v1:0),
 *               TORO_BEDROCK_ENDPOINT (override of https://bedrock-runtime.REGION.amazonaws.com)
 *   bedrock-kb  the AWS variables above, TORO_BEDROCK_KB_ID (required),
 *               TORO_BEDROCK_MODEL_ARN (default the Nova Pro foundation-model ARN
 *               of the region), TORO_BEDROCK_AGENT_ENDPOINT (override of
 *               https://bedrock-agent-runtime.REGION.amazonaws.com)
 *   all         TORO_PROVIDER_TIMEOUT_MS, TORO_PROVIDER_RETRIES,
 *               TORO_PROVIDER_RETRY_AFTER_MAX_MS, TORO_PROVIDER_BACKOFF_MS,
 *               TORO_PROVIDER_MAX_TOKENS, TORO_PROVIDER_TEMPERATURE (see prompt.h)
 *
 * The answer's model field says who answered: "extractive",
 * "openai:<model>", "bedrock:<model id>", "bedrock-kb:<model ARN>". */
#ifndef TORO_ANSWER_FACTORY_H
#define TORO_ANSWER_FACTORY_H

#include "answer/answer.h"
#include "kb/kb.h"

/* Why: the one place that maps a name to an answerer. name NULL means
 * $TORO_ANSWERER, or "extractive" when unset. A provider that is selected but
 * not configured logs a warning and falls back to extractive (returns 0).
 * An unknown name returns TORO_EINVAL with *err (caller frees). Borrows kb. */
int toro_answerer_create(const char *name, toro_kb_t *kb, toro_answerer_t **out, char **err);

/* Why: the providers, usable on their own (tests). Each returns
 * TORO_EUNAVAIL with *err saying what is missing when not configured. */
int toro_answerer_openai_new(toro_kb_t *kb, toro_answerer_t **out, char **err);
int toro_answerer_bedrock_new(toro_kb_t *kb, toro_answerer_t **out, char **err);
int toro_answerer_bedrock_kb_new(toro_kb_t *kb, toro_answerer_t **out, char **err);

#endif
