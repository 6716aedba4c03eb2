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
 * Why C and not a shell script: crun starts CRIU three times per dump or
 * restore (podman's version check, crun's, the operation), and a script that
 * reads the NUL-separated command line needs a subshell, tr and sed: ~7 ms per
 * start, ~0.1 s of CPU per clone of four. This costs a fraction of a ms.
 *
 * Built by `podman-tfork setup` with DISPATCH_CRIU_BIN (and DISPATCH_KDAT_DIR) defined.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
	static char cmdline[1 << 16];
	char conf[4096];
	const char *wp;
	struct stat st;

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
