// SPDX-License-Identifier: GPL-2.0
/*
 * CRIU through tfork_graft, run as root inside the lane's guest with the
 * module loaded and a CRIU that has the graft options (patch 0004).
 * Prints TAP; exits 1 if any test failed, 2 if it could not run.
 *
 *   criu-graft-test CRIU             with tfork_graft loaded
 *   criu-graft-test CRIU nomodule    after it is removed
 *
 * A process tree in its own pid namespace (init with two threads, a child
 * process; private anonymous memory shared by fork between the two, the
 * child's own anonymous memory, a private file mapping it wrote to, shared
 * anonymous memory, a memfd) is dumped with --graft-pages --leave-stopped
 * and restored twice with --graft-from.  Both copies must run on with the
 * source's memory, sharing its physical pages (pagemap PFNs) until they
 * write; the source, resumed, must run on unchanged.
 *
 * Without the module the same CRIU must dump and restore the ordinary way,
 * and refuse --graft-from.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"

#define PAGE	4096UL
#define MiB	(1024UL * 1024)
#define A_LEN	(64 * MiB)	/* init's anonymous memory, also mapped in the child by fork */
#define C_LEN	(16 * MiB)	/* the child's own anonymous memory */
#define F_PAGES	8		/* private file mapping, page 0 written */
#define S_PAGES	4		/* shared anonymous */
#define M_PAGES	4		/* memfd, shared */
#define WORK	"/tmp/cgt"
#define MARK	0xC10AE5C10AE5C10AULL

/* Counters page: what the workload's tasks increment while they run. */
enum { K_INIT, K_THREAD1, K_THREAD2, K_CHILD, K_USR1, K_NR };

static const char *criu;

static void bail(const char *fmt, ...)
{
	va_list ap;

	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(2);
}

static void msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static uint64_t pattern(unsigned long page, unsigned long word, uint64_t seed)
{
	return (page * 0x9E3779B97F4A7C15ULL) ^ (word * 0xBF58476D1CE4E5B9ULL) ^ seed;
}

static void fill(uint64_t *p, unsigned long len, uint64_t seed)
{
	for (unsigned long pg = 0; pg < len / PAGE; pg++)
		for (unsigned long w = 0; w < PAGE / 8; w++)
			p[pg * PAGE / 8 + w] = pattern(pg, w, seed);
}

/* ---- the workload (runs as pid 1 of its own pid namespace) ---- */

struct layout {
	uint64_t *a, *c, *k;
	char *f, *s, *m;
};
static struct layout L;

static void on_usr1(int sig)
{
	(void)sig;
	/* init writes into A, the child into C: each gets its own copy of one page */
	if (getpid() == 1)
		L.a[0] = MARK;
	else
		L.c[0] = MARK;
	__atomic_add_fetch(&L.k[K_USR1], 1, __ATOMIC_SEQ_CST);
}

static void *thread_main(void *arg)
{
	long i = (long)arg;

	for (;;) {
		__atomic_add_fetch(&L.k[i], 1, __ATOMIC_RELAXED);
		msleep(2);
	}
	return NULL;
}

static void *map(size_t len, int prot, int flags, int fd)
{
	void *p = mmap(NULL, len, prot, flags, fd, 0);

	if (p == MAP_FAILED)
		_exit(20);
	return p;
}

