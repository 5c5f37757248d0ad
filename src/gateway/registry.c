/* registry.c: registered WebSockets by id and the posted-message queue
 * (see registry.h). */
#include "gateway/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/util.h"

static unsigned hash_id(const char *s)
{
    unsigned h = 2166136261u;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h % GW_REGISTRY_BUCKETS;
}

void gw_registry_init(gw_registry_t *reg)
{
    memset(reg, 0, sizeof *reg);
    pthread_mutex_init(&reg->lock, NULL);
}

void gw_registry_destroy(gw_registry_t *reg)
{
    gw_posted_t *m = reg->pending;
    while (m) {
        gw_posted_t *next = m->next;
        gw_posted_free(m);
        m = next;
    }
    reg->pending = reg->pending_tail = NULL;
    pthread_mutex_destroy(&reg->lock);
}

void gw_registry_add(gw_registry_t *reg, gw_client_t *cl)
{
    pthread_mutex_lock(&reg->lock);
    unsigned h = hash_id(cl->connection_id);
    cl->map_next = reg->map[h];
    reg->map[h] = cl;
    cl->in_map = true;
    pthread_mutex_unlock(&reg->lock);
}

void gw_registry_remove(gw_registry_t *reg, gw_client_t *cl)
{
    if (!cl->in_map)
        return;
    pthread_mutex_lock(&reg->lock);
    gw_client_t **pp = &reg->map[hash_id(cl->connection_id)];
    while (*pp && *pp != cl)
        pp = &(*pp)->map_next;
    if (*pp)
        *pp = cl->map_next;
    cl->in_map = false;
    pthread_mutex_unlock(&reg->lock);
}

static gw_client_t *find_locked(gw_registry_t *reg, const char *id)
{
    for (gw_client_t *cl = reg->map[hash_id(id)]; cl; cl = cl->map_next)
        if (strcmp(cl->connection_id, id) == 0)
            return cl;
    return NULL;
}

int gw_registry_post(gw_registry_t *reg, const char *connection_id, const char *message)
{
    gw_posted_t *m = calloc(1, sizeof *m);
    if (!m)
        return TORO_ENOMEM;
    snprintf(m->connection_id, sizeof m->connection_id, "%s", connection_id);
    m->text = strdup(message);
    if (!m->text) {
        free(m);
        return TORO_ENOMEM;
    }
    pthread_mutex_lock(&reg->lock);
    if (!find_locked(reg, connection_id)) {
        pthread_mutex_unlock(&reg->lock);
        gw_posted_free(m);
        return TORO_ENOTFOUND;
    }
    if (reg->pending_tail)
        reg->pending_tail->next = m;
    else
        reg->pending = m;
    reg->pending_tail = m;
    pthread_mutex_unlock(&reg->lock);
    return 0;
}

gw_posted_t *gw_registry_pop(gw_registry_t *reg, gw_client_t **cl)
{
    pthread_mutex_lock(&reg->lock);
    gw_posted_t *m = reg->pending;
    if (m) {
        reg->pending = m->next;
        if (!reg->pending)
            reg->pending_tail = NULL;
    }
    *cl = m ? find_locked(reg, m->connection_id) : NULL;
    pthread_mutex_unlock(&reg->lock);
    return m;
}

void gw_posted_free(gw_posted_t *m)
{
    if (!m)
        return;
    free(m->text);
    free(m);
}

/* Copies of the rows (the loop thread may close a socket once the lock is released). */
static size_t snapshot(gw_registry_t *reg, const char *node, toro_connection_t **out)
{
    size_t n = 0, cap = 0;
    toro_connection_t *rows = NULL;
    pthread_mutex_lock(&reg->lock);
    for (int b = 0; b < GW_REGISTRY_BUCKETS; b++) {
        for (gw_client_t *cl = reg->map[b]; cl; cl = cl->map_next) {
            toro_connection_t *grown = toro_grow(rows, &cap, n, sizeof *rows, 64);
            if (!grown)
                break;
            rows = grown;
            rows[n].connection_id = strdup(cl->connection_id);
            rows[n].user_id = strdup(cl->user_id);
            rows[n].node = strdup(node);
            rows[n].connected_at = toro_now_ms();
            n++;
        }
    }
    pthread_mutex_unlock(&reg->lock);
    *out = rows;
    return n;
}

int gw_registry_resync(gw_registry_t *reg, toro_store_t *store, const char *node)
{
    toro_connection_t *rows = NULL;
    size_t n = snapshot(reg, node, &rows);
    int written = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i].connection_id && rows[i].user_id && rows[i].node &&
            toro_store_put_connection(store, &rows[i]) == 0)
            written++;
    toro_connections_free(rows, n);
    toro_log_info("gateway", NULL, "rewrote %d of %zu connection rows after a reconnect", written, n);
    return written;
}
