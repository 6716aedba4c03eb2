/*
 * podman-tfork's `criu`: the first `criu` in the PATH of the project's podman
 * (the CLI's and the long-lived service's). Written here because podman passes
 * only PATH through to crun, and crun's libcriu starts `criu` from the PATH:
 * so the per-operation options reach CRIU through a file, not a flag.
 *
 * crun runs with `--work-path <bundle>` on its own command line. When that
 * bundle holds a tfork-criu.conf (left there by podman-tfork around one dump
 * or restore), it becomes CRIU's configuration file (CRIU_CONFIG_FILE, read in
 * RPC mode too); a CRIU_CONFIG_FILE already set wins, and without a file CRIU
 * runs as is. CRIU_KDAT_DIR names where CRIU caches its kernel facts where /run
 * is not a tmpfs (criu-modules/patches/0009).
 *
 * CRIU is started three times per dump or restore: podman's version check,
 * crun's (libcriu's criu_check_version()), then the operation. Each check
 * starts CRIU in RPC mode (`criu swrk FD`) for one VERSION request, ~13-16 ms
 * of a dump's or restore's wall time on this project's hosts (CRIU loads 20
 * shared libraries to answer). When built with the installed CRIU's version
 * (DISPATCH_VERSION_MAJOR ..., from `criu --version` by setup), the dispatcher
 * answers such a request itself, with the bytes CRIU's handle_version() sends,
 * and exits as CRIU does after one request; any other request (a message it
 * only peeked at) is left on the socket for CRIU.
 *
 * Why C and not a shell script: a script that reads the NUL-separated command
 * line needs a subshell, tr and sed: ~7 ms per start, ~0.1 s of CPU per clone
 * of four. This costs a fraction of a ms.
 *
 * Built by `podman-tfork setup` with DISPATCH_CRIU_BIN (and DISPATCH_KDAT_DIR,
 * DISPATCH_VERSION_*) defined.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef DISPATCH_CRIU_BIN
#error "DISPATCH_CRIU_BIN (the CRIU binary to run) must be defined"
#endif
#ifndef DISPATCH_KDAT_DIR
#define DISPATCH_KDAT_DIR ""
#endif

#define CONF_NAME "tfork-criu.conf"
#define WORK_PATH "--work-path"

/* The value of --work-path in the parent's command line, or NULL. */
static const char *parent_work_path(char *buf, size_t size)
{
	char proc[64];
	ssize_t n = 0, r;
	int fd;

	snprintf(proc, sizeof(proc), "/proc/%d/cmdline", (int)getppid());
	fd = open(proc, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	while ((size_t)n < size - 1 && (r = read(fd, buf + n, size - 1 - n)) > 0)
		n += r;
	close(fd);
	buf[n] = '\0';

	for (char *arg = buf; arg < buf + n; arg += strlen(arg) + 1) {
		char *next = arg + strlen(arg) + 1;

		if (strcmp(arg, WORK_PATH) == 0)
			return next < buf + n ? next : NULL;
		if (strncmp(arg, WORK_PATH "=", sizeof(WORK_PATH)) == 0)
			return arg + sizeof(WORK_PATH);
	}
	return NULL;
}

#ifdef DISPATCH_VERSION_MAJOR
/* rpc.proto: criu_req.type = 1, criu_req.keep_open = 4, CRIU_REQ_TYPE__VERSION = 10. */
#define REQ_TYPE 1
#define REQ_KEEP_OPEN 4
#define REQ_TYPE_VERSION 10

static int varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; *p < end && shift < 64; shift += 7) {
		unsigned char b = *(*p)++;

		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -1;
}

