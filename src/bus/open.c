/* open.c: --bus URL to a bus implementation (see open.h). It only
 * dispatches: what each bus does with its URL lives in local.c, nats.c and sns.c. */
#include "bus/open.h"

#include <assert.h>
#include <string.h>

#include "core/error.h"

/* How long a fetched local message stays invisible before it is redelivered. */
#define LOCAL_LEASE_MS 60000

toro_bus_url_kind_t toro_bus_url_kind(const char *url)
{
    if (!url)
        return TORO_BUS_URL_BAD;
    if (strcmp(url, "local") == 0)
        return TORO_BUS_URL_LOCAL;
    if (strncmp(url, "nats://", 7) == 0)
        return TORO_BUS_URL_NATS;
    if (strncmp(url, "sns://", 6) == 0)
        return TORO_BUS_URL_SNS;
    return TORO_BUS_URL_BAD;
}

int toro_bus_open(const char *url, toro_outbox_t *outbox, toro_bus_t **out, char **err)
{
    assert(out);
    *out = NULL;
    switch (toro_bus_url_kind(url)) {
    case TORO_BUS_URL_LOCAL:
        if (!outbox) {
            toro_set_err(err, "--bus local is served from the outbox of a sqlite:// store; there is none here");
            return TORO_EINVAL;
        }
        return toro_bus_local_open(outbox, LOCAL_LEASE_MS, out, err);
    case TORO_BUS_URL_NATS:
        return toro_bus_nats_open(url, out, err);
    case TORO_BUS_URL_SNS:
        return toro_bus_sns_open(url, out, err);
    case TORO_BUS_URL_BAD:
        break;
    }
    toro_set_err(err, "--bus must be local, nats://HOST:PORT or sns://REGION, not '%s'", url ? url : "");
    return TORO_EINVAL;
}
