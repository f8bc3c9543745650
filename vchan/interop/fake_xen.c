/*
 * fake_xen.c: the few libxengnttab, libxenevtchn and libxenstore calls that libxenvchan
 * makes, implemented without Xen so that the real libxenvchan (Debian's libxenvchan.a)
 * can talk to our Rust vchan across processes on an ordinary Linux host.
 *
 * The "hypervisor" is a directory ($FAKE_XEN_DIR) shared by the processes:
 *   arena       a sparse file of 4 KiB pages; page 0 is a header (u32 next free page,
 *               u32 next event-channel pair). A grant reference is a page index.
 *   ev-P-s      Unix datagram socket of the allocating ("unbound") end of channel pair P,
 *   ev-P-c      and of the binding end; a notification is one datagram to the other end.
 *   xs/         xenstore: one file per node, '/' written as '#'; `<node>.perms` holds the
 *               permission list as xenstore-ls prints it ("n1 r2").
 *   alive-D     the pid of the process acting as domain D (written by xs_open): a peer
 *               whose pid is gone is a dead domain.
 * $FAKE_XEN_DOMID is this process's domain id (`xs_read("domid")`).
 *
 * It does not enforce who may map a grant, and unmap notifications are not implemented.
 * vchan/shm-host implements the same conventions in Rust.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

#define PAGE 4096u
#define BINDER_PORT_BASE 0x10000u
#define MAX_PORTS 16

struct xengntdev_handle {
    int unused;
};

struct fake_port {
    uint32_t local;
    uint32_t pair;
    char side; /* 's': allocated unbound, 'c': bound interdomain */
    int fd;
};

struct xenevtchn_handle {
    int n;
    struct fake_port ports[MAX_PORTS];
};

struct xs_handle {
    int unused;
};

static int arena_fd = -1;
static uint32_t arena_pages;
static uint32_t *header;

static const char *fake_dir(void)
{
    const char *d = getenv("FAKE_XEN_DIR");
    return d ? d : "/tmp/fake-xen";
}

static int arena_open(void)
{
    char path[512];
    struct stat st;
    if (header)
        return 0;
    snprintf(path, sizeof path, "%s/arena", fake_dir());
    arena_fd = open(path, O_RDWR | O_CLOEXEC);
    if (arena_fd < 0 || fstat(arena_fd, &st) < 0)
        return -1;
    arena_pages = (uint32_t)(st.st_size / PAGE);
    header = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, arena_fd, 0);
    if (header == MAP_FAILED) {
        header = NULL;
        return -1;
    }
    return 0;
}

/* ---- grant sharing and mapping ---- */

xengntshr_handle *xengntshr_open(struct xentoollog_logger *logger, unsigned open_flags)
{
    (void)logger;
    (void)open_flags;
    if (arena_open())
        return NULL;
    return calloc(1, sizeof(struct xengntdev_handle));
}

int xengntshr_close(xengntshr_handle *xgs)
{
    free(xgs);
    return 0;
}

void *xengntshr_share_pages(xengntshr_handle *xgs, uint32_t domid, int count, uint32_t *refs,
                            int writable)
{
    (void)xgs;
    (void)domid;
    (void)writable;
    if (count <= 0 || arena_open())
        return NULL;
    uint32_t first = __atomic_fetch_add(&header[0], (uint32_t)count, __ATOMIC_SEQ_CST) + 1;
    if ((uint64_t)first + (uint64_t)count > arena_pages) {
        errno = ENOSPC;
        return NULL;
    }
    for (int i = 0; i < count; i++)
        refs[i] = first + (uint32_t)i;
    void *p = mmap(NULL, (size_t)count * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, arena_fd,
                   (off_t)first * PAGE);
    return p == MAP_FAILED ? NULL : p;
}

void *xengntshr_share_page_notify(xengntshr_handle *xgs, uint32_t domid, uint32_t *ref,
                                  int writable, uint32_t notify_offset,
                                  evtchn_port_t notify_port)
{
    (void)notify_offset;
    (void)notify_port;
    return xengntshr_share_pages(xgs, domid, 1, ref, writable);
}

int xengntshr_unshare(xengntshr_handle *xgs, void *start_address, uint32_t count)
{
    (void)xgs;
    return munmap(start_address, (size_t)count * PAGE);
}

xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger, unsigned open_flags)
{
    return xengntshr_open(logger, open_flags);
}

int xengnttab_close(xengnttab_handle *xgt)
{
    free(xgt);
    return 0;
}

void *xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count, uint32_t domid,
                                      uint32_t *refs, int prot)
{
    (void)xgt;
    (void)domid;
    if (count == 0 || arena_open())
        return NULL;
    uint8_t *base = mmap(NULL, (size_t)count * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    for (uint32_t i = 0; i < count; i++) {
        if (refs[i] == 0 || refs[i] >= arena_pages ||
            mmap(base + (size_t)i * PAGE, PAGE, prot, MAP_SHARED | MAP_FIXED, arena_fd,
                 (off_t)refs[i] * PAGE) == MAP_FAILED) {
            munmap(base, (size_t)count * PAGE);
            errno = EINVAL;
            return NULL;
        }
    }
    return base;
}

void *xengnttab_map_grant_ref_notify(xengnttab_handle *xgt, uint32_t domid, uint32_t ref,
                                     int prot, uint32_t notify_offset, evtchn_port_t notify_port)
{
    (void)notify_offset;
    (void)notify_port;
    return xengnttab_map_domain_grant_refs(xgt, 1, domid, &ref, prot);
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
    (void)xgt;
    return munmap(start_address, (size_t)count * PAGE);
}

/* ---- event channels ---- */

static void sock_path(struct sockaddr_un *a, uint32_t pair, char side)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    snprintf(a->sun_path, sizeof a->sun_path, "%s/ev-%u-%c", fake_dir(), pair, side);
}

static int add_port(xenevtchn_handle *h, uint32_t pair, char side)
{
    struct sockaddr_un a;
    if (h->n == MAX_PORTS) {
        errno = ENOSPC;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    sock_path(&a, pair, side);
    unlink(a.sun_path);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    struct fake_port *p = &h->ports[h->n++];
    p->pair = pair;
    p->side = side;
    p->fd = fd;
    p->local = side == 's' ? pair : pair + BINDER_PORT_BASE;
    return (int)p->local;
}

static struct fake_port *find_port(xenevtchn_handle *h, evtchn_port_t port)
{
    for (int i = 0; i < h->n; i++)
        if (h->ports[i].local == port)
            return &h->ports[i];
    errno = EINVAL;
    return NULL;
}

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger, unsigned open_flags)
{
    (void)logger;
    (void)open_flags;
    if (arena_open())
        return NULL;
    return calloc(1, sizeof(xenevtchn_handle));
}

int xenevtchn_close(xenevtchn_handle *h)
{
    if (!h)
        return 0;
    while (h->n > 0)
        xenevtchn_unbind(h, h->ports[h->n - 1].local);
    free(h);
    return 0;
}

int xenevtchn_fd(xenevtchn_handle *h)
{
    return h->n > 0 ? h->ports[0].fd : -1;
}

xenevtchn_port_or_error_t xenevtchn_bind_unbound_port(xenevtchn_handle *h, uint32_t domid)
{
    (void)domid;
    uint32_t pair = __atomic_fetch_add(&header[1], 1, __ATOMIC_SEQ_CST) + 1;
    return add_port(h, pair, 's');
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *h, uint32_t domid,
                                                     evtchn_port_t remote_port)
{
    (void)domid;
    return add_port(h, remote_port, 'c');
}

int xenevtchn_unbind(xenevtchn_handle *h, evtchn_port_t port)
{
    struct fake_port *p = find_port(h, port);
    struct sockaddr_un a;
    if (!p)
        return -1;
    close(p->fd);
    sock_path(&a, p->pair, p->side);
    unlink(a.sun_path);
    *p = h->ports[--h->n];
    return 0;
}

