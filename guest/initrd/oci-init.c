/*
 * oci-init: runs an OCI container's process inside the guest, for microvm-oci.
 *   oci-init CONFIG ROOT
 * CONFIG is the file microvm-oci appends to the initrd (/oci/config): records
 * "key=value", each ended by a NUL byte, in this order of meaning:
 *   share=TAG RO        mount the virtio-9p share TAG at /run/oci/TAG (RO: 0 or 1)
 *   exports=DIR         the shares are directories of DIR (where /init mounted the one
 *                       9p device of a VM restored from a template), bound into place
 *   mount=TYPE          a mount inside ROOT, in order; the records after it fill it in:
 *   source=, target=, flags= (MS_* bits, decimal), data= (file system options)
 *   devices=1           make the standard device nodes in ROOT/dev
 *   hostname=, cwd=, uid=, gid=, group= (one per additional group), umask= (decimal)
 *   rlimit=RESOURCE SOFT HARD   (decimal; 18446744073709551615 is unlimited)
 *   terminal=1          the process gets hvc0 as its controlling terminal
 *   arg=, env=          the process's argument vector and environment, in order
 * Without a terminal, hvc0 carries standard input and output and hvc1 standard
 * error, both in raw mode; standard input reaches the process through a pipe so that
 * the host's end of input can close it. hvc1's input side carries microvm's control
 * lines: "signal N" (a signal for the process) and "eof" (standard input ended), which
 * microvm holds back until oci-init, with hvc1 open, writes 1 to its streams-ready
 * register (guest physical 0xd1000004): a port nobody has open drops its input.
 * Exits with the process's status (128+N when signal N killed it), which /init hands
 * to microvm. Warnings go to oci-init's standard output, the VM's console (its log); errors that keep the
 * process from starting go to its standard error and exit 126 (setup) or 127 (exec).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define MAX_ITEMS 4096

struct mount_entry {
    const char *type, *source, *target, *data;
    unsigned long flags;
};

static const char *args[MAX_ITEMS + 1], *envs[MAX_ITEMS + 1];
static int arg_count, env_count;
static struct mount_entry mounts[256];
static int mount_count;
static gid_t groups[256];
static int group_count;
static struct { int resource; struct rlimit limit; } rlimits[64];
static int rlimit_count;
static const char *shares[64], *exports;
static int share_readonly[64], share_count;
static const char *hostname, *cwd = "/";
static uid_t uid;
static gid_t gid;
static mode_t umask_value = 022;
static int terminal, devices;

static void warn(const char *format, ...) {
    char line[512];
    va_list list;
    va_start(list, format);
    int length = vsnprintf(line, sizeof line, format, list);
    va_end(list);
    dprintf(1, "oci-init: %.*s\n", length < 0 ? 0 : length, line);
}

static void fail(int status, const char *format, ...) {
    va_list list;
    va_start(list, format);
    fputs("microvm-oci: ", stderr);
    vfprintf(stderr, format, list);
    fputc('\n', stderr);
    va_end(list);
    exit(status);
}

static void parse(char *text, size_t length) {
    struct mount_entry *current = NULL;
    for (char *record = text, *next; record < text + length; record = next) {
        next = record + strlen(record) + 1;
        char *value = strchr(record, '=');
        if (!value) continue;
        *value++ = 0;
        if (!strcmp(record, "arg") && arg_count < MAX_ITEMS) args[arg_count++] = value;
        else if (!strcmp(record, "env") && env_count < MAX_ITEMS) envs[env_count++] = value;
        else if (!strcmp(record, "cwd")) cwd = value;
        else if (!strcmp(record, "uid")) uid = strtoul(value, NULL, 10);
        else if (!strcmp(record, "gid")) gid = strtoul(value, NULL, 10);
        else if (!strcmp(record, "group") && group_count < 256) groups[group_count++] = strtoul(value, NULL, 10);
        else if (!strcmp(record, "umask")) umask_value = strtoul(value, NULL, 10);
        else if (!strcmp(record, "hostname")) hostname = value;
        else if (!strcmp(record, "terminal")) terminal = !strcmp(value, "1");
        else if (!strcmp(record, "exports")) exports = value;
        else if (!strcmp(record, "devices")) devices = !strcmp(value, "1");
        else if (!strcmp(record, "rlimit") && rlimit_count < 64) {
            char *end;
            rlimits[rlimit_count].resource = strtol(value, &end, 10);
            rlimits[rlimit_count].limit.rlim_cur = strtoull(end, &end, 10);
            rlimits[rlimit_count].limit.rlim_max = strtoull(end, &end, 10);
            rlimit_count++;
        } else if (!strcmp(record, "share") && share_count < 64) {
            char *space = strchr(value, ' ');
            share_readonly[share_count] = space && space[1] == '1';
            if (space) *space = 0;
            shares[share_count++] = value;
        } else if (!strcmp(record, "mount") && mount_count < 256) {
            current = &mounts[mount_count++];
            *current = (struct mount_entry){.type = value, .source = "none", .target = "/", .data = ""};
        } else if (current && !strcmp(record, "source")) current->source = value;
        else if (current && !strcmp(record, "target")) current->target = value;
        else if (current && !strcmp(record, "flags")) current->flags = strtoul(value, NULL, 10);
        else if (current && !strcmp(record, "data")) current->data = value;
    }
    args[arg_count] = NULL;
    envs[env_count] = NULL;
}

static char *read_file(const char *path, size_t *length) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(126, "cannot open %s: %s", path, strerror(errno));
    struct stat info;
    if (fstat(fd, &info) < 0) fail(126, "cannot read %s: %s", path, strerror(errno));
    char *text = malloc(info.st_size + 1);
    size_t done = 0;
    while (text && done < (size_t)info.st_size) {
        ssize_t count = read(fd, text + done, info.st_size - done);
        if (count <= 0) break;
        done += count;
    }
    close(fd);
    if (!text) fail(126, "out of memory reading %s", path);
    text[done] = 0;
    *length = done;
    return text;
}

static void make_directories(char *path) {
    for (char *slash = strchr(path + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = 0;
        mkdir(path, 0755);
        *slash = '/';
    }
    mkdir(path, 0755);
}

/* The mount point for a bind mount of a file is a file; for everything else a directory. */
static void make_mount_point(const char *target, const char *source, int bind) {
    char path[4096];
    snprintf(path, sizeof path, "%s", target);
    struct stat info;
    if (lstat(path, &info) == 0) return;
    if (bind && stat(source, &info) == 0 && !S_ISDIR(info.st_mode)) {
        char *slash = strrchr(path, '/');
        if (slash && slash != path) {
            *slash = 0;
            make_directories(path);
            *slash = '/';
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) close(fd);
        return;
    }
    make_directories(path);
}

