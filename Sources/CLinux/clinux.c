#define _GNU_SOURCE
#include "clinux.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/if_tun.h>
#include <linux/openat2.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

const int CLINUX_F_SETPIPE_SZ = F_SETPIPE_SZ;
const int CLINUX_F_SETLEASE = F_SETLEASE;
const int CLINUX_F_SETSIG = F_SETSIG;

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

const unsigned long CLINUX_TIOCSWINSZ = TIOCSWINSZ;

int clinux_spawn_session(const char *path, char *const argv[], int ready_fd, int tty_fd) {
    pid_t pid = fork();
    if (pid < 0) return -errno;
    if (pid > 0) return pid;
    /* Only async-signal-safe calls from here: the parent may have had other threads. */
    sigset_t none;
    sigemptyset(&none);
    for (int signal = 1; signal < NSIG; signal++) {
        struct sigaction action = {.sa_handler = SIG_DFL};
        sigaction(signal, &action, NULL);
    }
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (setsid() < 0) _exit(127);
    if (tty_fd >= 0) {
        if (ioctl(tty_fd, TIOCSCTTY, 0) < 0) _exit(127);
        for (int fd = 0; fd < 3; fd++)
            if (dup2(tty_fd, fd) < 0) _exit(127);
    }
    if (ready_fd == 3) {
        fcntl(3, F_SETFD, 0);
    } else if (dup2(ready_fd, 3) < 0) {
        _exit(127);
    }
    syscall(SYS_close_range, 4U, ~0U, 0U);
    execv(path, argv);
    _exit(127);
}

int clinux_send_fd(const char *socket_path, int fd) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(socket_path) >= sizeof address.sun_path) return -ENAMETOOLONG;
    strcpy(address.sun_path, socket_path);
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -errno;
    if (connect(sock, (struct sockaddr *)&address, sizeof address) < 0) {
        int error = errno;
        close(sock);
        return -error;
    }
    char name[] = "/dev/ptmx";
    struct iovec vector = {.iov_base = name, .iov_len = sizeof name - 1};
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int))]; } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1, .msg_control = control.space, .msg_controllen = sizeof control.space};
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &fd, sizeof(int));
    int result = sendmsg(sock, &message, MSG_NOSIGNAL) < 0 ? -errno : 0;
    close(sock);
    return result;
}

int clinux_open_pty(int *slave) {
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return -errno;
    char name[128];
    if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, sizeof name) != 0) {
        int error = errno;
        close(master);
        return -error;
    }
    *slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*slave < 0) {
        int error = errno;
        close(master);
        return -error;
    }
    return master;
}

int clinux_unshare(int flags) { return unshare(flags) < 0 ? -errno : 0; }

int clinux_mount(const char *source, const char *target, const char *type, unsigned long flags, const char *data) {
    return mount(source, target, type, flags, data) < 0 ? -errno : 0;
}

int clinux_umount2(const char *target, int flags) { return umount2(target, flags) < 0 ? -errno : 0; }

int clinux_pivot_root(const char *new_root, const char *put_old) {
    return syscall(SYS_pivot_root, new_root, put_old) < 0 ? -errno : 0;
}

int clinux_prctl(int option, unsigned long argument2, unsigned long argument3) {
    return prctl(option, argument2, argument3, 0UL, 0UL) < 0 ? -errno : 0;
}

int clinux_capset(uint64_t effective, uint64_t permitted, uint64_t inheritable) {
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2] = {
        {.effective = (uint32_t)effective, .permitted = (uint32_t)permitted, .inheritable = (uint32_t)inheritable},
        {.effective = (uint32_t)(effective >> 32), .permitted = (uint32_t)(permitted >> 32), .inheritable = (uint32_t)(inheritable >> 32)},
    };
    return syscall(SYS_capset, &header, data) < 0 ? -errno : 0;
}

const int CLINUX_CLONE_NEWNS = CLONE_NEWNS;
const int CLINUX_CLONE_NEWUSER = CLONE_NEWUSER;
const unsigned long CLINUX_MS_RDONLY = MS_RDONLY;
const unsigned long CLINUX_MS_NOSUID = MS_NOSUID;
const unsigned long CLINUX_MS_NODEV = MS_NODEV;
const unsigned long CLINUX_MS_NOEXEC = MS_NOEXEC;
const unsigned long CLINUX_MS_REMOUNT = MS_REMOUNT;
const unsigned long CLINUX_MS_BIND = MS_BIND;
const unsigned long CLINUX_MS_REC = MS_REC;
const unsigned long CLINUX_MS_PRIVATE = MS_PRIVATE;
const int CLINUX_MNT_DETACH = MNT_DETACH;
const int CLINUX_PR_SET_NAME = PR_SET_NAME;
const int CLINUX_PR_SET_NO_NEW_PRIVS = PR_SET_NO_NEW_PRIVS;
const int CLINUX_PR_CAPBSET_DROP = PR_CAPBSET_DROP;
const int CLINUX_PR_CAP_AMBIENT = PR_CAP_AMBIENT;
const int CLINUX_PR_CAP_AMBIENT_CLEAR_ALL = PR_CAP_AMBIENT_CLEAR_ALL;
const int CLINUX_CAP_CHOWN = CAP_CHOWN;
const int CLINUX_CAP_DAC_OVERRIDE = CAP_DAC_OVERRIDE;
const int CLINUX_CAP_DAC_READ_SEARCH = CAP_DAC_READ_SEARCH;
const int CLINUX_CAP_FOWNER = CAP_FOWNER;
const int CLINUX_CAP_FSETID = CAP_FSETID;

/* glibc 2.36's headers predate the call; its number is the same on every architecture. */
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

int clinux_fchmodat2(int dirfd, const char *path, unsigned int mode, int flags) {
    return syscall(SYS_fchmodat2, dirfd, path, mode, flags) < 0 ? -errno : 0;
}
