/*
 * vchan-peer: a libxenvchan peer for interop tests, built on Xen's own libxenvchan.
 *
 *   vchan-peer [-s LEFT_MIN,RIGHT_MIN] server <client-domid> <xs-path> <mode> [args]
 *   vchan-peer client <server-domid> <xs-path> <mode> [args]
 *
 * modes:
 *   echo                 write back everything read, until the peer closes
 *   source <bytes> <seed> write a deterministic pattern in varied chunks (alternating
 *                        libxenvchan_send/recv packets and libxenvchan_write/read streams),
 *                        read the echo back and verify it, then close
 *
 * Prints "vchan-peer: ok ..." and exits 0 on success; exits 1 with a message otherwise.
 * The client retries libxenvchan_client_init for up to 10 s (the server may start later).
 *
 * Build in a Xen domain:  gcc -O2 -o vchan-peer vchan-peer.c -lxenvchan
 * Build on a host without Xen (tests): gcc -O2 -o vchan-peer vchan-peer.c fake_xen.c \
 *     /usr/lib/x86_64-linux-gnu/libxenvchan.a
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libxenvchan.h>

/* The pattern both our Rust peers and this program use. */
static uint8_t pattern(uint64_t i, uint64_t seed)
{
    return (uint8_t)(i * 131u + seed * 7u + (i >> 9));
}

static size_t chunk_len(uint64_t n)
{
    return (size_t)((n * 37u) % 1000u) + 1u;
}

static int fail(const char *what)
{
    fprintf(stderr, "vchan-peer: %s\n", what);
    return 1;
}

static int echo(struct libxenvchan *ctrl)
{
    static char buf[65536];
    uint64_t total = 0;
    for (;;) {
        int n = libxenvchan_read(ctrl, buf, sizeof buf);
        if (n < 0)
            break; /* peer closed and drained */
        if (n > 0 && libxenvchan_write(ctrl, buf, (size_t)n) != n)
            return fail("write failed");
        total += (uint64_t)n;
    }
    printf("vchan-peer: ok echoed %llu bytes\n", (unsigned long long)total);
    return 0;
}

static int read_all(struct libxenvchan *ctrl, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        int n = libxenvchan_read(ctrl, buf + got, len - got);
        if (n < 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int source(struct libxenvchan *ctrl, uint64_t bytes, uint64_t seed)
{
    double start = now_s();
    uint8_t out[1000], back[1000];
    uint64_t off = 0;
    for (uint64_t k = 0; off < bytes; k++) {
        size_t n = chunk_len(k);
        if (n > bytes - off)
            n = (size_t)(bytes - off);
        for (size_t i = 0; i < n; i++)
            out[i] = pattern(off + i, seed);
        if (k % 2 == 0) {
            if (libxenvchan_send(ctrl, out, n) != (int)n)
                return fail("libxenvchan_send failed");
            if (libxenvchan_recv(ctrl, back, n) != (int)n)
                return fail("libxenvchan_recv failed");
        } else {
            if (libxenvchan_write(ctrl, out, n) != (int)n)
                return fail("libxenvchan_write failed");
            if (read_all(ctrl, back, n))
                return fail("libxenvchan_read failed");
        }
        if (memcmp(out, back, n) != 0)
            return fail("echo differs from what was sent");
        off += n;
    }
    double secs = now_s() - start;
    printf("vchan-peer: ok sent and verified %llu bytes in %.0f ms (%.1f MB/s echoed)\n",
           (unsigned long long)bytes, secs * 1e3, secs > 0 ? (double)bytes / secs / 1e6 : 0.0);
    return 0;
}

int main(int argc, char **argv)
{
    size_t left_min = 1024, right_min = 2048;
    int opt;
    while ((opt = getopt(argc, argv, "s:")) != -1) {
        if (opt != 's' || sscanf(optarg, "%zu,%zu", &left_min, &right_min) != 2)
            return fail("usage: vchan-peer [-s LEFT_MIN,RIGHT_MIN] server|client DOMID PATH MODE [ARGS]");
    }
    if (argc - optind < 4)
        return fail("usage: vchan-peer [-s LEFT_MIN,RIGHT_MIN] server|client DOMID PATH MODE [ARGS]");
    const char *role = argv[optind], *path = argv[optind + 2], *mode = argv[optind + 3];
    int domid = atoi(argv[optind + 1]);
    struct libxenvchan *ctrl = NULL;
    if (strcmp(role, "server") == 0) {
        ctrl = libxenvchan_server_init(NULL, domid, path, left_min, right_min);
    } else if (strcmp(role, "client") == 0) {
        for (int tries = 0; !ctrl && tries < 1000; tries++) {
            ctrl = libxenvchan_client_init(NULL, domid, path);
            if (!ctrl) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
    } else {
        return fail("role must be server or client");
    }
    if (!ctrl)
        return fail("libxenvchan init failed");
    ctrl->blocking = 1;
    int rc;
    if (strcmp(mode, "echo") == 0) {
        rc = echo(ctrl);
    } else if (strcmp(mode, "source") == 0 && argc - optind >= 6) {
        rc = source(ctrl, strtoull(argv[optind + 4], NULL, 0), strtoull(argv[optind + 5], NULL, 0));
    } else {
        rc = fail("mode must be echo or source BYTES SEED");
    }
    libxenvchan_close(ctrl);
    fprintf(stderr, "vchan-peer: closed\n");
    return rc;
}