static void mount_all(const char *root) {
    char path[4096], options[4096];
    for (int index = 0; index < share_count; index++) {
        snprintf(path, sizeof path, "/run/oci/%s", shares[index]);
        make_directories(path);
        unsigned long flags = share_readonly[index] ? MS_RDONLY : 0;
        int result;
        if (exports) {
            snprintf(options, sizeof options, "%s/%s", exports, shares[index]);
            result = mount(options, path, NULL, MS_BIND, NULL);
            if (result == 0 && flags) result = mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL);
        } else {
            result = mount(shares[index], path, "9p", flags, "trans=virtio,version=9p2000.L,msize=512000");
        }
        if (result < 0)
            fail(126, "cannot mount the share %s: %s", shares[index], strerror(errno));
    }
    for (int index = 0; index < mount_count; index++) {
        struct mount_entry *entry = &mounts[index];
        int bind = !strcmp(entry->type, "bind");
        snprintf(path, sizeof path, "%s%s", root, entry->target);
        make_mount_point(path, entry->source, bind);
        unsigned long flags = bind ? MS_BIND | MS_REC : entry->flags;
        if (mount(entry->source, path, bind ? NULL : entry->type, flags, entry->data) < 0) {
            if (bind) fail(126, "cannot mount %s at %s: %s", entry->source, entry->target, strerror(errno));
            warn("no %s at %s: %s", entry->type, entry->target, strerror(errno));
            continue;
        }
        /* A bind mount takes its other flags (ro, nosuid, ...) only through a remount. */
        if (bind && entry->flags & ~(unsigned long)(MS_BIND | MS_REC)) {
            unsigned long remount = MS_REMOUNT | MS_BIND | (entry->flags & ~(unsigned long)(MS_BIND | MS_REC));
            if (mount(NULL, path, NULL, remount, NULL) < 0) warn("cannot remount %s: %s", entry->target, strerror(errno));
        }
    }
}

