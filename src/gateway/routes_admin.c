/* routes_admin.c: the operator's routes, for tokens with the admin role
 * (a "roles" claim holding "admin", or "role": "admin"; see auth.h).
 * POST /admin/kb/reload re-reads the knowledge-base snapshot at --kb: the
 * swap itself is the node's (cfg->kb_reload); questions in flight finish on
 * the snapshot they started with. */
#include <jansson.h>
#include <stdlib.h>

#include "core/kbinfo.h"
#include "gateway/routes.h"

#define ADMIN_ROLE "admin"

void gw_route_admin_kb_reload(gw_routes_t *rt, const char *user, const char *token, gw_response_t *r)
{
    if (!user || !token || !toro_auth_has_role(token, ADMIN_ROLE)) {
        gw_json_error_code(r, 403, "admin_required",
                           user ? "this route needs the admin role in the token (\"roles\": [\"admin\"])"
                                : "this route needs a bearer token with the admin role (authentication is off)");
        return;
    }
    if (!rt->cfg->kb_reload) {
        gw_json_error(r, 404, "not found");
        return;
    }
    char *why = NULL;
    int rc = rt->cfg->kb_reload(rt->cfg->kb_reload_ud, &why);
    char v[128];
    toro_kbinfo_get(v, sizeof v);
    if (rc != 0) {
        gw_http_json(r, 422, json_pack("{s:b, s:s, s:s, s:{s:s}}", "success", 0, "error",
                                       why ? why : "the snapshot was refused", "code", "kb_refused", "data",
                                       "kb_version", v));
    } else {
        gw_http_ok(r, 200, json_pack("{s:s, s:s}", "kb_version", v, "reloaded_by", user));
    }
    free(why);
}
