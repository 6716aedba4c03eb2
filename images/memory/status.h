/*
 * The status file of the memory image's checking programs (tfork-memwrite,
 * tfork-cowshare, tfork-relro): one line, "ok COUNT" or "BROKEN what at
 * COUNT", replaced whole (written beside it, then renamed) so that a reader
 * never sees half of one. A test asks for a fresh one with SIGUSR1, which
 * sets want_status, and reads it.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>

static volatile sig_atomic_t want_status;

static void on_usr1(int sig) { (void)sig; want_status = 1; }

/* Replace the status file at @path with "TEXT COUNT". */
static void write_status(const char *path, const char *text, unsigned long long count)
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
static void write_broken(const char *path, unsigned long long count, const char *fmt, ...)
{
	char what[160], text[192];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(text, sizeof(text), "BROKEN %s at", what);
	write_status(path, text, count);
}
