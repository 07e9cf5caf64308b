/* The physical limit of a UDP path, measured with raw sockets: what any
 * datagram protocol over it can reach at most. Used by scripts/bench-goals
 * beside srd and the reference providers, between the same two endpoints.
 *
 *   udpprobe recv PORT [SECONDS]           receiver (bandwidth or echo)
 *   udpprobe bw HOST PORT SEGMENT [SECONDS] [BURST]
 *        streams SEGMENT-byte datagrams as UDP GSO sends of BURST bytes
 *        (default 64 KiB, at most 64 segments); BURST 0: one datagram per
 *        sendmmsg slot, 32 per call (per-datagram I/O). The receiver
 *        reads with UDP_GRO into 64 KiB buffers. Prints "bw MB/s".
 *   udpprobe lat HOST PORT [ITERS]
 *        8-byte ping-pong; prints "lat half-round-trip-us" (median of 5
 *        batches).
 *
 * The receiver answers a 1-byte "hello" with its count of bytes so far and
 * echoes 8-byte datagrams, so one receiver serves both tests. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int sock(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) die("socket");
    int sz = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz);
    return fd;
}

static struct sockaddr_in addr(const char *host, int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", host);
        exit(2);
    }
    return a;
}

/* Receiver: counts bytes, answers hellos and echoes pings. */
static int do_recv(int port, double secs)
{
    int fd = sock();
    struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons(port) };
    if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0) die("bind");
    int one = 1;
    setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
    struct timeval tv = { 0, 200000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    static char buf[65536];
    uint64_t bytes = 0;
    double end = now() + secs;
    while (now() < end) {
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n < 0) continue;
        if (n == 1) { /* hello: report and reset */
            sendto(fd, &bytes, sizeof bytes, 0, (struct sockaddr *)&from, fl);
            bytes = 0;
        } else if (n == 8) {
            sendto(fd, buf, 8, 0, (struct sockaddr *)&from, fl);
        } else {
            bytes += n;
        }
    }
    return 0;
}

static uint64_t hello(int fd, struct sockaddr_in *to)
{
    char h = 1;
    uint64_t got = 0;
    struct timeval tv = { 1, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (int tries = 0; tries < 5; tries++) {
        sendto(fd, &h, 1, 0, (struct sockaddr *)to, sizeof *to);
        if (recv(fd, &got, sizeof got, 0) == sizeof got) return got;
    }
    fprintf(stderr, "no answer from the receiver\n");
    exit(1);
}

static int do_bw(const char *host, int port, int seg, double secs, int burst)
{
    int fd = sock();
    struct sockaddr_in to = addr(host, port);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) < 0) die("connect");
    hello(fd, &to);
    static char buf[65536];
    memset(buf, 0x5a, sizeof buf);
    if (burst > 64 * seg) burst = 64 * seg;
    if (burst > 65507) burst = 65507 / seg * seg;
    uint64_t sent = 0;
    double t0 = now(), end = t0 + secs;
    if (burst > 0) {
        char ctl[CMSG_SPACE(sizeof(uint16_t))];
        struct iovec iov = { buf, (size_t)burst };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                             .msg_controllen = sizeof ctl };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        *(uint16_t *)CMSG_DATA(c) = (uint16_t)seg;
        while (now() < end) {
            for (int i = 0; i < 64; i++) {
                ssize_t n = sendmsg(fd, &mh, 0);
                if (n > 0) sent += n;
                else if (errno != EAGAIN && errno != ENOBUFS) die("sendmsg (GSO)");
            }
        }
    } else {
        struct mmsghdr mm[32];
        struct iovec iov[32];
        for (int i = 0; i < 32; i++) {
            iov[i] = (struct iovec){ buf, (size_t)seg };
            mm[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
        }
        while (now() < end) {
            int n = sendmmsg(fd, mm, 32, 0);
            if (n > 0) sent += (uint64_t)n * seg;
        }
    }
    double t1 = now();
    usleep(100000);
    uint64_t got = hello(fd, &to);
    printf("bw %.1f MB/s (sent %.1f MB/s)\n", got / (t1 - t0) / 1e6, sent / (t1 - t0) / 1e6);
    return 0;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int do_lat(const char *host, int port, int iters)
{
    int fd = sock();
    struct sockaddr_in to = addr(host, port);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) < 0) die("connect");
    hello(fd, &to);
    uint64_t ping = 0;
    double r[5];
    for (int b = 0; b < 5; b++) {
        double t0 = now();
        for (int i = 0; i < iters; i++) {
            if (send(fd, &ping, 8, 0) != 8) die("send");
            if (recv(fd, &ping, 8, 0) != 8) die("recv (lost ping?)");
        }
        r[b] = (now() - t0) / iters / 2 * 1e6;
    }
    qsort(r, 5, sizeof r[0], cmp);
    printf("lat %.2f us\n", r[2]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "recv"))
        return do_recv(atoi(argv[2]), argc > 3 ? atof(argv[3]) : 60);
    if (argc >= 5 && !strcmp(argv[1], "bw"))
        return do_bw(argv[2], atoi(argv[3]), atoi(argv[4]), argc > 5 ? atof(argv[5]) : 2,
                     argc > 6 ? atoi(argv[6]) : 65536);
    if (argc >= 4 && !strcmp(argv[1], "lat"))
        return do_lat(argv[2], atoi(argv[3]), argc > 4 ? atoi(argv[4]) : 2000);
    fprintf(stderr, "usage: udpprobe recv PORT [S] | bw HOST PORT SEGMENT [S] [BURST] | lat HOST PORT [N]\n");
    return 2;
}
