/*
 * LD_PRELOAD library that lets Debian's xenstored (C) and oxenstored (OCaml) of Xen 4.17
 * run on a Linux host without a hypervisor, so the tests can use them as real peers over
 * their Unix socket.
 *
 * The daemons initialise dom0's connection at start-up: they open libxenctrl,
 * libxenevtchn and libxengnttab handles, ask for dom0's domain info, and map the ring
 * named by /proc/xen/xsd_kva with the event channel in /proc/xen/xsd_port. Each of those
 * is answered here with the smallest thing that keeps them going:
 *   - one running domain, dom0;
 *   - event-channel handles backed by an eventfd that never fires, so no domain traffic;
 *   - grant maps and the dom0 ring backed by anonymous/memfd memory nobody else writes;
 *   - /proc/xen/xsd_port and /proc/xen/xsd_kva served from memfds.
 * (Running cxenstored with -D instead crashes in 4.17 on the first request.)
 *
 * oxenstored also raises RLIMIT_NOFILE to fs.nr_open, which an unprivileged container
 * refuses; requests above the current hard limit are clamped.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#define PAGE 4096

/* ---- libxenctrl ---- */
static char opaque_handle;

xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger,
                                unsigned open_flags)
{
    (void)logger; (void)dombuild_logger; (void)open_flags;
    return (xc_interface *)&opaque_handle;
}

int xc_interface_close(xc_interface *xch) { (void)xch; return 0; }

int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid, unsigned int max_doms,
                      xc_dominfo_t *info)
{
    (void)xch;
    if (first_domid != 0 || max_doms == 0)
        return 0;
    memset(info, 0, sizeof *info);
    info->running = 1;               /* domid 0 */
    return 1;
}

int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain, unsigned int max_domains,
                          xc_domaininfo_t *info)
{
    (void)xch;
    if (first_domain != 0 || max_domains == 0)
        return 0;
    memset(info, 0, sizeof *info);
    info->flags = XEN_DOMINF_running; /* domid 0 */
    return 1;
}

/* ---- libxengnttab ---- */
xengnttab_handle *xengnttab_open(xentoollog_logger *logger, unsigned open_flags)
{
    (void)logger; (void)open_flags;
    return (xengnttab_handle *)&opaque_handle;
}

int xengnttab_close(xengnttab_handle *xgt) { (void)xgt; return 0; }

int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants)
{
    (void)xgt; (void)nr_grants;
    return 0;
}

void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot)
{
    (void)xgt; (void)domid; (void)ref;
    void *page = mmap(NULL, PAGE, prot, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return page == MAP_FAILED ? NULL : page;
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
    (void)xgt;
    return munmap(start_address, (size_t)count * PAGE);
}

/* ---- libxenevtchn ---- */
struct xenevtchn_handle { int fd; };
static evtchn_port_t fake_next_port = 16;

static xenevtchn_handle *evtchn_handle(int fd)
{
    xenevtchn_handle *h = malloc(sizeof *h);
    if (!h)
        return NULL;
    h->fd = fd >= 0 ? fd : eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return h;
}

xenevtchn_handle *xenevtchn_open(xentoollog_logger *logger, unsigned open_flags)
{
    (void)logger; (void)open_flags;
    return evtchn_handle(-1);
}

/* Used by live update to re-open the handle from an inherited fd. */
xenevtchn_handle *xenevtchn_fdopen(xentoollog_logger *logger, int fd, unsigned open_flags)
{
    (void)logger; (void)open_flags;
    return evtchn_handle(fd);
}

int xenevtchn_close(xenevtchn_handle *xce)
{
    if (xce) {
        close(xce->fd);
        free(xce);
    }
    return 0;
}

int xenevtchn_fd(xenevtchn_handle *xce) { return xce->fd; }

xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *xce, unsigned int virq)
{
    (void)xce; (void)virq;
    return fake_next_port++;
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
                                                     evtchn_port_t remote_port)
{
    (void)xce; (void)domid; (void)remote_port;
    return fake_next_port++;
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port) { (void)xce; (void)port; return 0; }
int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port) { (void)xce; (void)port; return 0; }
int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port) { (void)xce; (void)port; return 0; }

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
    (void)xce;
    errno = EAGAIN;                  /* nothing is ever pending */
    return -1;
}

/* ---- /proc/xen files ---- */
static int proc_xen_file(const char *path)
{
    int fd;
    if (strcmp(path, "/proc/xen/xsd_port") == 0) {
        fd = memfd_create("fake-xsd_port", MFD_CLOEXEC);
        if (fd >= 0 && (write(fd, "1", 1) != 1 || lseek(fd, 0, SEEK_SET) != 0)) {
            close(fd);
            fd = -1;
        }
        return fd;
    }
    if (strcmp(path, "/proc/xen/xsd_kva") == 0) {
        fd = memfd_create("fake-xsd_kva", MFD_CLOEXEC);
        if (fd >= 0 && ftruncate(fd, PAGE) != 0) {
            close(fd);
            fd = -1;
        }
        return fd;
    }
    return -2;                       /* not ours */
}

static int forward_open(const char *symbol, const char *path, int flags, va_list ap)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE))
        mode = va_arg(ap, mode_t);
    int fd = proc_xen_file(path);
    if (fd != -2)
        return fd;
    int (*real)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, symbol);
    return real(path, flags, mode);
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int fd = forward_open("open", path, flags, ap);
    va_end(ap);
    return fd;
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int fd = forward_open("open64", path, flags, ap);
    va_end(ap);
    return fd;
}

/* ---- RLIMIT_NOFILE clamp (oxenstored) ---- */
static void clamp_nofile(int resource, struct rlimit *wanted)
{
    struct rlimit now;
    if (resource != RLIMIT_NOFILE || syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &now) != 0)
        return;
    if (wanted->rlim_max > now.rlim_max)
        wanted->rlim_max = now.rlim_max;
    if (wanted->rlim_cur > wanted->rlim_max)
        wanted->rlim_cur = wanted->rlim_max;
}

int setrlimit(__rlimit_resource_t resource, const struct rlimit *rlim)
{
    struct rlimit clamped = *rlim;
    clamp_nofile(resource, &clamped);
    return syscall(SYS_prlimit64, 0, resource, &clamped, NULL);
}

int setrlimit64(__rlimit_resource_t resource, const struct rlimit64 *rlim)
{
    return setrlimit(resource, (const struct rlimit *)rlim);
}

int prlimit(pid_t pid, __rlimit_resource_t resource, const struct rlimit *new_limit,
            struct rlimit *old_limit)
{
    struct rlimit clamped;
    if (new_limit) {
        clamped = *new_limit;
        clamp_nofile(resource, &clamped);
        new_limit = &clamped;
    }
    return syscall(SYS_prlimit64, pid, resource, new_limit, old_limit);
}

int prlimit64(pid_t pid, __rlimit_resource_t resource, const struct rlimit64 *new_limit,
              struct rlimit64 *old_limit)
{
    return prlimit(pid, resource, (const struct rlimit *)new_limit, (struct rlimit *)old_limit);
}
