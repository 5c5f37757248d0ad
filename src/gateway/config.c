/* config.c: the gateway's options, shared by `toro serve` and `toro api`,
 * and the rules that complete them (auth mode, secrets from files or the
 * environment, TLS file names). Secrets are never printed; TLS files are
 * only named here and loaded by toro_gateway_new (tls.c). */
#include <openssl/rand.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "gateway/config.h"

void toro_gateway_config_defaults(toro_gateway_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 8080;
    cfg->node = NULL;
    cfg->max_body = 64 * 1024;
    cfg->max_header = 16 * 1024;
    cfg->max_ws_message = 64 * 1024;
    cfg->max_ws_backlog = 4 * 1024 * 1024;
    cfg->max_output = 256 * 1024;
    cfg->send_timeout_ms = 30000;
    cfg->header_timeout_ms = 10000;
    cfg->idle_timeout_ms = 75000;
    cfg->ws_ping_ms = 30000;
    cfg->ws_dead_ms = 90000;
    cfg->max_connections = 20000;
    cfg->auth_mode = TORO_AUTH_AUTO;
    cfg->auth.leeway_s = 30;
    cfg->auth.dev_ttl_s = 12 * 3600;
    cfg->user_rate_per_min = 120;
    cfg->user_burst = 60;
    cfg->read_rate_per_min = 600;
    cfg->read_burst = 120;
    cfg->max_ws_per_user = 10;
    cfg->ws_msg_rate = 5;
    cfg->ws_msg_burst = 20;
    cfg->cors_origins = NULL;
}

static int bad(const char *opt, const char *what)
{
    fprintf(stderr, "toro: %s needs %s\n", opt, what);
    return -1;
}

static int read_secret_file(const char *path, toro_auth_t *a)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "toro: cannot read the JWT secret file %s\n", path);
        return -1;
    }
    size_t n = fread(a->secret, 1, sizeof a->secret, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    while (n > 0 && (a->secret[n - 1] == '\n' || a->secret[n - 1] == '\r'))
        n--;
    if (more || n < 32) {
        fprintf(stderr, "toro: the JWT secret in %s must be 32 to 256 bytes\n", path);
        return -1;
    }
    a->secret_len = n;
    return 0;
}

/* Options with a number: the field it sets and how. */
typedef enum { NUM_INT, NUM_SIZE, NUM_RATE, NUM_READ_RATE } num_kind_t;
static const struct num_opt {
    const char *name;
    long min, max;
    const char *what; /* for "--x needs <what>" */
    num_kind_t kind;
    size_t off;       /* of the int or size_t field (NUM_INT, NUM_SIZE) */
} num_opts[] = {
    {"--port", 0, 65535, "a port from 0 to 65535", NUM_INT, offsetof(toro_gateway_config_t, port)},
    {"--rate-limit", 0, 1000000, "requests per user per minute (0 = unlimited)", NUM_RATE, 0},
    {"--read-rate-limit", 0, 1000000, "reads per user per minute (0 = unlimited)", NUM_READ_RATE, 0},
    {"--max-ws-per-user", 1, 100000, "a number from 1 to 100000", NUM_INT,
     offsetof(toro_gateway_config_t, max_ws_per_user)},
    {"--max-connections", 1, 1000000, "a number from 1 to 1000000", NUM_INT,
     offsetof(toro_gateway_config_t, max_connections)},
    {"--header-timeout-ms", 100, 600000, "milliseconds from 100 to 600000", NUM_INT,
     offsetof(toro_gateway_config_t, header_timeout_ms)},
    {"--idle-timeout-ms", 100, 3600000, "milliseconds from 100 to 3600000", NUM_INT,
     offsetof(toro_gateway_config_t, idle_timeout_ms)},
    {"--send-timeout-ms", 100, 3600000, "milliseconds from 100 to 3600000", NUM_INT,
     offsetof(toro_gateway_config_t, send_timeout_ms)},
    {"--max-body", 1024, 16 * 1024 * 1024, "a size in bytes from 1024 to 16777216", NUM_SIZE,
     offsetof(toro_gateway_config_t, max_body)},
};

/* Options with a string (borrowed from argv): the const char * field it sets. */
static const struct str_opt {
    const char *name;
    const char *what;
    bool nonempty;    /* "" is refused */
    size_t off;
} str_opts[] = {
    {"--host", "an IPv4 address", false, offsetof(toro_gateway_config_t, host)},
    {"--node", "a name", false, offsetof(toro_gateway_config_t, node)},
    {"--cors-origins", "a comma-separated list of origins", false, offsetof(toro_gateway_config_t, cors_origins)},
    {"--allowed-hosts", "a comma-separated list of host names (or *)", true,
     offsetof(toro_gateway_config_t, allowed_hosts)},
    {"--tls-cert", "a PEM certificate file", true, offsetof(toro_gateway_config_t, tls_cert)},
    {"--tls-key", "a PEM private key file", true, offsetof(toro_gateway_config_t, tls_key)},
};

