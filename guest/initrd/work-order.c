/*
 * work-order: waits for a restored template's work order, for the initrd's /init.
 *   work-order PORT
 * PORT is the virtio-console microvm hands orders on (microvm.order= on the kernel
 * command line). It is put in raw mode, so that every byte arrives as sent, then
 * "microvm-order: waiting\n" is written to it: from then on microvm may snapshot the
 * guest as a template, and each VM restored from it reads its own order here.
 * The order is "microvm-order LENGTH\n" (LENGTH: 8 hexadecimal digits) and LENGTH
 * bytes of lines, until a line "script":
 *   clock SECONDS NANOSECONDS   the host's wall-clock time, set at once
 *   entropy HEX                 bytes mixed into (and credited to) the kernel's pool
 *   hostname HEX                the guest's host name
 *   file PATH-HEX CONTENT-HEX   a file to write (mode 0600, its directory made if missing),
 *                               as microvm-oci's /oci/config
 * What follows "script\n" goes to standard output: shell assignments the caller evals.
 * A malformed order ends it with status 2 and a line on standard error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_ORDER (64 * 1024)

static char order[MAX_ORDER + 1];

static void fail(const char *what) {
    fprintf(stderr, "microvm-guest: work order: %s\n", what);
    exit(2);
}

static int read_all(int fd, char *buffer, size_t length) {
    size_t done = 0;
    while (done < length) {
        ssize_t result = read(fd, buffer + done, length - done);
        if (result < 0 && errno == EINTR) continue;
        if (result <= 0) return -1;
        done += (size_t)result;
    }
    return 0;
}

static int nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Decodes the hexadecimal word at *cursor (up to a space or the line's end) in place; returns its length. */
static size_t unhex(char **cursor, char **start) {
    char *in = *cursor, *out = *cursor;
    *start = out;
    while (*in && *in != ' ' && *in != '\n') {
        int high = nibble(in[0]), low = in[1] ? nibble(in[1]) : -1;
        if (high < 0 || low < 0) fail("a malformed hexadecimal value");
        *out++ = (char)(high << 4 | low);
        in += 2;
    }
    size_t length = (size_t)(out - *start);
    *cursor = *in ? in + 1 : in;
    return length;
}

int main(int argc, char **argv) {
    if (argc != 2) fail("usage: work-order PORT");
    int port = open(argv[1], O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (port < 0) fail("cannot open the port");
    struct termios settings;
    if (tcgetattr(port, &settings) == 0) {
        cfmakeraw(&settings);
        tcsetattr(port, TCSANOW, &settings);
    }
    static const char waiting[] = "microvm-order: waiting\n";
    if (write(port, waiting, sizeof waiting - 1) != (ssize_t)(sizeof waiting - 1)) fail("cannot write to the port");

    char header[23];
    if (read_all(port, header, sizeof header) < 0) fail("the port closed");
    if (memcmp(header, "microvm-order ", 14) != 0 || header[22] != '\n') fail("a malformed header");
    size_t length = 0;
    for (int i = 14; i < 22; i++) {
        int value = nibble(header[i]);
        if (value < 0) fail("a malformed length");
        length = length << 4 | (size_t)value;
    }
    if (length > MAX_ORDER) fail("an order longer than 64 KiB");
    if (read_all(port, order, length) < 0) fail("the port closed");
    order[length] = 0;
    if (strlen(order) != length) fail("a NUL byte in the order");

    char *cursor = order;
    while (*cursor) {
        char *line = cursor, *end = strchr(cursor, '\n');
        if (!end) fail("an unended line");
        if (strncmp(line, "script\n", 7) == 0) {
            cursor = end + 1;
            fputs(cursor, stdout);
            return fflush(stdout) == 0 ? 0 : 2;
        }
        *end = 0;
        cursor = end + 1;
        if (strncmp(line, "clock ", 6) == 0) {
            struct timespec now = {0};
            long long seconds, nanoseconds;
            if (sscanf(line + 6, "%lld %lld", &seconds, &nanoseconds) != 2) fail("a malformed clock");
            now.tv_sec = (time_t)seconds;
            now.tv_nsec = nanoseconds;
            if (clock_settime(CLOCK_REALTIME, &now) < 0) fprintf(stderr, "microvm-guest: work order: cannot set the clock\n");
        } else if (strncmp(line, "entropy ", 8) == 0) {
            char *bytes, *word = line + 8;
            size_t count = unhex(&word, &bytes);
            struct { struct rand_pool_info info; char data[512]; } pool;
            if (count > sizeof pool.data) fail("too much entropy");
            pool.info.entropy_count = (int)count * 8;
            pool.info.buf_size = (int)count;
            memcpy(pool.data, bytes, count);
            int random = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
            if (random < 0 || ioctl(random, RNDADDENTROPY, &pool) < 0) fprintf(stderr, "microvm-guest: work order: cannot add entropy\n");
            if (random >= 0) close(random);
        } else if (strncmp(line, "hostname ", 9) == 0) {
            char *name, *word = line + 9;
            size_t count = unhex(&word, &name);
            if (sethostname(name, count) < 0) fprintf(stderr, "microvm-guest: work order: cannot set the host name\n");
        } else if (strncmp(line, "file ", 5) == 0) {
            char *path, *content, *word = line + 5;
            size_t pathLength = unhex(&word, &path);
            size_t contentLength = unhex(&word, &content);
            path[pathLength] = 0;
            char *slash = strrchr(path, '/');
            if (slash && slash != path) {
                *slash = 0;
                mkdir(path, 0700);
                *slash = '/';
            }
            int file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (file < 0 || write(file, content, contentLength) != (ssize_t)contentLength) fail("cannot write a file of the order");
            close(file);
        } else {
            fail("an unknown line");
        }
    }
    fail("no script");
}
