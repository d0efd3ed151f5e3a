#define _GNU_SOURCE
#include "clinux.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <linux/if_tun.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

const int CLINUX_F_SETPIPE_SZ = F_SETPIPE_SZ;

int clinux_ioctl_ptr(int fd, unsigned long request, void *arg) {
    int result = ioctl(fd, request, arg);
    return result < 0 ? -errno : result;
}

int clinux_ioctl_value(int fd, unsigned long request, unsigned long value) {
    int result = ioctl(fd, request, value);
    return result < 0 ? -errno : result;
}

const unsigned long CLINUX_TUNSETIFF = TUNSETIFF;
const unsigned long CLINUX_TUNSETOFFLOAD = TUNSETOFFLOAD;
const unsigned long CLINUX_TUNSETVNETHDRSZ = TUNSETVNETHDRSZ;
const int CLINUX_IFF_TAP = IFF_TAP;
const int CLINUX_IFF_NO_PI = IFF_NO_PI;
const int CLINUX_IFF_VNET_HDR = IFF_VNET_HDR;
const int CLINUX_TUN_F_CSUM = TUN_F_CSUM;
const int CLINUX_TUN_F_TSO4 = TUN_F_TSO4;
const int CLINUX_TUN_F_TSO6 = TUN_F_TSO6;

int clinux_timedjoin(pthread_t thread, int milliseconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += (long)milliseconds * 1000000L;
    deadline.tv_sec += deadline.tv_nsec / 1000000000L;
    deadline.tv_nsec %= 1000000000L;
    return pthread_timedjoin_np(thread, NULL, &deadline);
}

int clinux_thread_timer_start(int signal, long interval_ns, timer_t *timer) {
    struct sigevent event = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = signal };
    event._sigev_un._tid = gettid();
    if (timer_create(CLOCK_MONOTONIC, &event, timer) < 0) return -errno;
    struct timespec interval = { .tv_sec = interval_ns / 1000000000L, .tv_nsec = interval_ns % 1000000000L };
    struct itimerspec schedule = { .it_interval = interval, .it_value = interval };
    if (timer_settime(*timer, 0, &schedule, NULL) < 0) {
        int error = errno;
        timer_delete(*timer);
        return -error;
    }
    return 0;
}

const uint64_t CLINUX_RESOLVE_BENEATH = RESOLVE_BENEATH;
const uint64_t CLINUX_RESOLVE_NO_MAGICLINKS = RESOLVE_NO_MAGICLINKS;
const uint64_t CLINUX_RESOLVE_NO_SYMLINKS = RESOLVE_NO_SYMLINKS;
const int CLINUX_O_PATH = O_PATH;
const int CLINUX_F_OFD_SETLK = F_OFD_SETLK;
const int CLINUX_F_OFD_GETLK = F_OFD_GETLK;

int clinux_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how = { .flags = flags, .mode = mode, .resolve = resolve };
    long result = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    return result < 0 ? -errno : (int)result;
}

long clinux_getdents64(int fd, void *buffer, unsigned long count) {
    long result = syscall(SYS_getdents64, fd, buffer, count);
    return result < 0 ? -errno : result;
}