static int set_number(toro_gateway_config_t *cfg, const struct num_opt *o, const char *v)
{
    long n;
    if (!v || toro_parse_long(v, o->min, o->max, &n) != 0)
        return bad(o->name, o->what);
    char *field = (char *)cfg + o->off;
    switch (o->kind) {
    case NUM_INT: *(int *)field = (int)n; break;
    case NUM_SIZE: *(size_t *)field = (size_t)n; break;
    case NUM_RATE:
        cfg->user_rate_per_min = (double)n;
        cfg->user_burst = n > 0 ? (double)(n / 2 > 1 ? n / 2 : 1) : 1;
        break;
    case NUM_READ_RATE:
        cfg->read_rate_per_min = (double)n;
        cfg->read_burst = n > 0 ? (double)(n / 5 > 1 ? n / 5 : 1) : 1;
        break;
    }
    return 1;
}

/* --auth and the JWT options: 1 consumed, 0 not one of them, -1 bad value. */
static int set_auth(toro_gateway_config_t *cfg, const char *a, const char *v)
{
    if (strcmp(a, "--auth") == 0) {
        if (v && strcmp(v, "none") == 0)
            cfg->auth_mode = TORO_AUTH_NONE;
        else if (v && strcmp(v, "dev") == 0)
            cfg->auth_mode = TORO_AUTH_DEV;
        else if (v && strcmp(v, "jwt") == 0)
            cfg->auth_mode = TORO_AUTH_JWT;
        else
            return bad(a, "none, dev or jwt");
    } else if (strcmp(a, "--jwt-secret-file") == 0) {
        if (!v)
            return bad(a, "a file name");
        if (read_secret_file(v, &cfg->auth) != 0)
            return -1;
    } else if (strcmp(a, "--jwt-issuer") == 0) {
        if (!v || strlen(v) >= sizeof cfg->auth.issuer)
            return bad(a, "an issuer of at most 127 bytes");
        snprintf(cfg->auth.issuer, sizeof cfg->auth.issuer, "%s", v);
    } else if (strcmp(a, "--jwt-audience") == 0) {
        if (!v || strlen(v) >= sizeof cfg->auth.audience)
            return bad(a, "an audience of at most 127 bytes");
        snprintf(cfg->auth.audience, sizeof cfg->auth.audience, "%s", v);
    } else {
        return 0;
    }
    return 1;
}

int toro_gateway_parse_option(toro_gateway_config_t *cfg, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int rc = -2; /* not found yet */
    for (size_t k = 0; rc == -2 && k < sizeof num_opts / sizeof num_opts[0]; k++)
        if (strcmp(a, num_opts[k].name) == 0)
            rc = set_number(cfg, &num_opts[k], v);
    for (size_t k = 0; rc == -2 && k < sizeof str_opts / sizeof str_opts[0]; k++) {
        if (strcmp(a, str_opts[k].name) != 0)
            continue;
        if (!v || (str_opts[k].nonempty && !*v))
            return bad(a, str_opts[k].what);
        *(const char **)((char *)cfg + str_opts[k].off) = v;
        rc = 1;
    }
    if (rc == -2)
        rc = set_auth(cfg, a, v);
    if (rc == 1)
        (*i)++;
    return rc;
}

static int is_loopback(const char *host) { return strncmp(host, "127.", 4) == 0; }

/* Reads a secret of 32 to 256 bytes from the environment variable `name`
 * into out. 0 = not set, 1 = read, -1 = bad (message printed). */
static int secret_from_env(const char *name, unsigned char *out, size_t cap, size_t *len)
{
    const char *env = getenv(name);
    if (!env || !*env)
        return 0;
    size_t n = strlen(env);
    if (n < 32 || n > cap) {
        fprintf(stderr, "toro: %s must be 32 to 256 bytes\n", name);
        return -1;
    }
    memcpy(out, env, n);
    *len = n;
    return 1;
}

/* Development mode never signs with the production secret: its key is
 * TORO_DEV_SECRET (shared by the dev-mode apis of a local cluster) or a
 * random one, and its issuer is always toro-dev, which jwt mode refuses. */
static int dev_keys(toro_gateway_config_t *cfg)
{
    unsigned char prod[256];
    size_t prod_len = cfg->auth.secret_len;
    memcpy(prod, cfg->auth.secret, prod_len);
    if (prod_len)
        toro_log_warn("gateway", NULL, "development login: the configured JWT secret is not used (dev tokens are "
                                       "signed with their own key)");
    int got = secret_from_env("TORO_DEV_SECRET", cfg->auth.secret, sizeof cfg->auth.secret, &cfg->auth.secret_len);
    if (got < 0)
        return -1;
    if (got == 1 && prod_len == cfg->auth.secret_len && memcmp(prod, cfg->auth.secret, prod_len) == 0) {
        fprintf(stderr, "toro: TORO_DEV_SECRET must differ from the JWT secret\n");
        return -1;
    }
    if (got == 0) {
        cfg->auth.dev_key_random = 1;
        cfg->auth.secret_len = 32;
        if (RAND_bytes(cfg->auth.secret, 32) != 1) {
            fprintf(stderr, "toro: cannot generate a development secret\n");
            return -1;
        }
    }
    snprintf(cfg->auth.issuer, sizeof cfg->auth.issuer, "%s", TORO_AUTH_DEV_ISSUER);
    cfg->auth.audience[0] = '\0';
    return 0;
}

