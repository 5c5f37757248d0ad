/* aws_peer.h: starting and stopping the local AWS protocol peers of the bus
 * tests (moto_server, the API Gateway peer script) from the shared venv at
 * $TORO_SOURCE_DIR/.venv. Each peer runs on a free port of its own and is
 * stopped by its pid. A missing venv or peer is a skip with a reason on
 * stderr, a failure when CI=true (peer_missing says which). */
#ifndef TORO_TEST_AWS_PEER_H
#define TORO_TEST_AWS_PEER_H

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
#include <unistd.h>

#include "core/util.h"

/* Fake credentials for the peers (never real ones), session token included. */
static inline void peer_fake_credentials(void)
{
    setenv("AWS_ACCESS_KEY_ID", "AKIDTOROTEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "toro-test-secret", 1);
    setenv("AWS_SESSION_TOKEN", "toro-test-session-token", 1);
    setenv("AWS_REGION", "us-east-1", 1);
}

/* $TORO_SOURCE_DIR/.venv/bin/name (or ./.venv/...) into out; false when absent. */
static inline bool peer_venv_bin(const char *name, char *out, size_t cap)
{
    const char *src = getenv("TORO_SOURCE_DIR");
    snprintf(out, cap, "%s/.venv/bin/%s", src ? src : ".", name);
    return access(out, X_OK) == 0;
}

/* Prints why the peer is missing; returns the setup result (-1 fails under CI). */
static inline int peer_missing(const char *test, const char *what)
{
    const char *ci = getenv("CI");
    bool in_ci = ci && strcmp(ci, "true") == 0;
    fprintf(stderr, "%s: %s: %s\n", test, what, in_ci ? "failing (CI=true)" : "tests skipped (scripts/test.sh creates .venv with moto)");
    return in_ci ? -1 : 0;
}

static inline int peer_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &n) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static inline bool peer_port_up(int port, int timeout_ms)
{
    int64_t end = toro_mono_ms() + timeout_ms;
    while (toro_mono_ms() < end) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        bool up = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0)
            close(fd);
        if (up)
            return true;
        toro_sleep_ms(100);
    }
    return false;
}

/* Starts argv (output to /dev/null) and waits until port accepts; pid or -1. */
static inline pid_t peer_start(char *const argv[], int port)
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid > 0 && !peer_port_up(port, 30000)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

static inline void peer_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < 50; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        toro_sleep_ms(100);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

#endif