static void make_devices(const char *root) {
    static const struct { const char *name; unsigned major, minor; } nodes[] = {
        {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
    };
    static const struct { const char *name, *target; } links[] = {
        {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
        {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"},
    };
    char path[4096];
    mode_t previous = umask(0);
    for (size_t index = 0; index < sizeof nodes / sizeof nodes[0]; index++) {
        snprintf(path, sizeof path, "%s/dev/%s", root, nodes[index].name);
        if (mknod(path, S_IFCHR | 0666, makedev(nodes[index].major, nodes[index].minor)) < 0 && errno != EEXIST)
            warn("cannot make /dev/%s: %s", nodes[index].name, strerror(errno));
    }
    /* The terminal appears as /dev/console, as runc shows a container its terminal: a bind
     * mount of hvc0 itself, so that ttyname() finds the file its descriptors refer to. */
    snprintf(path, sizeof path, "%s/dev/console", root);
    if (terminal) {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0620);
        if (fd >= 0) close(fd);
        if (mount("/dev/hvc0", path, NULL, MS_BIND, NULL) < 0) warn("cannot make /dev/console: %s", strerror(errno));
    }
    umask(previous);
    for (size_t index = 0; index < sizeof links / sizeof links[0]; index++) {
        snprintf(path, sizeof path, "%s/dev/%s", root, links[index].name);
        if (symlink(links[index].target, path) < 0 && errno != EEXIST) warn("cannot link /dev/%s: %s", links[index].name, strerror(errno));
    }
}

static int open_console(const char *path, int raw) {
    int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) fail(126, "cannot open %s: %s", path, strerror(errno));
    struct termios settings;
    if (raw && tcgetattr(fd, &settings) == 0) {
        cfmakeraw(&settings);
        tcsetattr(fd, TCSANOW, &settings);
    }
    return fd;
}

/* Tells microvm that hvc1 is open and read: the control lines may come. */
static void announce_ready(void) {
    int fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
    void *page = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0xd1000000);
    if (page == MAP_FAILED) {
        warn("cannot reach the streams-ready register: %s; signals and the end of input will not arrive", strerror(errno));
    } else {
        *(volatile unsigned int *)((char *)page + 4) = 1;
        munmap(page, 4096);
    }
    if (fd >= 0) close(fd);
}

/* execvpe looks in this process's PATH; the container's own PATH is the one that counts. */
static void execute(void) {
    const char *name = args[0];
    if (strchr(name, '/')) {
        execve(name, (char **)args, (char **)envs);
        fail(errno == ENOENT ? 127 : 126, "cannot run %s: %s", name, strerror(errno));
    }
    const char *search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (int index = 0; index < env_count; index++)
        if (!strncmp(envs[index], "PATH=", 5)) search = envs[index] + 5;
    int failure = ENOENT;
    char path[4096];
    for (const char *start = search;; ) {
        const char *end = strchrnul(start, ':');
        snprintf(path, sizeof path, "%.*s/%s", (int)(end - start), start, name);
        execve(path, (char **)args, (char **)envs);
        if (errno != ENOENT && errno != ENOTDIR) failure = errno;
        if (!*end) break;
        start = end + 1;
    }
    fail(failure == ENOENT ? 127 : 126, "cannot run %s: %s", name, failure == ENOENT ? "not found in PATH" : strerror(failure));
}

static void become_process(const char *root, int input, int output, int error) {
    if (setsid() < 0) fail(126, "setsid: %s", strerror(errno));
    if (terminal && ioctl(input, TIOCSCTTY, 0) < 0) fail(126, "cannot make hvc0 the terminal: %s", strerror(errno));
    if (dup2(input, 0) < 0 || dup2(output, 1) < 0 || dup2(error, 2) < 0) fail(126, "dup2: %s", strerror(errno));
    if (chroot(root) < 0 || chdir("/") < 0) fail(126, "cannot enter the root %s: %s", root, strerror(errno));
    if (chdir(cwd) < 0) fail(126, "cannot change to %s: %s", cwd, strerror(errno));
    for (int index = 0; index < rlimit_count; index++)
        if (setrlimit(rlimits[index].resource, &rlimits[index].limit) < 0)
            fail(126, "setrlimit %d: %s", rlimits[index].resource, strerror(errno));
    /* A kernel without CONFIG_MULTIUSER (microvm's minimal one) has only root. */
    int result = setgroups(group_count, groups);
    if (result < 0 && errno == ENOSYS) {
        if (uid != 0 || gid != 0) fail(126, "cannot become user %u, group %u: the guest kernel has no user IDs (CONFIG_MULTIUSER)", uid, gid);
    } else if (result < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        fail(126, "cannot become user %u, group %u: %s", uid, gid, strerror(errno));
    }
    umask(umask_value);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    execute();
}

