/*
 * tortie — the CNI plugin a runtime executes (CNI_COMMAND and friends in the environment,
 * the network config on stdin).
 *
 * It does no networking itself: it hands the request to the node's agent (`tortie node
 * run`) over the unix socket the config names ("agent_socket", default
 * /var/run/tortie/cni.sock), prints the agent's answer — a CNI result or a CNI error —
 * and exits with the agent's status. The agent does IPAM, the veth, the endpoint record
 * and waits for the endpoint to be programmed (src/cni/server.ts). A process start of a
 * few hundred microseconds replaces a Node start-up per call.
 *
 * Without an agent (socket missing, refused, or the agent gone mid-call) ADD, DEL, CHECK
 * and GC fail closed with code 11 ("try again later": runtimes retry), STATUS answers 50
 * ("not available"); the message names the socket. VERSION is answered here: it must
 * work with no agent at all.
 *
 * Wire format: ("KEY=VALUE" NUL)* NUL stdin EOF  →  exit-code LF stdout EOF.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/var/run/tortie/cni.sock"
#define LATEST_VERSION "1.1.0"
#define SUPPORTED "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]"
#define MAX_STDIN (4 << 20)

extern char **environ;

struct buf {
	char *data;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d) {
			fputs("tortie: out of memory\n", stderr);
			exit(1);
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/* --- a JSON reader just large enough to find two top-level strings ------------------- */

static const char *ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Skips a string starting at '"'; NULL when malformed. */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\') {
			p++;
			continue;
		}
		if (*p == '"')
			return p + 1;
		if ((unsigned char)*p < 0x20)
			return NULL;
	}
	return NULL;
}

static const char *skip_value(const char *p, const char *end, int depth)
{
	p = ws(p, end);
	if (p >= end || depth > 64)
		return NULL;
	if (*p == '"')
		return skip_string(p, end);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		int object = *p == '{';
		p = ws(p + 1, end);
		if (p < end && *p == close)
			return p + 1;
		for (;;) {
			if (object) {
				p = ws(p, end);
				if (p >= end || *p != '"' || !(p = skip_string(p, end)))
					return NULL;
				p = ws(p, end);
				if (p >= end || *p != ':')
					return NULL;
				p++;
			}
			if (!(p = skip_value(p, end, depth + 1)))
				return NULL;
			p = ws(p, end);
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p < end && *p == close)
				return p + 1;
			return NULL;
		}
	}
	const char *start = p;
	while (p < end && (strchr("+-.0123456789eE", *p) || (*p >= 'a' && *p <= 'z')))
		p++;
	return p > start ? p : NULL;
}

/*
 * Copies the top-level string field `key` (without escapes) into out; returns 1 when
 * found, 0 when absent, 2 when present but not a string that fits `out` without escapes,
 * -1 when the document is not a JSON object.
 */
static int top_string(const char *doc, size_t len, const char *key, char *out, size_t outlen)
{
	const char *p = doc, *end = doc + len;
	size_t klen = strlen(key);
	int found = 0;
	p = ws(p, end);
	if (p >= end || *p != '{')
		return -1;
	p = ws(p + 1, end);
	if (p < end && *p == '}')
		return ws(p + 1, end) == end ? 0 : -1;
	for (;;) {
		p = ws(p, end);
		if (p >= end || *p != '"')
			return -1;
		const char *k = p + 1, *kend = skip_string(p, end);
		if (!kend)
			return -1;
		p = ws(kend, end);
		if (p >= end || *p != ':')
			return -1;
		p = ws(p + 1, end);
		const char *v = p;
		if (!(p = skip_value(p, end, 1)))
			return -1;
		if (!found && (size_t)(kend - 1 - k) == klen && !memcmp(k, key, klen)) {
			size_t n = *v == '"' ? (size_t)(p - 1 - (v + 1)) : 0;
			if (*v == '"' && !memchr(v + 1, '\\', n) && n < outlen) {
				memcpy(out, v + 1, n);
				out[n] = '\0';
				found = 1;
			} else {
				found = 2;
			}
		}
		p = ws(p, end);
		if (p < end && *p == ',') {
			p++;
			continue;
		}
		if (p < end && *p == '}')
			return ws(p + 1, end) == end ? found : -1;
		return -1;
	}
}