/* Is this criu_req a VERSION request that closes the session once answered? */
static int is_version_request(const unsigned char *p, const unsigned char *end)
{
	uint64_t key, v, type = 0, keep_open = 0;

	while (p < end) {
		if (varint(&p, end, &key))
			return 0;
		switch (key & 7) {
		case 0:
			if (varint(&p, end, &v))
				return 0;
			if (key >> 3 == REQ_TYPE)
				type = v;
			else if (key >> 3 == REQ_KEEP_OPEN)
				keep_open = v;
			break;
		case 1:
		case 5:
			v = (key & 7) == 1 ? 8 : 4;
			goto skip;
		case 2:
			if (varint(&p, end, &v))
				return 0;
skip:
			if (v > (uint64_t)(end - p))
				return 0;
			p += v;
			break;
		default:
			return 0;
		}
	}
	return type == REQ_TYPE_VERSION && !keep_open;
}

static unsigned char *put_varint(unsigned char *p, uint64_t v)
{
	for (; v >= 0x80; v >>= 7)
		*p++ = (unsigned char)(v | 0x80);
	*p++ = (unsigned char)v;
	return p;
}

/*
 * `criu swrk FD` whose first request is VERSION: answer it as CRIU does
 * (criu_resp { type, success, version { major, minor, sublevel, extra } }) and
 * return the exit status; -1 leaves everything to CRIU, the request unread.
 */
static int answer_version(int argc, char **argv)
{
	unsigned char req[4096], ver[64], resp[80], *v = ver, *r = resp;
	int fd, type;
	socklen_t len = sizeof(type);
	ssize_t n;

	if (argc != 3 || strcmp(argv[1], "swrk") != 0)
		return -1;
	fd = atoi(argv[2]);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) || type != SOCK_SEQPACKET)
		return -1;
	do
		n = recv(fd, req, sizeof(req), MSG_PEEK | MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n <= 0 || (size_t)n > sizeof(req) || !is_version_request(req, req + n))
		return -1;
	if (recv(fd, req, sizeof(req), 0) != n)
		return 1;

	*v++ = 1 << 3;
	v = put_varint(v, DISPATCH_VERSION_MAJOR);
	*v++ = 2 << 3;
	v = put_varint(v, DISPATCH_VERSION_MINOR);
#ifdef DISPATCH_VERSION_SUBLEVEL
	*v++ = 4 << 3;
	v = put_varint(v, DISPATCH_VERSION_SUBLEVEL);
#endif
#ifdef DISPATCH_VERSION_EXTRA
	*v++ = 5 << 3;
	v = put_varint(v, DISPATCH_VERSION_EXTRA);
#endif
	*r++ = 1 << 3;
	r = put_varint(r, REQ_TYPE_VERSION);
	*r++ = 2 << 3;
	*r++ = 1;
	*r++ = 10 << 3 | 2;
	r = put_varint(r, (uint64_t)(v - ver));
	memcpy(r, ver, v - ver);
	r += v - ver;
	return send(fd, resp, r - resp, MSG_NOSIGNAL) == r - resp ? 0 : 1;
}
#endif

int main(int argc, char **argv)
{
	static char cmdline[1 << 16];
	char conf[4096];
	const char *wp;
	struct stat st;

#ifdef DISPATCH_VERSION_MAJOR
	int status = answer_version(argc, argv);

	if (status >= 0)
		return status;
#endif
	(void)argc;
	if (DISPATCH_KDAT_DIR[0])
		setenv("CRIU_KDAT_DIR", DISPATCH_KDAT_DIR, 1);
	if (!getenv("CRIU_CONFIG_FILE") && (wp = parent_work_path(cmdline, sizeof(cmdline))) && *wp &&
	    snprintf(conf, sizeof(conf), "%s/" CONF_NAME, wp) < (int)sizeof(conf) &&
	    stat(conf, &st) == 0 && S_ISREG(st.st_mode))
		setenv("CRIU_CONFIG_FILE", conf, 1);

	argv[0] = (char *)DISPATCH_CRIU_BIN;
	execv(DISPATCH_CRIU_BIN, argv);
	fprintf(stderr, "podman-tfork: cannot run %s: %s\n", DISPATCH_CRIU_BIN, strerror(errno));
	return 127;
}