/* SIGCHLD wakes the main loop through this pipe (no signalfd in a minimal kernel). */
static int child_pipe[2];

static void child_exited(int signal) {
    (void)signal;
    int saved = errno;
    (void)!write(child_pipe[1], "", 1);
    errno = saved;
}

static int status_of(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: oci-init CONFIG ROOT\n");
        return 126;
    }
    size_t length;
    char *text = read_file(argv[1], &length);
    parse(text, length);
    const char *root = argv[2];
    if (arg_count == 0) fail(126, "the configuration has no process arguments");

    int console = open_console("/dev/hvc0", !terminal);
    int control = open_console("/dev/hvc1", 1);
    /* From here on the setup's errors reach the container's standard error. */
    if (dup2(control, 2) < 0) return 126;
    announce_ready();
    mount_all(root);
    if (devices) make_devices(root);
    if (hostname && sethostname(hostname, strlen(hostname)) < 0) warn("sethostname: %s", strerror(errno));

    if (pipe2(child_pipe, O_CLOEXEC | O_NONBLOCK) < 0) fail(126, "pipe: %s", strerror(errno));
    struct sigaction action = {.sa_handler = child_exited, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigaction(SIGCHLD, &action, NULL);
    int child_fd = child_pipe[0];

    int input[2] = {-1, -1};
    if (!terminal && pipe2(input, O_CLOEXEC) < 0) fail(126, "pipe: %s", strerror(errno));
    pid_t child = fork();
    if (child < 0) fail(126, "fork: %s", strerror(errno));
    if (child == 0) become_process(root, terminal ? console : input[0], console, terminal ? console : control);
    if (!terminal) {
        close(input[0]);
        fcntl(input[1], F_SETFL, O_NONBLOCK);
    }

    /* Input the process has not taken yet waits here, and hvc0 is not read meanwhile. */
    signal(SIGPIPE, SIG_IGN);
    char line[256], buffer[4096];
    size_t used = 0, pending = 0, offset = 0;
    int end_of_input = 0;
    for (;;) {
        /* microvm sends "eof" after the last input, which hvc0 may still hold: the pipe
         * closes once hvc0 has stayed empty for a moment and everything went through. */
        if (end_of_input && !pending && input[1] >= 0) {
            struct pollfd quiet = {console, POLLIN, 0};
            if (poll(&quiet, 1, 20) == 0) {
                close(input[1]);
                input[1] = -1;
            }
        }
        int relaying = !terminal && input[1] >= 0;
        struct pollfd fds[3] = {
            {child_fd, POLLIN, 0},
            {control, POLLIN, 0},
            {relaying ? (pending ? input[1] : console) : -1, pending ? POLLOUT : POLLIN, 0},
        };
        if (poll(fds, 3, -1) < 0 && errno != EINTR) break;
        if (fds[0].revents) {
            int status;
            if (waitpid(child, &status, WNOHANG) == child) {
                tcdrain(console);
                tcdrain(control);
                return status_of(status);
            }
            char drained[64];
            while (read(child_fd, drained, sizeof drained) > 0) {}
        }
        if (fds[1].revents) {
            ssize_t count = read(control, line + used, sizeof line - 1 - used);
            if (count > 0) used += count;
            char *newline;
            while ((newline = memchr(line, '\n', used))) {
                *newline = 0;
                if (!strncmp(line, "signal ", 7)) kill(child, atoi(line + 7));
                else if (!strcmp(line, "eof")) end_of_input = 1;
                used -= newline + 1 - line;
                memmove(line, newline + 1, used);
            }
            if (used == sizeof line - 1) used = 0;
        }
        if (fds[2].revents && input[1] >= 0) {
            if (!pending) {
                ssize_t count = read(console, buffer, sizeof buffer);
                if (count > 0) pending = count;
                offset = 0;
            }
            ssize_t written = pending ? write(input[1], buffer + offset, pending) : 0;
            if (written > 0) {
                offset += written;
                pending -= written;
            } else if (written < 0 && errno != EAGAIN && errno != EINTR) {
                /* The process closed its standard input: what comes later is dropped. */
                pending = 0;
            }
        }
    }
    return 126;
}
