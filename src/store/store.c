/* store.c: what both stores share: the default of optional methods and the
 * freeing of store-owned rows. No engine code lives here. */
#include <stdlib.h>

#include "core/error.h"
#include "store/store.h"

int toro_store_create_each(toro_store_t *s, const toro_question_t *qs, const toro_event_t *evs, size_t n,
                           int *results)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        results[i] = toro_store_create_question(s, &qs[i], &evs[i]);
        if (results[i] && !rc)
            rc = results[i];
    }
    return rc;
}

void toro_connections_free(toro_connection_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].connection_id);
        free(items[i].user_id);
        free(items[i].node);
    }
    free(items);
}
