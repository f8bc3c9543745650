/*
 * The benchmark peer: libxenstore (Xen 4.17) doing the same work as the Rust client in
 * tests/bench.rs, against the same daemon in the same run. Prints "<pairs> <seconds>".
 *
 *   libxs_peer PAIRS      PAIRS x (write /bench/c/kN = vN, then read it back)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xenstore.h>

int main(int argc, char **argv)
{
    int pairs = argc > 1 ? atoi(argv[1]) : 1000;
    struct xs_handle *xs = xs_open(0);
    if (!xs) {
        perror("xs_open");
        return 1;
    }
    struct timespec t0, t1;
    char path[64], value[32];
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < pairs; i++) {
        snprintf(path, sizeof path, "/bench/c/k%d", i % 100);
        int n = snprintf(value, sizeof value, "v%d", i);
        if (!xs_write(xs, XBT_NULL, path, value, n)) {
            perror("xs_write");
            return 1;
        }
        unsigned int len;
        char *got = xs_read(xs, XBT_NULL, path, &len);
        if (!got || len != (unsigned)n || memcmp(got, value, n) != 0) {
            fprintf(stderr, "read back mismatch at %d\n", i);
            return 1;
        }
        free(got);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%d %.6f\n", pairs, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    xs_close(xs);
    return 0;
}
