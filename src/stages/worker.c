/* worker.c: the loop of a stage worker thread (the Lambda runtime of the
 * reference): fetch one message of its topic, run the stage, repeat until
 * told to stop. A message in flight when stop is set is finished first. */
#include "core/error.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "stages/stages.h"

#include <string.h>

void *toro_worker_main(void *arg)
{
    toro_worker_t *w = arg;
    int is_process = strcmp(w->topic, TORO_TOPIC_PROCESS) == 0;
    while (!atomic_load(w->stop)) {
        toro_bus_msg_t msg;
        int rc = toro_bus_fetch(w->ctx->bus, w->topic, 500, &msg);
        if (rc == TORO_EEMPTY)
            continue;
        if (rc) {
            toro_log_error("worker", NULL, "fetch from %s failed: %s", w->topic, toro_strerror(rc));
            toro_sleep_ms(200);
            continue;
        }
        int64_t t0 = toro_mono_ms();
        if (is_process)
            toro_stage_process(w->ctx, &msg);
        else
            toro_stage_notify(w->ctx, &msg);
        toro_metrics_observe_ms(is_process ? TORO_HIST_PROCESS : TORO_HIST_NOTIFY, (double)(toro_mono_ms() - t0));
        toro_bus_msg_clear(&msg);
    }
    return NULL;
}