int toro_gateway_config_finish(toro_gateway_config_t *cfg)
{
    const char *env;
    if (cfg->auth_mode == TORO_AUTH_AUTO && (env = getenv("TORO_AUTH")) && *env) {
        if (strcmp(env, "none") == 0)
            cfg->auth_mode = TORO_AUTH_NONE;
        else if (strcmp(env, "dev") == 0)
            cfg->auth_mode = TORO_AUTH_DEV;
        else if (strcmp(env, "jwt") == 0)
            cfg->auth_mode = TORO_AUTH_JWT;
        else {
            fprintf(stderr, "toro: TORO_AUTH must be none, dev or jwt\n");
            return -1;
        }
    }
    if (!cfg->auth.secret_len &&
        secret_from_env("TORO_JWT_SECRET", cfg->auth.secret, sizeof cfg->auth.secret, &cfg->auth.secret_len) < 0)
        return -1;
    if (cfg->auth_mode == TORO_AUTH_AUTO) {
        /* a configured secret means real tokens: jwt mode even on loopback */
        if (cfg->auth.secret_len) {
            cfg->auth_mode = TORO_AUTH_JWT;
            if (is_loopback(cfg->host))
                toro_log_info("gateway", NULL, "a JWT secret is configured: jwt mode on loopback too (--auth dev "
                                               "for the development login, which uses its own key)");
        } else {
            cfg->auth_mode = is_loopback(cfg->host) ? TORO_AUTH_DEV : TORO_AUTH_JWT;
        }
    }
    if (!cfg->auth.issuer[0] && (env = getenv("TORO_JWT_ISSUER")))
        snprintf(cfg->auth.issuer, sizeof cfg->auth.issuer, "%s", env);
    if (!cfg->auth.audience[0] && (env = getenv("TORO_JWT_AUDIENCE")))
        snprintf(cfg->auth.audience, sizeof cfg->auth.audience, "%s", env);
    if (!cfg->tls_cert && (env = getenv("TORO_TLS_CERT")) && *env)
        cfg->tls_cert = env;
    if (!cfg->tls_key && (env = getenv("TORO_TLS_KEY")) && *env)
        cfg->tls_key = env;
    if (!cfg->tls_cert != !cfg->tls_key) {
        fprintf(stderr, "toro: TLS needs both a certificate and its key (--tls-cert FILE --tls-key FILE, "
                        "or TORO_TLS_CERT and TORO_TLS_KEY)\n");
        return -1;
    }
    switch (cfg->auth_mode) {
    case TORO_AUTH_JWT:
        if (!cfg->auth.secret_len) {
            fprintf(stderr, "toro: --auth jwt needs a secret (--jwt-secret-file FILE or TORO_JWT_SECRET); "
                            "on a loopback address --auth dev needs none\n");
            return -1;
        }
        if (strcmp(cfg->auth.issuer, TORO_AUTH_DEV_ISSUER) == 0) {
            fprintf(stderr, "toro: --jwt-issuer %s is the development login's issuer; jwt mode refuses it\n",
                    TORO_AUTH_DEV_ISSUER);
            return -1;
        }
        cfg->auth.refuse_dev_issuer = 1;
        break;
    case TORO_AUTH_DEV:
        if (dev_keys(cfg) != 0)
            return -1;
        break;
    default:
        break;
    }
    return 0;
}

void toro_gateway_config_announce(const toro_gateway_config_t *cfg)
{
    switch (cfg->auth_mode) {
    case TORO_AUTH_JWT:
        toro_log_info("gateway", NULL, "authentication: JWT HS256 bearer tokens required%s%s%s%s",
                      cfg->auth.issuer[0] ? ", iss=" : "", cfg->auth.issuer, cfg->auth.audience[0] ? ", aud=" : "",
                      cfg->auth.audience);
        break;
    case TORO_AUTH_DEV:
        toro_log_warn("gateway", NULL,
                      "DEVELOPMENT LOGIN ENABLED: POST /auth/dev-login issues a token for any user_id "
                      "(simulated login of the web UI). Use --auth jwt for real users.");
        break;
    case TORO_AUTH_NONE:
        toro_log_warn("gateway", NULL, "AUTHENTICATION DISABLED (--auth none): anyone can act as any user_id");
        break;
    default:
        break;
    }
}
