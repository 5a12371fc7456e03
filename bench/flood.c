// flood.c — a packet flood for `tortie bench xdp`: UDP frames from many source addresses,
// sent as fast as one core can through an AF_PACKET socket that skips the qdisc
// (PACKET_QDISC_BYPASS) with sendmmsg, 64 frames per system call.
//
//   flood IFNAME DST_MAC DST_IP SECONDS SRCFILE
//
// SRCFILE holds source IPv4 addresses, one per line (at most 65,536 are used: each
// gets a ready-made frame, cycled through). Prints {"sent":N,"seconds":S} when done.
// Built by the bench itself (cc -O2), like conn-server.c.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME_LEN 60 /* the minimum Ethernet frame (without FCS): a 64-byte packet on a wire */
#define BATCH 64
#define MAX_SOURCES 65536

static uint16_t checksum(const void *data, size_t len) {
  const uint16_t *p = data;
  uint32_t sum = 0;
  for (; len > 1; len -= 2) sum += *p++;
  if (len) sum += *(const uint8_t *)p;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: flood IFNAME DST_MAC DST_IP SECONDS SRCFILE\n");
    return 2;
  }
  unsigned ifindex = if_nametoindex(argv[1]);
  if (ifindex == 0) {
    perror(argv[1]);
    return 1;
  }
  uint8_t dmac[6];
  if (sscanf(argv[2], "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &dmac[0], &dmac[1], &dmac[2], &dmac[3],
             &dmac[4], &dmac[5]) != 6) {
    fprintf(stderr, "bad MAC %s\n", argv[2]);
    return 2;
  }
  struct in_addr dst;
  if (inet_pton(AF_INET, argv[3], &dst) != 1) {
    fprintf(stderr, "bad address %s\n", argv[3]);
    return 2;
  }
  double seconds = atof(argv[4]);
  FILE *f = fopen(argv[5], "r");
  if (!f) {
    perror(argv[5]);
    return 1;
  }
  static uint8_t frames[MAX_SOURCES][FRAME_LEN];
  char line[64];
  size_t n = 0;
  while (n < MAX_SOURCES && fgets(line, sizeof line, f)) {
    struct in_addr src;
    line[strcspn(line, "\r\n")] = 0;
    if (inet_pton(AF_INET, line, &src) != 1) continue;
    uint8_t *fr = frames[n++];
    memset(fr, 0, FRAME_LEN);
    struct ether_header *eth = (void *)fr;
    memcpy(eth->ether_dhost, dmac, 6);
    uint8_t smac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
    memcpy(eth->ether_shost, smac, 6);
    eth->ether_type = htons(ETHERTYPE_IP);
    struct iphdr *ip = (void *)(fr + sizeof *eth);
    ip->version = 4;
    ip->ihl = 5;
    ip->ttl = 64;
    ip->protocol = IPPROTO_UDP;
    ip->tot_len = htons(FRAME_LEN - sizeof *eth);
    ip->saddr = src.s_addr;
    ip->daddr = dst.s_addr;
    ip->check = checksum(ip, sizeof *ip);
    struct udphdr *udp = (void *)(ip + 1);
    udp->source = htons(9);
    udp->dest = htons(9);
    udp->len = htons(FRAME_LEN - sizeof *eth - sizeof *ip);
  }
  fclose(f);
  if (n == 0) {
    fprintf(stderr, "no source addresses in %s\n", argv[5]);
    return 2;
  }

  int fd = socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) {
    perror("socket(AF_PACKET)");
    return 1;
  }
  int one = 1;
  if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) != 0)
    perror("PACKET_QDISC_BYPASS (continuing through the qdisc)");
  struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = (int)ifindex, .sll_halen = 6};
  memcpy(to.sll_addr, dmac, 6);

  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_len = FRAME_LEN;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &to;
    msgs[i].msg_hdr.msg_namelen = sizeof to;
  }
  size_t next = 0;
  unsigned long long sent = 0;
  double start = now(), end = start + seconds, t = start;
  unsigned calls = 0;
  while (t < end) {
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = frames[next];
      if (++next == n) next = 0;
    }
    int r = sendmmsg(fd, msgs, BATCH, 0);
    if (r > 0) sent += (unsigned)r;
    if ((++calls & 63) == 0) t = now();
  }
  printf("{\"sent\":%llu,\"seconds\":%.6f}\n", sent, now() - start);
  close(fd);
  return 0;
}
