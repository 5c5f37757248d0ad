/* stage.c: what the stages share: the context defaults and the retry
 * backoff used by process and notify alike. */
#include <string.h>

#include "core/util.h"
#include "stages/stages.h"

void toro_stage_ctx_defaults(toro_stage_ctx_t *ctx)
{
    assert(ctx);
    memset(ctx, 0, sizeof *ctx);
    ctx->max_attempts = 3;
    ctx->backoff_base_ms = 200;
    ctx->backoff_max_ms = 5000;
    ctx->max_deliveries = 10;
}

int toro_stage_backoff_ms(const toro_stage_ctx_t *ctx, int attempt)
{
    assert(ctx && ctx->backoff_base_ms > 0 && ctx->backoff_max_ms >= ctx->backoff_base_ms);
    long d = ctx->backoff_base_ms;
    for (int i = 1; i < attempt && d < ctx->backoff_max_ms; i++)
        d *= 2;
    if (d > ctx->backoff_max_ms)
        d = ctx->backoff_max_ms;
    /* up to 25% jitter so retries of many questions do not align */
    long jitter = d / 4 > 0 ? (long)((unsigned)toro_mono_ms() % (unsigned long)(d / 4 + 1)) : 0;
    return (int)(d - jitter);
}
