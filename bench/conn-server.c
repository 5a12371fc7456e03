/*
 * The server of the new-connection benchmark: accepts a connection, reads the request,
 * answers one fixed HTTP response and closes. One thread, blocking: every connection is
 * a whole TCP handshake, request, response and teardown (wrk with "Connection: close").
 * Compiled at run time by bench/pod-to-pod.ts; usage: conn-server <port>.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char reply[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: conn-server <port>\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argv[1]));
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 1024) != 0) {
    perror("bind/listen");
    return 1;
  }
  printf("listening\n");
  fflush(stdout);
  char buf[4096];
  for (;;) {
    int c = accept(ls, NULL, NULL);
    if (c < 0) continue;
    /* One read holds wrk's small request; answer whatever came. */
    ssize_t n = read(c, buf, sizeof buf);
    if (n > 0) {
      ssize_t w = write(c, reply, sizeof reply - 1);
      (void)w;
    }
    close(c);
  }
}