/* --- answers ------------------------------------------------------------------------- */

static const char *versions[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", NULL };

static int supported(const char *v)
{
	for (int i = 0; versions[i]; i++)
		if (!strcmp(v, versions[i]))
			return 1;
	return 0;
}

/* Writes a JSON string (quoted, escaped). */
static void put_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static int fail(const char *version, int code, const char *msg, const char *details)
{
	printf("{\"cniVersion\":\"%s\",\"code\":%d,\"msg\":", version, code);
	put_json_string(stdout, msg);
	fputs(",\"details\":", stdout);
	put_json_string(stdout, details);
	fputs("}\n", stdout);
	return 1;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(void)
{
	struct buf in = { 0 };
	char chunk[65536];
	for (;;) {
		ssize_t n = read(0, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf_add(&in, chunk, (size_t)n);
		if (in.len > MAX_STDIN)
			return fail(LATEST_VERSION, 6, "Failed to decode content",
				    "the network config on stdin is larger than 4 MiB");
	}
	if (!in.data)
		buf_add(&in, "", 0);

	/* The version errors are reported in: the config's, if tortie speaks it. */
	char version[32] = LATEST_VERSION;
	char asked[32];
	int parsed = top_string(in.data, in.len, "cniVersion", asked, sizeof asked);
	if (parsed == 1 && supported(asked))
		strcpy(version, asked);

	const char *command = getenv("CNI_COMMAND");
	if (command && !strcmp(command, "VERSION")) {
		const char *blank = ws(in.data, in.data + in.len);
		if (blank != in.data + in.len && parsed < 0)
			return fail(LATEST_VERSION, 6, "Failed to decode content",
				    "VERSION input is not a JSON object");
		printf("{\"cniVersion\":\"%s\",\"supportedVersions\":" SUPPORTED "}\n", version);
		return 0;
	}

	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int socket_field = parsed < 0 ? 0 : top_string(in.data, in.len, "agent_socket", path, sizeof path);
	if (socket_field == 2)
		return fail(version, 7, "Invalid network configuration",
			    "agent_socket must be an absolute path of at most 107 bytes, without escapes");
	if (socket_field != 1)
		strcpy(path, DEFAULT_SOCKET);

	/* The request: the CNI_* environment, an empty entry, then stdin. */
	struct buf req = { 0 };
	for (char **e = environ; *e; e++)
		if (!strncmp(*e, "CNI_", 4))
			buf_add(&req, *e, strlen(*e) + 1);
	buf_add(&req, "", 1);
	buf_add(&req, in.data, in.len);

	int status_only = command && !strcmp(command, "STATUS");
	int down_code = status_only ? 50 : 11;
	const char *down_msg = status_only ? "Plugin not available" : "Try again later";
	char details[512];

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	memcpy(addr.sun_path, path, strlen(path)); /* path is shorter than sun_path */
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
		snprintf(details, sizeof details,
			 "the tortie agent of this node does not answer on %s (%s): is `tortie node run` running? "
			 "Nothing was done; the runtime retries",
			 path, strerror(errno));
		return fail(version, down_code, down_msg, details);
	}
	if (write_all(fd, req.data, req.len) != 0 || shutdown(fd, SHUT_WR) != 0) {
		snprintf(details, sizeof details, "sending the request to the tortie agent on %s failed: %s",
			 path, strerror(errno));
		return fail(version, down_code, down_msg, details);
	}

	struct buf out = { 0 };
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(details, sizeof details, "reading the tortie agent's answer on %s failed: %s",
				 path, strerror(errno));
			return fail(version, down_code, down_msg, details);
		}
		if (n == 0)
			break;
		buf_add(&out, chunk, (size_t)n);
	}
	close(fd);
	char *nl = out.data ? memchr(out.data, '\n', out.len) : NULL;
	if (!nl) {
		snprintf(details, sizeof details,
			 "the tortie agent on %s closed the connection without an answer (did it stop?); "
			 "the runtime retries",
			 path);
		return fail(version, down_code, down_msg, details);
	}
	int code = atoi(out.data);
	size_t head = (size_t)(nl + 1 - out.data);
	if (write_all(1, nl + 1, out.len - head) != 0)
		return 1;
	return code;
}
