/*
 * tfork-memhold MIB: hold MIB MiB of written anonymous memory (W3 of the
 * benchmark) and report a checksum of it on request.
 *
 * The memory is filled once from a random seed, so a process started afresh
 * holds different contents than the one that was cloned: equal checksums in
 * the source and in a clone mean the clone carries the source's memory.
 *
 *   SIGUSR1      hash the whole region now and write the hash (16 hex digits)
 *                to /tmp/memhold.sum (written aside, then renamed into place)
 *   SIGUSR2      rewrite the next MiB of the region (round robin) with new
 *                values, then write how many times it did so to
 *                /tmp/memhold.changes: a small change, as between two
 *                checkpoints of an agent's step
 *   SIGTERM/INT  exit
 *
 * /tmp/memhold.ready holds the size in MiB once the region is written.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t want_sum, want_change, want_exit;

static void on_usr1(int sig) { (void)sig; want_sum = 1; }
static void on_usr2(int sig) { (void)sig; want_change = 1; }
static void on_term(int sig) { (void)sig; want_exit = 1; }

static int write_file(const char *path, const char *text)
{
	char tmp[256];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f || fputs(text, f) == EOF || fclose(f) == EOF) {
		perror(tmp);
		return -1;
	}
	if (rename(tmp, path)) {
		perror(path);
		return -1;
	}
	return 0;
}

static uint64_t hash(const uint64_t *m, size_t words)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < words; i++) {
		h ^= m[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void fill(uint64_t *m, size_t words, uint64_t *state)
{
	uint64_t x = *state;

	for (size_t i = 0; i < words; i++) { /* xorshift64* */
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		m[i] = x * 0x2545f4914f6cdd1dULL;
	}
	*state = x;
}

int main(int argc, char **argv)
{
	char *end;
	unsigned long long mib = argc > 1 ? strtoull(argv[1], &end, 10) : 0;
	if (argc != 2 || *end || mib == 0) {
		fprintf(stderr, "usage: tfork-memhold MIB (MiB of anonymous memory to hold)\n");
		return 2;
	}
	size_t words = (size_t)(mib << 20) / sizeof(uint64_t);
	uint64_t *m = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		perror("tfork-memhold: mmap");
		return 1;
	}

	uint64_t x;
	if (getrandom(&x, sizeof(x), 0) != sizeof(x))
		x = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)time(NULL);
	x |= 1;
	fill(m, words, &x);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old);

	char text[64];
	snprintf(text, sizeof(text), "%llu\n", mib);
	if (write_file("/tmp/memhold.ready", text))
		return 1;
	unsigned long long changes = 0;
	size_t mib_words = (1 << 20) / sizeof(uint64_t);
	for (;;) {
		while (!want_sum && !want_change && !want_exit)
			sigsuspend(&old);
		if (want_exit)
			return 0;
		if (want_change) {
			want_change = 0;
			fill(m + (changes % mib) * mib_words, mib_words, &x);
			changes++;
			snprintf(text, sizeof(text), "%llu\n", changes);
			if (write_file("/tmp/memhold.changes", text))
				return 1;
		}
		if (!want_sum)
			continue;
		want_sum = 0;
		snprintf(text, sizeof(text), "%016llx\n", (unsigned long long)hash(m, words));
		if (write_file("/tmp/memhold.sum", text))
			return 1;
	}
}
