/*
 * What the memory image's checking programs (tfork-memwrite, tfork-cowshare,
 * tfork-relro) share.
 *
 * Their status file: one line, "ok COUNT" or "BROKEN what at COUNT",
 * replaced whole (written beside it, then renamed) so that a reader never
 * sees half of one. A test asks for a fresh one with SIGUSR1, which sets
 * want_status, and reads it.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t want_status;

static void on_usr1(int sig) { (void)sig; want_status = 1; }

/* A command-line count: its value, or 0 when it is not a whole number. */
static inline unsigned long count_arg(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	return *s && !*end ? v : 0;
}

/* Replace the status file at @path with "TEXT COUNT". */
static inline void write_status(const char *path, const char *text, unsigned long long count)
{
	char tmp[256];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "%s %llu\n", text, count);
	if (fclose(f) == 0)
		rename(tmp, path);
}

/* Replace it with "BROKEN <what> at COUNT", what given as printf's format and arguments. */
static inline void write_broken(const char *path, unsigned long long count, const char *fmt, ...)
{
	char what[160], text[192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(text, sizeof(text), "BROKEN %s at", what);
	write_status(path, text, count);
}

/* A private mapping of a new file of @bytes zeroes at @path (as a loader maps a library), or the program exits. */
static inline void *map_private_file(const char *prog, const char *path, size_t bytes)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	void *p;

	if (fd < 0 || ftruncate(fd, bytes)) {
		fprintf(stderr, "%s: %s: ", prog, path);
		perror(NULL);
		exit(1);
	}
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "%s: mmap %s: ", prog, path);
		perror(NULL);
		exit(1);
	}
	close(fd);
	return p;
}