static void workload(void)
{
	char host_pid[32] = "";
	pthread_t t;
	FILE *info;
	int fd, null;
	ssize_t n;

	setsid();
	null = open("/dev/null", O_RDWR);
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2);
	close(null);

	L.a = map(A_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	L.c = map(C_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	L.k = map(PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	fill(L.a, A_LEN, 0xA);

	fd = open(WORK "/file", O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		_exit(21);
	{
		char buf[PAGE];

		memset(buf, 'f', sizeof(buf));
		for (int i = 0; i < F_PAGES; i++)
			if (write(fd, buf, PAGE) != PAGE)
				_exit(22);
	}
	L.f = map(F_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd);
	close(fd);
	memset(L.f, 'w', PAGE);

	L.s = map(S_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	memset(L.s, 's', S_PAGES * PAGE);
	fd = memfd_create("cgt-memfd", 0);
	if (fd < 0 || ftruncate(fd, M_PAGES * PAGE))
		_exit(23);
	L.m = map(M_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
	close(fd);
	memset(L.m, 'm', M_PAGES * PAGE);

	signal(SIGUSR1, on_usr1);
	if (fork() == 0) {
		/* the child: writes its own memory, then counts */
		fill(L.c, C_LEN, 0xC);
		L.s[S_PAGES * PAGE - 1] = 'r';	/* ready */
		for (;;) {
			__atomic_add_fetch(&L.k[K_CHILD], 1, __ATOMIC_RELAXED);
			msleep(2);
		}
	}
	while (L.s[S_PAGES * PAGE - 1] != 'r')
		msleep(1);
	pthread_create(&t, NULL, thread_main, (void *)K_THREAD1);
	pthread_create(&t, NULL, thread_main, (void *)K_THREAD2);

	n = readlink("/proc/self", host_pid, sizeof(host_pid) - 1);
	if (n > 0)
		host_pid[n] = 0;
	info = fopen(WORK "/info.tmp", "w");
	if (!info)
		_exit(24);
	fprintf(info, "%s %p %p %p %p %p %p\n", host_pid, (void *)L.a, (void *)L.c, (void *)L.k, (void *)L.f,
		(void *)L.s, (void *)L.m);
	fclose(info);
	rename(WORK "/info.tmp", WORK "/info");
	for (;;) {
		__atomic_add_fetch(&L.k[K_INIT], 1, __ATOMIC_RELAXED);
		msleep(2);
	}
}

/* ---- the harness ---- */

static pid_t src_init, src_child;

static pid_t spawn_workload(void)
{
	FILE *f;
	pid_t p, host = 0;
	int i;

	p = fork();
	if (p < 0)
		bail("fork: %s", strerror(errno));
	if (p == 0) {
		if (unshare(CLONE_NEWPID))
			_exit(30);
		if (fork() == 0)
			workload();
		_exit(0);
	}
	waitpid(p, NULL, 0);
	for (i = 0; i < 3000; i++) {
		f = fopen(WORK "/info", "r");
		if (f) {
			unsigned long a, c, k, fm, s, m;

			if (fscanf(f, "%d %lx %lx %lx %lx %lx %lx", &host, &a, &c, &k, &fm, &s, &m) == 7) {
				L.a = (void *)a;
				L.c = (void *)c;
				L.k = (void *)k;
				L.f = (void *)fm;
				L.s = (void *)s;
				L.m = (void *)m;
			}
			fclose(f);
			if (host > 0)
				return host;
		}
		msleep(10);
	}
	bail("the workload did not start");
	return -1;
}

/* First child of @pid's main thread, or -1. */
static pid_t child_of(pid_t pid)
{
	char path[64];
	FILE *f;
	pid_t c = -1;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%d", &c) != 1)
		c = -1;
	fclose(f);
	return c;
}

static int nr_threads(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] && p[2] ? p[2] : '?';
}

/*
 * Read another process's memory through /proc/PID/mem, not
 * process_vm_readv(): that one pins the pages it reads (FOLL_PIN), and
 * since 5.19 a read-only pin of a copy-on-write shared anonymous page
 * unshares it first, so reading would break the very sharing checked here.
 */
static int peek(pid_t pid, const void *addr, void *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = pread(fd, buf, len, (off_t)(unsigned long)addr);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

static uint64_t counter(pid_t pid, int i)
{
	uint64_t v = 0;

	if (peek(pid, &L.k[i], &v, sizeof(v)))
		return (uint64_t)-1;
	return v;
}

/* Bytes of [addr, addr+len) differing between two processes, -1 if unreadable. */
static long mem_diff(pid_t a, pid_t b, const void *addr, unsigned long len)
{
	static char ba[MiB], bb[MiB];
	long diff = 0;

	for (unsigned long off = 0; off < len; off += MiB) {
		unsigned long n = len - off < MiB ? len - off : MiB;

		if (peek(a, (char *)addr + off, ba, n) || peek(b, (char *)addr + off, bb, n))
			return -1;
		for (unsigned long i = 0; i < n; i++)
			diff += ba[i] != bb[i];
	}
	return diff;
}

/* Pages of @pid's [addr, addr+len) that do not hold the pattern of @seed. */
static long pattern_mismatches(pid_t pid, const void *addr, unsigned long len, uint64_t seed)
{
	static uint64_t buf[PAGE / 8];
	long bad = 0;

	for (unsigned long pg = 0; pg < len / PAGE; pg++) {
		if (peek(pid, (char *)addr + pg * PAGE, buf, PAGE))
			return -1;
		for (unsigned long w = 0; w < PAGE / 8; w++)
			if (buf[w] != pattern(pg, w, seed)) {
				bad++;
				break;
			}
	}
	return bad;
}

static int all_bytes(pid_t pid, const void *addr, unsigned long len, char c)
{
	static char buf[PAGE];

	for (unsigned long off = 0; off < len; off += PAGE) {
		if (peek(pid, (char *)addr + off, buf, PAGE))
			return 0;
		for (unsigned long i = 0; i < PAGE; i++)
			if (buf[i] != c)
				return 0;
	}
	return 1;
}

/*
 * Pages of [addr, addr+len) whose PFN differs between @a and @b (or is
 * absent in either); *shared gets the number of present, equal ones.
 */
static long pfn_mismatches(pid_t a, pid_t b, const void *addr, unsigned long len, long *shared)
{
	char pa[64], pb[64];
	int fa, fb;
	long bad = 0;

	*shared = 0;
	snprintf(pa, sizeof(pa), "/proc/%d/pagemap", a);
	snprintf(pb, sizeof(pb), "/proc/%d/pagemap", b);
	fa = open(pa, O_RDONLY);
	fb = open(pb, O_RDONLY);
	if (fa < 0 || fb < 0)
		bail("pagemap: %s", strerror(errno));
	for (unsigned long pg = 0; pg < len / PAGE; pg++) {
		uint64_t ea = 0, eb = 0;
		off_t off = ((unsigned long)addr / PAGE + pg) * 8;

		if (pread(fa, &ea, 8, off) != 8 || pread(fb, &eb, 8, off) != 8)
			bail("pagemap read");
		if ((ea >> 63) && (eb >> 63) && (ea & ((1ULL << 55) - 1)) == (eb & ((1ULL << 55) - 1)))
			(*shared)++;
		else
			bad++;
	}
	close(fa);
	close(fb);
	return bad;
}

static int run_criu(const char *log, char *const args[], double *secs)
{
	char *argv[64];
	int n = 0, st;
	double t0 = now();
	pid_t p;

	argv[n++] = (char *)criu;
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	p = fork();
	if (p == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(criu, argv);
		_exit(127);
	}
	if (p < 0)
		return -1;
	/* A hung CRIU is a failed test, not a guest that never reports. */
	while (waitpid(p, &st, WNOHANG) != p) {
		if (now() - t0 > 120) {
			kill(p, SIGKILL);
			waitpid(p, &st, 0);
			printf("# %s timed out after 120 s\n", log);
			return -2;
		}
		msleep(20);
	}
	if (secs)
		*secs = now() - t0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void show_log(const char *path, const char *grep)
{
	char line[512];
	FILE *f = fopen(path, "r");
	int n = 0;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if ((!grep || strstr(line, grep)) && n++ < 25)
			printf("# %s", line);
	fclose(f);
}

static long dir_bytes(const char *dir, const char *prefix)
{
	struct dirent *de;
	char path[512];
	struct stat st;
	long sum = 0;
	DIR *d = opendir(dir);

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (!stat(path, &st))
			sum += st.st_size;
	}
	closedir(d);
	return sum;
}

static pid_t read_pidfile(const char *path)
{
	FILE *f = fopen(path, "r");
	pid_t p = -1;

	if (f) {
		if (fscanf(f, "%d", &p) != 1)
			p = -1;
		fclose(f);
	}
	return p;
}

static int advances(pid_t pid, int i)
{
	uint64_t v0 = counter(pid, i), v1;

	for (int t = 0; t < 100; t++) {
		msleep(20);
		v1 = counter(pid, i);
		if (v1 != (uint64_t)-1 && v1 != v0)
			return 1;
	}
	return 0;
}

static int stays(pid_t pid, int i)
{
	uint64_t v0 = counter(pid, i);

	msleep(300);
	return v0 != (uint64_t)-1 && counter(pid, i) == v0;
}

static int wait_usr1(pid_t pid, uint64_t want)
{
	for (int t = 0; t < 500; t++) {
		if (counter(pid, K_USR1) == want)
			return 1;
		msleep(10);
	}
	return 0;
}

/* Checks on one restored copy right after its restore, the source still stopped. */
static void check_clone(const char *name, pid_t init)
{
	pid_t child = child_of(init);
	long shared, bad;
	char t[128];

	snprintf(t, sizeof(t), "%s: init, 2 threads and the child are running", name);
	result(nr_threads(init) == 3 && child > 0, t, "threads %d, child %d", nr_threads(init), child);
	if (child <= 0)
		return;

	snprintf(t, sizeof(t), "%s: init's 64 MiB hold the source's bytes", name);
	bad = mem_diff(src_init, init, L.a, A_LEN);
	result(bad == 0 && pattern_mismatches(init, L.a, A_LEN, 0xA) == 0, t, "%ld bytes differ", bad);
	snprintf(t, sizeof(t), "%s: the child's 16 MiB hold the source child's bytes", name);
	bad = mem_diff(src_child, child, L.c, C_LEN);
	result(bad == 0 && pattern_mismatches(child, L.c, C_LEN, 0xC) == 0, t, "%ld bytes differ", bad);

	snprintf(t, sizeof(t), "%s: init's 64 MiB share the source's physical pages", name);
	bad = pfn_mismatches(src_init, init, L.a, A_LEN, &shared);
	result(bad == 0, t, "%ld of %lu pages not shared", bad, A_LEN / PAGE);
	snprintf(t, sizeof(t), "%s: the child's 64 MiB inherited by fork share them too", name);
	bad = pfn_mismatches(src_child, child, L.a, A_LEN, &shared);
	result(bad == 0, t, "%ld of %lu pages not shared", bad, A_LEN / PAGE);
	snprintf(t, sizeof(t), "%s: the child's own 16 MiB share the source child's pages", name);
	bad = pfn_mismatches(src_child, child, L.c, C_LEN, &shared);
	result(bad == 0, t, "%ld of %lu pages not shared", bad, C_LEN / PAGE);

	snprintf(t, sizeof(t), "%s: private file mapping: written page from the image, the rest from the file",
		 name);
	result(all_bytes(init, L.f, PAGE, 'w') && all_bytes(init, L.f + PAGE, (F_PAGES - 1) * PAGE, 'f'), t,
	       "contents differ");
	snprintf(t, sizeof(t), "%s: shared anonymous memory and memfd restored the ordinary way", name);
	result(all_bytes(init, L.s, S_PAGES * PAGE - PAGE, 's') && all_bytes(init, L.m, M_PAGES * PAGE, 'm') &&
		       all_bytes(child, L.s, S_PAGES * PAGE - PAGE, 's'),
	       t, "contents differ");

	snprintf(t, sizeof(t), "%s: init, both threads and the child run on", name);
	result(advances(init, K_INIT) && advances(init, K_THREAD1) && advances(init, K_THREAD2) &&
		       advances(child, K_CHILD),
	       t, "a counter did not move");
}

static pid_t restore(const char *name, const char *pidfile, double *secs)
{
	char log[128], src[16];
	int rc;

	snprintf(log, sizeof(log), WORK "/%s.log", name);
	snprintf(src, sizeof(src), "%d", src_init);
	unlink(pidfile);
	rc = run_criu(log, (char *[]){ "restore", "-d", "-D", WORK "/img", "-v4", "--graft-from", src, "--pidfile",
				       (char *)pidfile, NULL },
		      secs);
	if (rc) {
		result(0, name, "criu restore exited %d", rc);
		show_log(log, "Error");
		return -1;
	}
	return read_pidfile(pidfile);
}

static int log_has(const char *path, const char *what)
{
	char line[512];
	FILE *f = fopen(path, "r");
	int said = 0;

	while (f && fgets(line, sizeof(line), f))
		said |= strstr(line, what) != NULL;
	if (f)
		fclose(f);
	return said;
}

/* The ordinary restore of the ordinary dump, into a new pid namespace. */
static void ordinary_restore(const char *what)
{
	char name[128];
	pid_t c;
	int rc;

	rc = run_criu(WORK "/restore-full.log",
		      (char *[]){ "restore", "-d", "-D", WORK "/img-full", "-v4", "--pidfile", WORK "/cf.pid", NULL },
		      NULL);
	c = rc ? -1 : read_pidfile(WORK "/cf.pid");
	snprintf(name, sizeof(name), "ordinary restore of the ordinary dump %s: memory and threads back, running",
		 what);
	result(c > 0 && nr_threads(c) == 3 && pattern_mismatches(c, L.a, A_LEN, 0xA) == 0 &&
		       pattern_mismatches(child_of(c), L.c, C_LEN, 0xC) == 0 && advances(c, K_INIT),
	       name, "criu exited %d", rc);
	if (rc)
		show_log(WORK "/restore-full.log", "Error");
	if (c > 0)
		kill(c, SIGKILL);
}

/* After rmmod: the ordinary paths work, --graft-from is refused. */
static int nomodule(void)
{
	char src[16];
	int rc;

	src_init = spawn_workload();
	snprintf(src, sizeof(src), "%d", src_init);
	rc = run_criu(WORK "/dump-full.log",
		      (char *[]){ "dump", "-t", src, "-D", WORK "/img-full", "-v4", "--leave-running", NULL }, NULL);
	result(rc == 0, "without the module: ordinary dump", "criu exited %d", rc);
	ordinary_restore("without the module");
	rc = run_criu(WORK "/dump.log",
		      (char *[]){ "dump", "-t", src, "-D", WORK "/img", "-v4", "--graft-pages", "--leave-stopped",
				  NULL },
		      NULL);
	result(rc == 0, "without the module: dump --graft-pages (needs no module)", "criu exited %d", rc);
	rc = run_criu(WORK "/restore-nomod.log",
		      (char *[]){ "restore", "-d", "-D", WORK "/img", "-v4", "--graft-from", src, NULL }, NULL);
	result(rc != 0 && log_has(WORK "/restore-nomod.log", "/dev/tfork-graft"),
	       "without the module: restore --graft-from is refused, naming /dev/tfork-graft", "criu exited %d",
	       rc);
	kill(src_init, SIGKILL);
	msleep(200);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	printf("# criu-graft-test nomodule: %d tests, %d failed\n", testno, failures);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	pid_t c1, c2, c1_child, c2_child;
	double t_dump, t_r1, t_r2, t_full;
	long shared, bad, pages, full_pages;
	char src[16];
	int rc;

	if (argc < 2)
		bail("usage: criu-graft-test CRIU");
	criu = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	mkdir(WORK, 0700);
	mkdir(WORK "/img", 0700);
	mkdir(WORK "/img-full", 0700);
	if (argc > 2 && !strcmp(argv[2], "nomodule"))
		return nomodule();

	{
		double t;

		run_criu(WORK "/version.log", (char *[]){ "--version", NULL }, &t);
		printf("# criu --version: %.3f s (CRIU's start-up in this guest)\n", t);
	}
	src_init = spawn_workload();
	src_child = child_of(src_init);
	if (src_child <= 0)
		bail("the workload has no child");
	printf("# source: init %d, child %d\n", src_init, src_child);

	/* The ordinary dump, for comparison (and to show it still works). */
	snprintf(src, sizeof(src), "%d", src_init);
	rc = run_criu(WORK "/dump-full.log",
		      (char *[]){ "dump", "-t", src, "-D", WORK "/img-full", "-v4", "--leave-running", NULL }, &t_full);
	result(rc == 0, "ordinary dump (--leave-running) of the tree", "criu exited %d", rc);
	if (rc)
		show_log(WORK "/dump-full.log", "Error");
	full_pages = dir_bytes(WORK "/img-full", "pages-");

	rc = run_criu(WORK "/dump.log",
		      (char *[]){ "dump", "-t", src, "-D", WORK "/img", "-v4", "--graft-pages", "--leave-stopped",
				  NULL },
		      &t_dump);
	result(rc == 0, "dump --graft-pages --leave-stopped", "criu exited %d", rc);
	if (rc) {
		show_log(WORK "/dump.log", "Error");
		bail("no dump");
	}
	pages = dir_bytes(WORK "/img", "pages-");
	printf("# dump: ordinary %.3f s, %ld bytes of pages; --graft-pages %.3f s, %ld bytes of pages\n", t_full,
	       full_pages, t_dump, pages);
	result(pages >= 0 && pages < (long)MiB, "the images hold no anonymous pages (< 1 MiB of pages)",
	       "%ld bytes", pages);
	result(full_pages > (long)(A_LEN + C_LEN), "the ordinary dump holds them (> 80 MiB)", "%ld bytes",
	       full_pages);
	result(proc_state(src_init) == 'T' && proc_state(src_child) == 'T', "the source is left stopped",
	       "states %c %c", proc_state(src_init), proc_state(src_child));

	rc = run_criu(WORK "/restore-nograft.log",
		      (char *[]){ "restore", "-d", "-D", WORK "/img", "-v4", "--pidfile", WORK "/c0.pid", NULL },
		      NULL);
	result(rc != 0, "restore without --graft-from is refused (the pages are not in the images)",
	       "criu exited %d", rc);
	if (rc == 0)
		kill(read_pidfile(WORK "/c0.pid"), SIGKILL);
	result(log_has(WORK "/restore-nograft.log", "restore with --graft-from"),
	       "... saying to restore with --graft-from", "no such message in the log");

	c1 = restore("restore 1", WORK "/c1.pid", &t_r1);
	c2 = restore("restore 2", WORK "/c2.pid", &t_r2);
	if (c1 <= 0 || c2 <= 0)
		bail("restore failed");
	printf("# restores: %.3f s and %.3f s; copies %d and %d\n", t_r1, t_r2, c1, c2);
	{
		char line[512];
		FILE *f = fopen(WORK "/restore 1.log", "r");
		int n = 0;

		char last[512] = "";

		while (f && fgets(line, sizeof(line), f)) {
			if (strstr(line, "Grafted") || strstr(line, "grafts"))
				n++ < 6 ? printf("# %s", line) : 0;
			strcpy(last, line);
		}
		printf("# last line of restore 1's log: %s", last);
		if (f)
			fclose(f);
	}
	result(proc_state(src_init) == 'T', "the source stays stopped during the restores", "state %c",
	       proc_state(src_init));
	check_clone("copy 1", c1);
	check_clone("copy 2", c2);
	c1_child = child_of(c1);
	c2_child = child_of(c2);

	/* Copy 1 writes: it gets its own page, the others keep sharing. */
	kill(c1, SIGUSR1);
	kill(c1_child, SIGUSR1);
	result(wait_usr1(c1, 1) && wait_usr1(c1_child, 1), "copy 1's init and child handle SIGUSR1", "no");
	bad = pfn_mismatches(src_init, c1, L.a, A_LEN, &shared);
	result(bad == 1 && pfn_mismatches(src_init, c1, L.a, PAGE, &shared) == 1,
	       "copy 1's write to one page gets it a page of its own, the other pages stay shared",
	       "%ld pages differ", bad);
	bad = pfn_mismatches(src_child, c1_child, L.c, C_LEN, &shared);
	result(bad == 1, "the same for copy 1's child", "%ld pages differ", bad);
	result(pattern_mismatches(src_init, L.a, A_LEN, 0xA) == 0 && pattern_mismatches(c2, L.a, A_LEN, 0xA) == 0 &&
		       pattern_mismatches(src_child, L.c, C_LEN, 0xC) == 0,
	       "the source and copy 2 do not see copy 1's writes", "they do");
	bad = pfn_mismatches(src_init, c2, L.a, A_LEN, &shared);
	result(bad == 0, "copy 2 still shares all of init's pages with the source", "%ld differ", bad);
	result(stays(src_init, K_INIT), "the source did not run meanwhile", "its counter moved");

	/* The source resumes, runs on, writes; the copies do not see it. */
	kill(src_init, SIGCONT);
	kill(src_child, SIGCONT);
	result(advances(src_init, K_INIT) && advances(src_init, K_THREAD1) && advances(src_init, K_THREAD2) &&
		       advances(src_child, K_CHILD),
	       "the source, resumed, runs on (init, both threads, child)", "a counter did not move");
	result(pattern_mismatches(src_init, L.a, A_LEN, 0xA) == 0 && pattern_mismatches(src_child, L.c, C_LEN, 0xC) == 0,
	       "the source's memory is unchanged", "it changed");
	kill(src_init, SIGUSR1);
	result(wait_usr1(src_init, 1), "the source writes one page", "no SIGUSR1 seen");
	result(pattern_mismatches(c2, L.a, A_LEN, 0xA) == 0, "copy 2 does not see the source's write",
	       "it does");
	bad = pfn_mismatches(src_init, c2, L.a, A_LEN, &shared);
	result(bad == 1, "the source's write leaves copy 2 sharing every other page", "%ld differ", bad);

	/* A copy survives the source. */
	kill(src_init, SIGKILL);
	kill(src_child, SIGKILL);
	msleep(200);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	result(pattern_mismatches(c2, L.a, A_LEN, 0xA) == 0 && pattern_mismatches(c2_child, L.c, C_LEN, 0xC) == 0 &&
		       advances(c2, K_INIT),
	       "copy 2 keeps its memory and runs on after the source is killed", "it does not");

	ordinary_restore("with the same CRIU");

	/* With the source gone, a restore through the module is an error. */
	rc = run_criu(WORK "/restore-gone.log",
		      (char *[]){ "restore", "-d", "-D", WORK "/img", "-v4", "--graft-from", src, NULL }, NULL);
	result(rc != 0, "restore --graft-from a source that is gone is refused", "criu exited %d", rc);

	kill(c1, SIGKILL);
	kill(c2, SIGKILL);
	msleep(200);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	printf("# criu-graft-test: %d tests, %d failed\n", testno, failures);
	return failures ? 1 : 0;
}
