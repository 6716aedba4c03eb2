/*
 * tfork-cowshare MIB: pages two processes share copy-on-write, rewritten
 * while a capture runs.
 *
 * The parent fills MIB MiB of a private file mapping (as a dynamic loader
 * fills the libraries it relocates) and forks a child, which shares those
 * pages copy-on-write with it (as a zygote's children do). The child walks
 * the pages: it writes its first word (the write copies the page) and, one
 * page behind, its second word (a write to a page it already owns). Before
 * each write it checks what the page holds, so a process restored from a
 * capture that took a page after it changed (a shared page, or one of the
 * child's own) finds the page out of step and says so. The child exits after
 * a pass; the parent checks its own pages, which nobody writes, and forks the
 * next child.
 *
 * /tmp/cowshare.status holds "ok PASSES" (rewritten after every pass and at
 * once on SIGUSR1) or "BROKEN what (page N) at PASSES", after which the
 * parent only waits.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096
#define WORDS (PG / 8)
#define STATUS "/tmp/cowshare.status"
#define BACKING "/tmp/cowshare.map"

#include "check.h"

static uint64_t passes;
static int is_child;

static void status(const char *text)
{
	write_status(STATUS, text, passes);
}

static void broken(const char *what, size_t page)
{
	write_broken(STATUS, passes, "%s (page %zu)", what, page);
	if (is_child)
		_exit(1);
	for (;;) /* stays up, so that the status can be read */
		pause();
}

static void pause_a_little(void)
{
	struct timespec ts = { 0, 20000 };

	nanosleep(&ts, NULL);
}

/* One pass of a child: page i goes from (0, 0) to (tag, 0) to (tag, tag). */
static void walk(volatile uint64_t *p, size_t n, uint64_t tag)
{
	for (size_t i = 0; i <= n; i++) {
		if (i < n) {
			if (p[i * WORDS] != 0 || p[i * WORDS + 1] != 0)
				broken("a shared page changed", i);
			p[i * WORDS] = tag;
		}
		if (i > 0) {
			if (p[(i - 1) * WORDS] != tag || p[(i - 1) * WORDS + 1] != 0)
				broken("an own page changed", i - 1);
			p[(i - 1) * WORDS + 1] = tag;
		}
		pause_a_little();
	}
	for (size_t i = 0; i < n; i++)
		if (p[i * WORDS] != tag || p[i * WORDS + 1] != tag)
			broken("a finished page changed", i);
}

int main(int argc, char **argv)
{
	unsigned long mib = argc == 2 ? count_arg(argv[1]) : 0;

	if (mib == 0) {
		fprintf(stderr, "usage: tfork-cowshare MIB\n");
		return 2;
	}
	size_t n = mib * (1 << 20) / PG;
	volatile uint64_t *p = map_private_file("tfork-cowshare", BACKING, n * PG);

	/* The file holds zeroes; the parent's own copy of each page holds (0, 0) and the page's number. */
	for (size_t i = 0; i < n; i++)
		p[i * WORDS + 2] = i;
	struct sigaction sa = { .sa_handler = on_usr1 }; /* no SA_RESTART: it ends a wait */

	sigaction(SIGUSR1, &sa, NULL);
	status("ok");
	for (;;) {
		pid_t child = fork();

		if (child < 0)
			broken("fork", 0);
		if (child == 0) {
			is_child = 1;
			walk(p, n, passes + 1);
			_exit(0);
		}
		int st;

		while (waitpid(child, &st, 0) < 0) {
			if (want_status) {
				want_status = 0;
				status("ok");
			}
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			for (;;) /* the child wrote why */
				pause();
		for (size_t i = 0; i < n; i++)
			if (p[i * WORDS] != 0 || p[i * WORDS + 1] != 0 || p[i * WORDS + 2] != i)
				broken("a parent's page changed", i);
		passes++;
		status("ok");
	}
}
