/* fuzz_gateway.c: libFuzzer harness for the gateway's byte handling: HTTP/1.1
 * parsing and routing (REST handlers on a real SQLite store) and, when the
 * first byte is odd, the WebSocket frame parser and message handler after a
 * valid upgrade. Output goes to a socketpair that is drained and discarded. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/bus.h"
#include "core/log.h"
#include "gateway/internal.h"
#include "store/store.h"

static toro_gateway_t *gw;
static toro_stage_ctx_t ctx;
static char upgrade[1024];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    toro_log_set_level(TORO_LOG_ERROR);
    char dir[] = "/tmp/toro-fuzz-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char path[128];
    snprintf(path, sizeof path, "%s/toro.db", dir);
    toro_store_t *store;
    toro_bus_t *bus;
    char *err = NULL;
    if (toro_store_sqlite_open(path, TORO_DB_SYNC_NORMAL, &store, &err) || toro_bus_local_open(path, 1000, &bus, &err))
        abort();
    toro_stage_ctx_defaults(&ctx);
    ctx.store = store;
    ctx.bus = bus;
    toro_gateway_config_t cfg;
    toro_gateway_config_defaults(&cfg);
    cfg.port = 0;
    cfg.auth_mode = TORO_AUTH_DEV;
    memcpy(cfg.auth.secret, "fuzz-secret-0123456789abcdefghijklmnop", 38);
    cfg.auth.secret_len = 38;
    cfg.user_rate_per_min = 0;
    if (toro_gateway_new(&cfg, &ctx, &gw, &err))
        abort();
    char *tok = toro_auth_issue(&gw->cfg.auth, "fuzzer", 4000000000LL - 100, 50);
    snprintf(upgrade, sizeof upgrade,
             "GET /ws?access_token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
             tok);
    free(tok);
    return 0;
}

static void drain(int fd)
{
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) != 0)
        return 0;
    int sz = 1 << 20;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    gw_conn_t *c = gw_conn_adopt(gw, fds[0], "127.0.0.1");
    if (!c) {
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    int alive = 0;
    if (size > 0 && (data[0] & 1)) {
        alive = gw_conn_feed(gw, c, upgrade, strlen(upgrade)) == 0;
        data++;
        size--;
    } else {
        alive = 1;
    }
    /* feed in two pieces split at a position the input chooses */
    size_t cut = size > 1 ? data[0] % size : size;
    if (alive)
        alive = gw_conn_feed(gw, c, (const char *)data, cut) == 0;
    drain(fds[1]);
    if (alive)
        gw_conn_feed(gw, c, (const char *)data + cut, size - cut);
    drain(fds[1]);
    gw_conn_drop(gw, c); /* closes fds[0] */
    close(fds[1]);
    return 0;
}
