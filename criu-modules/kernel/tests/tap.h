/*
 * What the guest's test programs share: TAP output ("ok N - name" or
 * "not ok N - name: why", counted so main() can exit non-zero on a
 * failure) and a monotonic clock in seconds.
 */
#ifndef TFORK_TESTS_TAP_H
#define TFORK_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int failures, testno;

static void result(int ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	testno++;
	if (ok) {
		printf("ok %d - %s\n", testno, name);
	} else {
		failures++;
		printf("not ok %d - %s: ", testno, name);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
	}
	fflush(stdout);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

#endif
