/* web.h: the static web UI embedded in the binary (generated from web/ at
 * build time by scripts/embed_web.cmake). */
#ifndef TORO_GATEWAY_WEB_H
#define TORO_GATEWAY_WEB_H

#include <stddef.h>

typedef struct toro_web_asset {
    const char *path;          /* "/index.html" */
    const char *mime;          /* Content-Type */
    const unsigned char *data; /* file bytes */
    size_t len;
} toro_web_asset_t;

extern const toro_web_asset_t toro_web_assets[]; /* ends with a NULL path */

#endif
