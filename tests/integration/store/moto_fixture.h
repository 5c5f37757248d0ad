/* moto_fixture.h: a moto server (moto_server, PyPI "moto[server]") for the
 * DynamoDB store tests: started on a free port from the test, stopped by
 * its pid. moto_server is TORO_MOTO_SERVER, else .venv/bin/moto_server
 * under TORO_SOURCE_DIR (or the working directory). It is run through the
 * python beside it with werkzeug's threaded mode off: moto's DynamoDB has
 * no per-item lock, so two concurrent conditional updates of one item can
 * both pass on the threaded server, where DynamoDB applies each conditional
 * write atomically (the outbox claim test found it). One request at a time
 * models that guarantee. When it is missing or
 * does not answer, moto_start returns -1 after printing why on stderr; the
 * tests then fail under CI (env CI=true) and skip elsewhere, as the
 * PostgreSQL variant does. */
#ifndef TORO_TESTS_MOTO_FIXTURE_H
#define TORO_TESTS_MOTO_FIXTURE_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct moto {
    pid_t pid;
    int port;
    char endpoint[64]; /* http://127.0.0.1:PORT */
} moto_t;

static inline bool moto_in_ci(void)
{
    const char *ci = getenv("CI");
    return ci && strcmp(ci, "true") == 0;
}

static inline int moto_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static inline bool moto_answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static inline void moto_stop(moto_t *m)
{
    if (m->pid > 0) {
        kill(m->pid, SIGTERM);
        waitpid(m->pid, NULL, 0);
    }
    m->pid = 0;
}

/* 0 with m running, or -1 (why on stderr, prefixed by who). */
static inline int moto_start(moto_t *m, const char *who)
{
    char bin[1024];
    const char *env = getenv("TORO_MOTO_SERVER"), *src = getenv("TORO_SOURCE_DIR");
    snprintf(bin, sizeof bin, "%s%s.venv/bin/moto_server", src ? src : "", src ? "/" : "");
    if (env && *env)
        snprintf(bin, sizeof bin, "%s", env);
    memset(m, 0, sizeof *m);
    if (access(bin, X_OK) != 0 || (m->port = moto_free_port()) < 0) { /* (python sits beside it in a venv) */
        fprintf(stderr, "%s: moto_server not found at %s (pip install 'moto[server]' into .venv, or set "
                        "TORO_MOTO_SERVER): %s\n", who, bin, moto_in_ci() ? "failing (CI=true)" : "DynamoDB tests skipped");
        return -1;
    }
    snprintf(m->endpoint, sizeof m->endpoint, "http://127.0.0.1:%d", m->port);
    char port[16];
    snprintf(port, sizeof port, "%d", m->port);
    m->pid = fork();
    if (m->pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        char py[1040];
        const char *slash = strrchr(bin, '/');
        snprintf(py, sizeof py, "%.*spython", slash ? (int)(slash - bin + 1) : 0, bin);
        execl(py, py, "-c",
              "import sys, moto.server as m\n"
              "run = m.run_simple\n"
              "m.run_simple = lambda *a, **k: run(*a, **dict(k, threaded=False))\n"
              "m.main(['-H', '127.0.0.1', '-p', sys.argv[1]])\n",
              port, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; m->pid > 0 && i < 300; i++) { /* 30 s: a loaded machine imports moto slowly */
        if (moto_answers(m->port))
            return 0;
        if (waitpid(m->pid, NULL, WNOHANG) == m->pid) {
            m->pid = 0; /* exited (port taken, import error): reaped */
            break;
        }
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    fprintf(stderr, "%s: moto_server (%s) did not answer on port %d: %s\n", who, bin, m->port,
            moto_in_ci() ? "failing (CI=true)" : "DynamoDB tests skipped");
    moto_stop(m);
    return -1;
}

#endif
