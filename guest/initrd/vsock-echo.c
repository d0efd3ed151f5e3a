/*
 * vsock-echo: the initrd's test tool for vsock (busybox has no AF_VSOCK) and for a
 * network device's transmit path (busybox sends nothing without a peer that answers).
 *   vsock-echo serve PORT      accept one connection on PORT, send back all it
 *                              receives until it closes, then exit
 *   vsock-echo send PORT SIZE  connect to the host (CID 2) at PORT, send SIZE
 *                              pseudo-random bytes while reading them back, and
 *                              print "vsock-echo: SIZE bytes intact" if they match
 *   vsock-echo flood IFACE COUNT  send COUNT broadcast Ethernet frames of 1514 bytes on
 *                              IFACE as fast as the kernel takes them, never waiting
 *                              for room, and print how many it took
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if_packet.h>
#include <linux/vm_sockets.h>
#include <net/if.h>

static uint64_t state = 0x9e3779b97f4a7c15ULL;

static uint8_t next_byte(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (uint8_t)state;
}

static int serve(unsigned port) {
    int listener = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm address = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 1)) {
        perror("vsock-echo: listen");
        return 1;
    }
    printf("vsock-echo: serving %u\n", port);
    fflush(stdout);
    int connection = accept(listener, NULL, NULL);
    if (connection < 0) {
        perror("vsock-echo: accept");
        return 1;
    }
    static char buffer[65536];
    long total = 0;
    for (;;) {
        ssize_t count = read(connection, buffer, sizeof buffer);
        if (count <= 0) break;
        for (ssize_t done = 0; done < count;) {
            ssize_t written = write(connection, buffer + done, count - done);
            if (written <= 0) return 1;
            done += written;
        }
        total += count;
    }
    printf("vsock-echo: echoed %ld bytes\n", total);
    return 0;
}

static int send_and_check(unsigned port, long size) {
    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm address = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address)) {
        perror("vsock-echo: connect");
        return 1;
    }
    static uint8_t out[65536], in[65536];
    uint64_t reader = state;
    long sent = 0, received = 0;
    size_t pending = 0, offset = 0;
    while (received < size) {
        struct pollfd poller = {.fd = fd, .events = POLLIN | (sent < size ? POLLOUT : 0)};
        if (poll(&poller, 1, -1) < 0) return 1;
        if ((poller.revents & POLLOUT) && sent < size) {
            if (offset == pending) {
                pending = size - sent < (long)sizeof out ? (size_t)(size - sent) : sizeof out;
                for (size_t i = 0; i < pending; i++) out[i] = next_byte();
                offset = 0;
            }
            ssize_t written = write(fd, out + offset, pending - offset);
            if (written < 0) return 1;
            offset += written;
            sent += written;
            if (sent == size) shutdown(fd, SHUT_WR);
        }
        if (poller.revents & (POLLIN | POLLHUP)) {
            ssize_t count = read(fd, in, sizeof in);
            if (count <= 0) break;
            uint64_t saved = state;
            state = reader;
            for (ssize_t i = 0; i < count; i++) {
                if (in[i] != next_byte()) {
                    printf("vsock-echo: byte %ld differs\n", received + i);
                    return 1;
                }
            }
            reader = state;
            state = saved;
            received += count;
        }
    }
    if (received != size) {
        printf("vsock-echo: %ld of %ld bytes came back\n", received, size);
        return 1;
    }
    printf("vsock-echo: %ld bytes intact\n", size);
    return 0;
}

static int flood(const char *interface, long count) {
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    struct sockaddr_ll address = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(interface), .sll_halen = 6};
    if (fd < 0 || address.sll_ifindex == 0) {
        perror("vsock-echo: flood");
        return 1;
    }
    static uint8_t frame[1514];
    memset(frame, 0xff, 6);
    memset(address.sll_addr, 0xff, 6);
    frame[6] = 0x02;
    frame[12] = 0x88; /* EtherType 0x88b5: for local experiments */
    frame[13] = 0xb5;
    long taken = 0;
    for (long i = 0; i < count; i++) {
        if (sendto(fd, frame, sizeof frame, MSG_DONTWAIT, (struct sockaddr *)&address, sizeof address) == (ssize_t)sizeof frame) taken++;
    }
    printf("vsock-echo: flood: %ld of %ld frames taken\n", taken, count);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "serve")) return serve(atoi(argv[2]));
    if (argc == 4 && !strcmp(argv[1], "send")) return send_and_check(atoi(argv[2]), atol(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "flood")) return flood(argv[2], atol(argv[3]));
    fprintf(stderr, "usage: vsock-echo serve PORT | vsock-echo send PORT SIZE | vsock-echo flood IFACE COUNT\n");
    return 2;
}
