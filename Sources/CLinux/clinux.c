#define _GNU_SOURCE
#include "clinux.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>

const int CLINUX_F_SETPIPE_SZ = F_SETPIPE_SZ;

int clinux_ioctl_ptr(int fd, unsigned long request, void *arg) {
    int result = ioctl(fd, request, arg);
    return result < 0 ? -errno : result;
}

int clinux_timedjoin(pthread_t thread, int milliseconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += (long)milliseconds * 1000000L;
    deadline.tv_sec += deadline.tv_nsec / 1000000000L;
    deadline.tv_nsec %= 1000000000L;
    return pthread_timedjoin_np(thread, NULL, &deadline);
}
