/*
 * tfork-pause-probe: how long the container's processes stopped, seen from
 * inside. It wakes every millisecond and keeps the longest gap between two
 * wake-ups; SIGUSR1 writes that gap in microseconds to
 * /tmp/tfork-pause.max (aside, then renamed into place) and starts over.
 * The benchmark builds it (gcc -static) and copies it into each source,
 * resets it before a clone and reads it after: a frozen source shows as
 * one long gap.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <time.h>

#define OUT "/tmp/tfork-pause.max"

static volatile sig_atomic_t want;

static void on_usr1(int sig) { (void)sig; want = 1; }

static long long now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

int main(void)
{
	struct timespec ms = { 0, 1000000 };
	long long last, max = 0;

	signal(SIGUSR1, on_usr1);
	last = now_us();
	for (;;) {
		nanosleep(&ms, NULL);
		long long t = now_us();
		if (t - last > max)
			max = t - last;
		last = t;
		if (want) {
			FILE *f = fopen(OUT ".tmp", "w");
			want = 0;
			if (f) {
				fprintf(f, "%lld\n", max);
				if (fclose(f) == 0)
					rename(OUT ".tmp", OUT);
			}
			max = 0;
		}
	}
}
