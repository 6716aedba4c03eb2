/*
 * tfork-memwrite MIB: a process whose memory must be captured at one instant.
 *
 * It writes a counter round-robin over MIB MiB of pages (page i holds the
 * last count that fell on it) and churns a small region by munmap()+mmap()
 * and mremap(). Before each write it checks the page it is about to
 * overwrite, and the region before replacing it: a process restored from a
 * capture that mixed pages of different instants finds a page out of step
 * within one pass over its memory and says so.
 *
 * /tmp/memwrite.status holds "ok COUNT" (rewritten about every second, and
 * at once on SIGUSR1) or "BROKEN what at COUNT", after which it exits 1.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PG 4096
#define STATUS "/tmp/memwrite.status"

#include "check.h"

static void status(const char *text, uint64_t g)
{
	write_status(STATUS, text, g);
}

static void broken(const char *what, uint64_t g)
{
	write_broken(STATUS, g, "%s", what);
	exit(1);
}

int main(int argc, char **argv)
{
	unsigned long mib = argc == 2 ? count_arg(argv[1]) : 0;

	if (mib == 0) {
		fprintf(stderr, "usage: tfork-memwrite MIB\n");
		return 2;
	}
	size_t n = mib * (1 << 20) / PG;
	volatile uint64_t *p = mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t rl = 64 * PG;
	volatile uint64_t *r = mmap(NULL, rl, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || r == MAP_FAILED) {
		perror("tfork-memwrite: mmap");
		return 1;
	}
	signal(SIGUSR1, on_usr1);
	/* as if counting had started at 0: page i holds i - n (page 0 holds 0) */
	for (size_t i = 0; i < n; i++)
		p[i * PG / 8] = i ? (uint64_t)i - n : 0;
	uint64_t g = 0, rtag = 0;
	for (size_t i = 0; i < rl / 8; i += PG / 8)
		r[i] = rtag;
	time_t last = 0;
	status("ok", g);
	for (;;) {
		for (int k = 0; k < 1000; k++) {
			if (p[((g + 1) % n) * PG / 8] != g + 1 - n)
				broken("ring", g);
			g++;
			p[(g % n) * PG / 8] = g;
		}
		for (size_t i = 0; i < rl / 8; i += PG / 8)
			if (r[i] != rtag)
				broken("region", g);
		if (g % 3000 == 0) {
			/* move it: grow with MREMAP_MAYMOVE, drop the new half */
			void *q = mremap((void *)r, rl, rl * 2, MREMAP_MAYMOVE);
			if (q == MAP_FAILED)
				broken("mremap", g);
			munmap((char *)q + rl, rl);
			r = q;
		} else {
			/* replace it */
			munmap((void *)r, rl);
			r = mmap(NULL, rl, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (r == MAP_FAILED)
				broken("mmap", g);
			rtag = g;
			for (size_t i = 0; i < rl / 8; i += PG / 8)
				r[i] = rtag;
		}
		time_t now = time(NULL);
		if (want_status || now != last) {
			want_status = 0;
			last = now;
			status("ok", g);
		}
	}
}
