#include "ckvm.h"

#include <errno.h>
#include <sys/ioctl.h>

int ckvm_ioctl_ptr(int fd, unsigned long request, void *arg) {
    int result = ioctl(fd, request, arg);
    return result < 0 ? -errno : result;
}

int ckvm_ioctl_value(int fd, unsigned long request, unsigned long arg) {
    int result = ioctl(fd, request, arg);
    return result < 0 ? -errno : result;
}
