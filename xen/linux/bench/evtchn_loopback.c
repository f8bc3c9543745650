/*
 * The reference for xen-linux-check's event_loopback: the same loopback (a port bound to
 * itself, notify one end, wait on the other, and back) through Xen's libxenevtchn, in
 * blocking mode. Prints one line with its round trips per second, so the two can be
 * compared as a ratio in one lab run. Not a test.
 *
 *   gcc -O2 -o evtchn-loopback-c evtchn_loopback.c \
 *       -l:libxenevtchn.a -l:libxentoolcore.a -l:libxentoollog.a
 *   ./evtchn-loopback-c [rounds]
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <xenevtchn.h>

/* DOMID_SELF from xen/xen.h: the remote domain is ourselves. */
#define SELF 0x7FF0U

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Blocks until `port` fired, re-enabling every port that fires meanwhile. */
static int wait_for(xenevtchn_handle *x, evtchn_port_t port)
{
    for (;;) {
        xenevtchn_port_or_error_t fired = xenevtchn_pending(x);
        if (fired < 0 || xenevtchn_unmask(x, fired) < 0)
            return -1;
        if ((evtchn_port_t)fired == port)
            return 0;
    }
}

int main(int argc, char **argv)
{
    unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    xenevtchn_handle *x = xenevtchn_open(NULL, 0);
    if (!x) {
        perror("xenevtchn_open");
        return 2;
    }
    xenevtchn_port_or_error_t a = xenevtchn_bind_unbound_port(x, SELF);
    if (a < 0) {
        perror("bind_unbound_port");
        return 1;
    }
    xenevtchn_port_or_error_t b = xenevtchn_bind_interdomain(x, SELF, a);
    if (b < 0) {
        perror("bind_interdomain");
        return 1;
    }
    /* Drain an event the bind may leave pending. */
    struct pollfd pfd = { .fd = xenevtchn_fd(x), .events = POLLIN };
    while (poll(&pfd, 1, 10) > 0) {
        xenevtchn_port_or_error_t p = xenevtchn_pending(x);
        if (p >= 0)
            xenevtchn_unmask(x, p);
    }
    double start = now_s();
    for (unsigned long i = 0; i < rounds; i++) {
        if (xenevtchn_notify(x, a) < 0 || wait_for(x, b) < 0 ||
            xenevtchn_notify(x, b) < 0 || wait_for(x, a) < 0) {
            perror("round trip");
            return 1;
        }
    }
    double secs = now_s() - start;
    printf("libxenevtchn event_loopback: %lu round trips in %.1f ms (%.0f round trips/s)\n",
           rounds, secs * 1e3, rounds / secs);
    xenevtchn_unbind(x, b);
    xenevtchn_unbind(x, a);
    xenevtchn_close(x);
    return 0;
}
