// The Linux shim: interfaces beside KVM that Swift's Glibc module does not export
// (function-like macros, variadic ioctl, C11 atomics on memory Swift does not own).
// No logic here.
#ifndef CLINUX_H
#define CLINUX_H

#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/ioctl.h>
#include <termios.h>

// Terminal ioctls: window size, and the pseudo-terminal calls tests use.
static const unsigned long CLINUX_TIOCGWINSZ = TIOCGWINSZ;
static const unsigned long CLINUX_TIOCSPTLCK = TIOCSPTLCK;
static const unsigned long CLINUX_TIOCGPTN = TIOCGPTN;
static const unsigned long CLINUX_TCGETS = TCGETS;
static const unsigned long CLINUX_TCSETS = TCSETS;

// fcntl: a pipe's capacity (tests shrink one so that a writer blocks sooner). Defined in
// clinux.c, which sees the GNU names.
extern const int CLINUX_F_SETPIPE_SZ;

/// The first real-time signal glibc leaves to applications (SIGRTMIN is a function call).
static inline int clinux_sigrtmin(void) { return SIGRTMIN; }

/// pthread_join that gives up after `milliseconds` with ETIMEDOUT (pthread_timedjoin_np,
/// a GNU extension Swift's Glibc module hides). Returns 0 once joined, or the error.
int clinux_timedjoin(pthread_t thread, int milliseconds);

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

#endif