int xenevtchn_notify(xenevtchn_handle *h, evtchn_port_t port)
{
    struct fake_port *p = find_port(h, port);
    struct sockaddr_un a;
    char byte = 1;
    if (!p)
        return -1;
    sock_path(&a, p->pair, p->side == 's' ? 'c' : 's');
    /* A peer not bound yet, or with notifications already queued: dropped, as Xen
     * drops sends on unbound ports and coalesces pending events. */
    sendto(p->fd, &byte, 1, MSG_DONTWAIT, (struct sockaddr *)&a, sizeof a);
    return 0;
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *h)
{
    struct pollfd fds[MAX_PORTS];
    char buf[64];
    for (int i = 0; i < h->n; i++) {
        fds[i].fd = h->ports[i].fd;
        fds[i].events = POLLIN;
    }
    for (;;) {
        if (poll(fds, (nfds_t)h->n, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        for (int i = 0; i < h->n; i++) {
            if (fds[i].revents & POLLIN) {
                while (recv(fds[i].fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
                    ;
                return (int)h->ports[i].local;
            }
        }
    }
}

int xenevtchn_unmask(xenevtchn_handle *h, evtchn_port_t port)
{
    return find_port(h, port) ? 0 : -1;
}

/* ---- xenstore ---- */

static bool write_file(const char *file, const void *data, size_t len);

static void node_file(char *out, size_t n, const char *path, const char *suffix)
{
    int len = snprintf(out, n, "%s/xs/", fake_dir());
    for (const char *c = path; *c && (size_t)len + 1 < n; c++)
        out[len++] = *c == '/' ? '#' : *c;
    out[len] = 0;
    strncat(out, suffix, n - strlen(out) - 1);
}

struct xs_handle *xs_open(unsigned long flags)
{
    (void)flags;
    /* Announce this "domain" the way the toolstack's /local/domain/<id> would: peers
     * check that the pid in alive-<domid> still runs to detect a dead peer. */
    char file[600], pid[32];
    const char *d = getenv("FAKE_XEN_DOMID");
    snprintf(file, sizeof file, "%s/alive-%s", fake_dir(), d ? d : "0");
    int n = snprintf(pid, sizeof pid, "%d", (int)getpid());
    write_file(file, pid, (size_t)n);
    return calloc(1, sizeof(struct xs_handle));
}

void xs_close(struct xs_handle *xsh)
{
    free(xsh);
}

void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len)
{
    (void)h;
    (void)t;
    char file[1024];
    if (strcmp(path, "domid") == 0) {
        const char *d = getenv("FAKE_XEN_DOMID");
        char *v = strdup(d ? d : "0");
        if (len)
            *len = (unsigned)strlen(v);
        return v;
    }
    node_file(file, sizeof file, path, "");
    FILE *f = fopen(file, "rb");
    if (!f) {
        errno = ENOENT;
        return NULL;
    }
    char *buf = malloc(4097);
    size_t n = fread(buf, 1, 4096, f);
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = (unsigned)n;
    return buf;
}

static bool write_file(const char *file, const void *data, size_t len)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", file, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    return ok && rename(tmp, file) == 0;
}

bool xs_write(struct xs_handle *h, xs_transaction_t t, const char *path, const void *data,
              unsigned int len)
{
    (void)h;
    (void)t;
    char file[1024];
    node_file(file, sizeof file, path, "");
    return write_file(file, data, len);
}

bool xs_set_permissions(struct xs_handle *h, xs_transaction_t t, const char *path,
                        struct xs_permissions *perms, unsigned int num_perms)
{
    (void)h;
    (void)t;
    static const char letters[] = "nrwb";
    char file[1024], text[256];
    size_t len = 0;
    for (unsigned i = 0; i < num_perms && len + 16 < sizeof text; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%c%u", i ? " " : "",
                                letters[perms[i].perms & 3], perms[i].id);
    node_file(file, sizeof file, path, ".perms");
    return write_file(file, text, len);
}

xs_transaction_t xs_transaction_start(struct xs_handle *h)
{
    (void)h;
    return 1;
}

bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t, bool abort)
{
    (void)h;
    (void)t;
    (void)abort;
    return true;
}

bool xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path)
{
    (void)h;
    (void)t;
    char dir[600], prefix[1024], file[1400];
    snprintf(dir, sizeof dir, "%s/xs", fake_dir());
    node_file(prefix, sizeof prefix, path, "");
    const char *name = strrchr(prefix, '/') + 1;
    size_t n = strlen(name);
    DIR *d = opendir(dir);
    if (!d)
        return false;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, name, n) == 0 &&
            (e->d_name[n] == 0 || e->d_name[n] == '#' || e->d_name[n] == '.')) {
            snprintf(file, sizeof file, "%s/%s", dir, e->d_name);
            unlink(file);
        }
    }
    closedir(d);
    return true;
}
