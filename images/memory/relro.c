/*
 * tfork-relro MIB BALLAST: read-only memory of a private file mapping, made
 * writable again and rewritten while a capture runs.
 *
 * A dynamic loader relocates a library's pages in a private file mapping and
 * then makes them read-only (RELRO). Background capture leaves such pages in
 * its pipes and only watches them (criu-modules/patches/0013): a dump during
 * which one of them is written must fail, and the engine take it again
 * frozen. No loader writes them again; this program does, all the time, so
 * that every background capture of it loses that race.
 *
 * It fills MIB MiB of a private file mapping, makes it read-only, and then
 * rewrites one page per round: mprotect() it writable, write it, mprotect()
 * it read-only again. Page i holds in its first word the last round r with
 * r % pages == i (0 before its first), in its second word i. Before writing
 * round r into its page it checks that the page holds round r - pages: a
 * process restored from a capture that took a page after it changed finds a
 * round from its future there and says so. It also holds BALLAST MiB of
 * written anonymous memory, so that a capture writes pages for a while after
 * the source runs on.
 *
 * SIGUSR2 makes it hold still (no rounds, so that a capture has nothing to
 * lose a race with) and go on again.
 *
 * /tmp/relro.status holds "ok ROUNDS" (at once on SIGUSR1, and every 4096
 * rounds) or "BROKEN what (page N) at ROUNDS", after which it only waits.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PG 4096
#define WORDS (PG / 8)
#define STATUS "/tmp/relro.status"
#define BACKING "/tmp/relro.map"

#include "check.h"

static volatile sig_atomic_t still;
static uint64_t rounds;

static void on_usr2(int sig) { (void)sig; still = !still; }

static void say(const char *text)
{
	write_status(STATUS, text, rounds);
}

static void fail(const char *what, size_t page)
{
	write_broken(STATUS, rounds, "%s (page %zu)", what, page);
	for (;;) /* stays up, so that the status can be read */
		pause();
}

int main(int argc, char **argv)
{
	unsigned long mib = argc == 3 ? count_arg(argv[1]) : 0, ballast = argc == 3 ? count_arg(argv[2]) : 0;

	if (mib == 0) {
		fprintf(stderr, "usage: tfork-relro MIB BALLAST\n");
		return 2;
	}
	size_t n = mib * (1 << 20) / PG;
	volatile uint64_t *p = map_private_file("tfork-relro", BACKING, n * PG);
	char *b = ballast ? mmap(NULL, ballast << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : NULL;

	if (b == MAP_FAILED) {
		perror("tfork-relro: mmap");
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		p[i * WORDS + 1] = i;
	if (b)
		memset(b, 0x5a, ballast << 20);
	if (mprotect((void *)p, n * PG, PROT_READ)) {
		perror("tfork-relro: mprotect");
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_usr1 }, sa2 = { .sa_handler = on_usr2 };

	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa2, NULL);
	say("ok");
	for (;;) {
		uint64_t r = rounds + 1;
		size_t i = r % n;
		volatile uint64_t *pg = p + i * WORDS;
		struct timespec ts = { 0, 50000 };

		if (still) {
			if (want_status) {
				want_status = 0;
				say("ok");
			}
			ts.tv_nsec = 1000000;
			nanosleep(&ts, NULL);
			continue;
		}
		if (pg[0] != (r > n ? r - n : 0) || pg[1] != i)
			fail("a page holds another round", i);
		if (mprotect((void *)pg, PG, PROT_READ | PROT_WRITE))
			fail("mprotect", i);
		pg[0] = r;
		if (mprotect((void *)pg, PG, PROT_READ))
			fail("mprotect", i);
		rounds = r;
		if (want_status || r % 4096 == 0) {
			want_status = 0;
			say("ok");
		}
		nanosleep(&ts, NULL);
	}
}
