// The Linux shim: interfaces beside KVM that Swift's Glibc module does not export
// (function-like macros, variadic ioctl, C11 atomics on memory Swift does not own).
// No logic here.
#ifndef CLINUX_H
#define CLINUX_H

#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/random.h>

// Terminal ioctls: window size, and the pseudo-terminal calls tests use.
static const unsigned long CLINUX_TIOCGWINSZ = TIOCGWINSZ;
static const unsigned long CLINUX_TIOCSPTLCK = TIOCSPTLCK;
static const unsigned long CLINUX_TIOCGPTN = TIOCGPTN;
static const unsigned long CLINUX_TCGETS = TCGETS;
static const unsigned long CLINUX_TCSETS = TCSETS;

// fcntl: a pipe's capacity (tests shrink one so that a writer blocks sooner). Defined in
// clinux.c, which sees the GNU names.
extern const int CLINUX_F_SETPIPE_SZ;
// fcntl: a read lease on a snapshot's memory file, and the signal its break sends.
extern const int CLINUX_F_SETLEASE;
extern const int CLINUX_F_SETSIG;

/// The first real-time signal glibc leaves to applications (SIGRTMIN is a function call).
static inline int clinux_sigrtmin(void) { return SIGRTMIN; }

/// pthread_join that gives up after `milliseconds` with ETIMEDOUT (pthread_timedjoin_np,
/// a GNU extension Swift's Glibc module hides). Returns 0 once joined, or the error.
int clinux_timedjoin(pthread_t thread, int milliseconds);

/// Starts a POSIX timer on CLOCK_MONOTONIC that sends `signal` to the calling thread every
/// `interval_ns` (SIGEV_THREAD_ID: its sigevent field is out of Swift's reach). Returns 0 or -errno.
int clinux_thread_timer_start(int signal, long interval_ns, timer_t *timer);

/// ioctl with a pointer argument. Returns the ioctl's result, or -errno.
int clinux_ioctl_ptr(int fd, unsigned long request, void *arg);

// Ring indices in guest memory are shared with the guest's CPUs: loads and stores
// must be single atomic accesses with acquire/release ordering.
static inline uint16_t clinux_load_acquire_u16(const void *address) {
    return __atomic_load_n((const uint16_t *)address, __ATOMIC_ACQUIRE);
}

static inline void clinux_store_release_u16(void *address, uint16_t value) {
    __atomic_store_n((uint16_t *)address, value, __ATOMIC_RELEASE);
}

// Tap devices: the ioctls and flags of <linux/if_tun.h>, defined in clinux.c.
extern const unsigned long CLINUX_TUNSETIFF;
extern const unsigned long CLINUX_TUNSETOFFLOAD;
extern const unsigned long CLINUX_TUNSETVNETHDRSZ;
extern const int CLINUX_IFF_TAP;
extern const int CLINUX_IFF_NO_PI;
extern const int CLINUX_IFF_VNET_HDR;
extern const int CLINUX_TUN_F_CSUM;
extern const int CLINUX_TUN_F_TSO4;
extern const int CLINUX_TUN_F_TSO6;

/// ioctl with an integer argument. Returns the ioctl's result, or -errno.
int clinux_ioctl_value(int fd, unsigned long request, unsigned long value);

// Shared directories: path resolution confined beneath a directory fd, and directory
// reading, neither of which glibc 2.36 wraps. Both return the result or -errno.
int clinux_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
long clinux_getdents64(int fd, void *buffer, unsigned long count);
static const long CLINUX_UTIME_NOW = UTIME_NOW;
static const long CLINUX_UTIME_OMIT = UTIME_OMIT;
extern const uint64_t CLINUX_RESOLVE_BENEATH;
extern const uint64_t CLINUX_RESOLVE_NO_MAGICLINKS;
extern const uint64_t CLINUX_RESOLVE_NO_SYMLINKS;
extern const int CLINUX_O_PATH;
extern const int CLINUX_F_OFD_SETLK;
extern const int CLINUX_F_OFD_GETLK;

// Container runtime (microvm-oci).
/// Starts `path` with `argv` in a new session: `ready_fd` becomes its descriptor 3 and,
/// when `tty_fd` is not -1, that terminal its controlling terminal and standard streams;
/// every other descriptor above 2 is closed and signals are back to their defaults.
/// Returns the child's pid, or -errno.
int clinux_spawn_session(const char *path, char *const argv[], int ready_fd, int tty_fd);
/// Connects to the Unix socket at `socket_path` and sends `fd` over it (SCM_RIGHTS), as
/// runc hands a container's terminal to its caller. Returns 0 or -errno.
int clinux_send_fd(const char *socket_path, int fd);
extern const unsigned long CLINUX_TIOCSWINSZ;
/// Opens a new pseudo-terminal: returns the master (close-on-exec) and puts the slave,
/// opened close-on-exec and not as a controlling terminal, in `*slave`; or -errno.
int clinux_open_pty(int *slave);

// The jail (Runtime/Jail.swift): namespaces, mounts, capabilities. Each call returns 0 or -errno.
int clinux_unshare(int flags);
int clinux_mount(const char *source, const char *target, const char *type, unsigned long flags, const char *data);
int clinux_umount2(const char *target, int flags);
int clinux_pivot_root(const char *new_root, const char *put_old);
int clinux_prctl(int option, unsigned long argument2, unsigned long argument3);
/// capset(2), version 3, on the calling thread: each set is a mask of 1 << CAP_*.
int clinux_capset(uint64_t effective, uint64_t permitted, uint64_t inheritable);
extern const int CLINUX_CLONE_NEWNS;
extern const int CLINUX_CLONE_NEWUSER;
extern const unsigned long CLINUX_MS_RDONLY;
extern const unsigned long CLINUX_MS_NOSUID;
extern const unsigned long CLINUX_MS_NODEV;
extern const unsigned long CLINUX_MS_NOEXEC;
extern const unsigned long CLINUX_MS_REMOUNT;
extern const unsigned long CLINUX_MS_BIND;
extern const unsigned long CLINUX_MS_REC;
extern const unsigned long CLINUX_MS_PRIVATE;
extern const int CLINUX_MNT_DETACH;
extern const int CLINUX_PR_SET_NAME;
extern const int CLINUX_PR_SET_NO_NEW_PRIVS;
extern const int CLINUX_PR_CAPBSET_DROP;
extern const int CLINUX_PR_CAP_AMBIENT;
extern const int CLINUX_PR_CAP_AMBIENT_CLEAR_ALL;
extern const int CLINUX_CAP_CHOWN;
extern const int CLINUX_CAP_DAC_OVERRIDE;
extern const int CLINUX_CAP_DAC_READ_SEARCH;
extern const int CLINUX_CAP_FOWNER;
extern const int CLINUX_CAP_FSETID;
/// fchmodat2(2) (Linux 6.6), which changes a mode with AT_SYMLINK_NOFOLLOW without glibc's
/// detour through /proc/self/fd (absent in the jail). Returns 0 or -errno (-ENOSYS before 6.6).
int clinux_fchmodat2(int dirfd, const char *path, unsigned int mode, int flags);

#endif
