// SPDX-License-Identifier: GPL-2.0
/*
 * Tests of /dev/tfork-graft, run as root inside a guest with the module
 * loaded. Prints TAP; exits 1 if any test failed.
 *
 *   graft-test [all|basic|kinds|concurrent|refusals|leaks|speed]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>

#include <linux/tfork_graft.h>

#include "tap.h"

#define PAGE		4096UL
#define MiB		(1024UL * 1024)
#define BASE		0x600000000000UL	/* where sources map their region */
#define GiB_STEP	(2UL << 30)


static void settle(void);

static void die(const char *what)
{
	printf("Bail out! %s: %s\n", what, strerror(errno));
	exit(2);
}

static int pidfd_open(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

static long do_graft(int pidfd, unsigned long start, unsigned long end,
		     uint64_t *grafted)
{
	struct tfork_graft g = { .pidfd = pidfd, .start = start, .end = end };
	int dev = open(TFORK_GRAFT_DEVICE, O_RDWR | O_CLOEXEC);
	long ret;

	if (dev < 0)
		return -errno;
	ret = ioctl(dev, TFORK_IOC_GRAFT, &g) ? -errno : 0;
	close(dev);
	if (grafted)
		*grafted = g.grafted;
	return ret;
}

/* Page i of a source region holds i ^ seed in every word. */
static void fill(char *p, unsigned long len, uint64_t seed)
{
	for (unsigned long off = 0; off < len; off += PAGE)
		for (unsigned long w = 0; w < PAGE; w += 8)
			*(uint64_t *)(p + off + w) = (off / PAGE) ^ seed;
}

/* First page in [p + from, p + len) not holding its pattern, or -1. */
static long check_from(const char *p, unsigned long from, unsigned long len,
		       uint64_t seed)
{
	for (unsigned long off = from; off < len; off += PAGE)
		for (unsigned long w = 0; w < PAGE; w += 8)
			if (*(const uint64_t *)(p + off + w) != ((off / PAGE) ^ seed))
				return off / PAGE;
	return -1;
}

static long check(const char *p, unsigned long len, uint64_t seed)
{
	return check_from(p, 0, len, seed);
}

/*
 * A source: a child that maps @len bytes at BASE, fills them, reports on
 * @ready and then obeys one-byte commands on its pipe:
 *   'r' page(8 bytes): reply 1 if that page still holds its pattern
 *   'w' page(8 bytes): overwrite that page, reply 1
 *   'q': exit
 */
struct source {
	pid_t pid;
	int pidfd;
	int cmd, reply;
};

static int drop_caps(uint64_t keep);
static int source_nohuge;	/* sources map their region with MADV_NOHUGEPAGE */

enum source_kind { SOURCE_PLAIN, SOURCE_NONDUMPABLE, SOURCE_NOCAPS, SOURCE_WRITING };

static unsigned long writer_len;

/*
 * A source thread that keeps writing a counter into its first 8 pages (few
 * enough to stay in its CPU's TLB, where a missing flush would show).
 */
static void *writer(void *arg)
{
	volatile uint64_t *p = arg;

	for (uint64_t n = 1;; n++)
		for (unsigned long off = 0; off < 8 * PAGE && off < writer_len; off += PAGE)
			p[off / 8] = n;
	return NULL;
}

static void source_main(int cmd, int reply, unsigned long len, uint64_t seed,
			enum source_kind kind)
{
	char *p = mmap((void *)BASE, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	char c, ok;
	uint64_t page;

	if (p == MAP_FAILED)
		_exit(3);
	if (source_nohuge && madvise(p, len, MADV_NOHUGEPAGE))
		_exit(3);
	fill(p, len, seed);
	if (kind == SOURCE_NONDUMPABLE)
		prctl(PR_SET_DUMPABLE, 0);
	if (kind == SOURCE_NOCAPS && drop_caps(0))
		_exit(3);
	if (kind == SOURCE_WRITING) {
		pthread_t t;

		writer_len = len;
		if (pthread_create(&t, NULL, writer, p))
			_exit(3);
	}
	ok = 1;
	if (write(reply, &ok, 1) != 1)
		_exit(3);
	while (read(cmd, &c, 1) == 1) {
		if (c == 'q')
			_exit(0);
		if (read(cmd, &page, 8) != 8)
			_exit(3);
		if (c == 'r') {
			ok = check(p + page * PAGE, PAGE, seed ^ page) == -1;
		} else {
			memset(p + page * PAGE, 0xAB, PAGE);
			ok = 1;
		}
		if (write(reply, &ok, 1) != 1)
			_exit(3);
	}
	_exit(0);
}

static struct source source_start(unsigned long len, uint64_t seed, enum source_kind kind)
{
	int c[2], r[2];
	struct source s;
	char ok;

	if (pipe(c) || pipe(r))
		die("pipe");
	s.pid = fork();
	if (s.pid < 0)
		die("fork");
	if (!s.pid) {
		close(c[1]);
		close(r[0]);
		source_main(c[0], r[1], len, seed, kind);
	}
	close(c[0]);
	close(r[1]);
	s.cmd = c[1];
	s.reply = r[0];
	if (read(s.reply, &ok, 1) != 1)
		die("source did not start");
	s.pidfd = pidfd_open(s.pid);
	if (s.pidfd < 0)
		die("pidfd_open");
	return s;
}

static int source_cmd(struct source *s, char c, uint64_t page)
{
	char ok = 0;

	if (write(s->cmd, &c, 1) != 1 || write(s->cmd, &page, 8) != 8 ||
	    read(s->reply, &ok, 1) != 1)
		return -1;
	return ok;
}

static int source_stop(struct source *s)
{
	char c = 'q';
	int status = -1;

	if (write(s->cmd, &c, 1) != 1)
		kill(s->pid, SIGKILL);
	waitpid(s->pid, &status, 0);
	close(s->cmd);
	close(s->reply);
	close(s->pidfd);
	return status;
}

/* PFN of @addr in @pid (0 if not present). */
static uint64_t pfn_of(pid_t pid, unsigned long addr)
{
	char path[64];
	uint64_t e = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	if (pread(fd, &e, 8, addr / PAGE * 8) != 8)
		e = 0;
	close(fd);
	if (!(e >> 63))
		return 0;
	return e & ((1ULL << 55) - 1);
}

/* Number of pages in [addr, addr+len) whose PFN differs between a and b. */
static long pfn_mismatches(pid_t a, pid_t b, unsigned long addr,
			   unsigned long len)
{
	unsigned long n = len / PAGE;
	uint64_t *ea = malloc(n * 8), *eb = malloc(n * 8);
	char path[64];
	long bad = 0;
	int fa, fb;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", a);
	fa = open(path, O_RDONLY);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", b);
	fb = open(path, O_RDONLY);
	if (fa < 0 || fb < 0 || !ea || !eb ||
	    pread(fa, ea, n * 8, addr / PAGE * 8) != (ssize_t)(n * 8) ||
	    pread(fb, eb, n * 8, addr / PAGE * 8) != (ssize_t)(n * 8))
		die("pagemap");
	for (unsigned long i = 0; i < n; i++) {
		uint64_t pa = ea[i] & ((1ULL << 55) - 1);
		uint64_t pb = eb[i] & ((1ULL << 55) - 1);

		if (!(ea[i] >> 63) || !(eb[i] >> 63) || !pa || pa != pb)
			bad++;
	}
	close(fa);
	close(fb);
	free(ea);
	free(eb);
	return bad;
}

static void test_basic(void)
{
	const unsigned long len = 256 * MiB;
	const uint64_t seed = 0x5eed;
	struct source a = source_start(len, seed, SOURCE_PLAIN);
	const char *p = (const char *)BASE;
	uint64_t grafted = 0;
	long ret, bad;
	pid_t me = getpid();

	ret = do_graft(a.pidfd, BASE, BASE + len, &grafted);
	result(ret == 0 && grafted == 1, "graft 256 MiB", "ret %ld grafted %" PRIu64, ret, grafted);
	if (ret)
		goto out;

	bad = check(p, len, seed);
	result(bad == -1, "B reads A's bytes", "page %ld differs", bad);

	bad = pfn_mismatches(a.pid, me, BASE, len);
	result(bad == 0, "A and B map the same physical pages", "%ld of %lu pages differ",
	       bad, len / PAGE);

	/* B writes page 0: B gets its own page, A keeps its own. */
	{
		uint64_t before = pfn_of(a.pid, BASE);

		memset((void *)BASE, 0x11, PAGE);
		result(pfn_of(me, BASE) != before && pfn_of(a.pid, BASE) == before,
		       "B's write breaks the sharing of that page only",
		       "pfn A %" PRIx64 " B %" PRIx64 " before %" PRIx64,
		       pfn_of(a.pid, BASE), pfn_of(me, BASE), before);
		result(source_cmd(&a, 'r', 0) == 1, "B's write is invisible to A", "A sees it");
		bad = pfn_mismatches(a.pid, me, BASE + PAGE, len - PAGE);
		result(bad == 0, "other pages stay shared", "%ld differ", bad);
	}
	/* A writes page 1: B still reads the old bytes. */
	source_cmd(&a, 'w', 1);
	result(check(p + PAGE, PAGE, seed ^ 1) == -1, "A's write is invisible to B", "B sees it");

	/*
	 * A exits: B's copy stays intact, also once compaction has walked the
	 * reverse maps of B's pages (they must lead to B's own anon_vma).
	 */
	source_stop(&a);
	settle();
	bad = check_from(p, 2 * PAGE, len, seed);
	result(bad == -1 && check(p + PAGE, PAGE, seed ^ 1) == -1,
	       "A exiting leaves B intact", "page %ld differs", bad);
	/* B, now sole owner, writes in place (the page moves to B's anon_vma). */
	fill((char *)BASE, len, ~seed);
	settle();
	bad = check(p, len, ~seed);
	result(bad == -1, "B writes its pages after A exited", "page %ld differs", bad);
	munmap((void *)BASE, len);
	return;
out:
	source_stop(&a);
}

static int drop_caps(uint64_t keep)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -1;
	d[0].effective &= (uint32_t)keep;
	d[1].effective &= (uint32_t)(keep >> 32);
	d[0].permitted = d[0].effective;
	d[1].permitted = d[1].effective;
	d[0].inheritable = d[1].inheritable = 0;
	return syscall(SYS_capset, &h, d);
}

/* Run do_graft in a child that keeps only the capabilities in @keep. */
static long graft_with_caps(int pidfd, uint64_t keep)
{
	int st;
	pid_t pid = fork();

	if (!pid) {
		if (drop_caps(keep))
			_exit(255);
		_exit(-do_graft(pidfd, BASE, BASE + 16 * MiB, NULL));
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? -WEXITSTATUS(st) : -1000;
}

#define CAP(x) (1ULL << (x))

static void test_refusals(void)
{
	const unsigned long len = 16 * MiB;
	struct source a = source_start(len, 7, SOURCE_PLAIN);
	struct source nd = source_start(len, 7, SOURCE_NONDUMPABLE);
	struct source nc = source_start(len, 7, SOURCE_NOCAPS);
	uint64_t all = ~0ULL;
	long ret;
	void *p;

	ret = graft_with_caps(a.pidfd, all & ~(CAP(CAP_SYS_ADMIN) | CAP(CAP_CHECKPOINT_RESTORE)));
	result(ret == -EPERM, "refused without CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN",
	       "got %ld", ret);
	ret = graft_with_caps(a.pidfd, CAP(CAP_CHECKPOINT_RESTORE));
	result(ret == -EACCES, "refused when the source has capabilities the caller lacks (ptrace rule)",
	       "got %ld", ret);
	ret = graft_with_caps(nc.pidfd, CAP(CAP_CHECKPOINT_RESTORE));
	result(ret == 0, "allowed with CAP_CHECKPOINT_RESTORE alone on a source without capabilities",
	       "got %ld", ret);

	ret = graft_with_caps(nd.pidfd, all & ~CAP(CAP_SYS_PTRACE));
	result(ret == -EACCES, "refused without ptrace rights (non-dumpable source, no CAP_SYS_PTRACE)",
	       "got %ld", ret);
	ret = graft_with_caps(nd.pidfd, all);
	result(ret == 0, "allowed on that source with CAP_SYS_PTRACE", "got %ld", ret);

	p = mmap((void *)(BASE + 4 * MiB), PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	ret = do_graft(a.pidfd, BASE, BASE + len, NULL);
	result(ret == -EEXIST, "refused over an existing mapping of the caller", "got %ld", ret);
	result(*(volatile char *)p == 0, "the caller's mapping is untouched", "changed");
	munmap(p, PAGE);

	ret = do_graft(a.pidfd, BASE, BASE + len / 2, NULL);
	result(ret == -EINVAL, "refused when a mapping straddles the range", "got %ld", ret);
	ret = do_graft(a.pidfd, BASE + 1, BASE + len, NULL);
	result(ret == -EINVAL, "refused for an unaligned range", "got %ld", ret);

	{
		/* A source holding a shared mapping inside the range. */
		int r[2], fd;
		char ok = 0;
		pid_t pid;

		if (pipe(r))
			die("pipe");
		pid = fork();
		if (!pid) {
			char *q = mmap((void *)BASE, len, PROT_READ | PROT_WRITE,
				       MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

			ok = q != MAP_FAILED;
			if (write(r[1], &ok, 1) != 1)
				_exit(3);
			pause();
			_exit(0);
		}
		if (read(r[0], &ok, 1) != 1 || !ok)
			die("shared source");
		fd = pidfd_open(pid);
		ret = do_graft(fd, BASE, BASE + len, NULL);
		result(ret == -EOPNOTSUPP, "refused for a shared (shmem) mapping", "got %ld", ret);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(fd);
		close(r[0]);
		close(r[1]);
	}

	{
		int fd;
		pid_t pid = fork();

		if (!pid)
			_exit(0);
		fd = pidfd_open(pid);
		waitpid(pid, NULL, 0);
		ret = do_graft(fd, BASE, BASE + len, NULL);
		result(ret == -ESRCH, "refused for a dead pidfd", "got %ld", ret);
		close(fd);
	}

	ret = do_graft(a.pidfd, 0, 0, NULL);
	result(ret == -EINVAL, "refused for an empty range", "got %ld", ret);

	source_stop(&a);
	source_stop(&nd);
	source_stop(&nc);
}

/*
 * The source keeps writing on another CPU while B grafts: once the graft
 * returns, B's copy must never change again (the source's TLB was flushed
 * after its PTEs were write-protected; a stale writable entry would let the
 * source write into the shared page).
 */
static void test_concurrent(void)
{
	const unsigned long len = 16 * MiB, n = len / PAGE;
	struct source a = source_start(len, 5, SOURCE_WRITING);
	uint64_t *snap = malloc(n * 8);
	int changed = 0, failed = 0, i;

	for (i = 0; i < 20 && !changed && !failed; i++) {
		const volatile uint64_t *p = (const uint64_t *)BASE;

		if (do_graft(a.pidfd, BASE, BASE + len, NULL)) {
			failed = 1;
			break;
		}
		for (unsigned long j = 0; j < n; j++)
			snap[j] = p[j * PAGE / 8];
		usleep(50000);
		for (unsigned long j = 0; j < n; j++)
			if (p[j * PAGE / 8] != snap[j])
				changed++;
		munmap((void *)BASE, len);
	}
	result(!failed, "20 grafts from a source writing on another CPU", "a graft failed");
	result(!changed, "the source's later writes never reach the graft", "%d pages changed", changed);
	source_stop(&a);
	free(snap);
}

static long meminfo(const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		die("meminfo");
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ':')
			v = strtol(line + strlen(key) + 1, NULL, 10);
	fclose(f);
	return v;
}

/*
 * Mapping kinds, as CRIU's restorer would meet them: a stopped source holds
 * one mapping of each kind, each at its own address; each is grafted alone
 * at its exact bounds. Needs a ramfs at /mnt/ram (regular, non-shmem files)
 * and a tmpfs at /tmp.
 */
#define KIND_AT(i)	(0x610000000000UL + (i) * 0x100000UL)
#define KIND_LEN	(4 * PAGE)

enum { K_ANON, K_RDONLY, K_FILE, K_TMPFS_FILE, K_WIPE, K_DONTFORK, K_LOCKED, K_N };

static void kinds_source(int ready)
{
	const char *file = "/mnt/ram/graft-kinds", *tfile = "/tmp/graft-kinds";
	char buf[KIND_LEN], ok = 1;
	char *p[K_N];
	int fd, tfd, i;

	memset(buf, 'f', sizeof(buf));
	fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	tfd = open(tfile, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || tfd < 0 || write(fd, buf, sizeof(buf)) != sizeof(buf) ||
	    write(tfd, buf, sizeof(buf)) != sizeof(buf))
		_exit(3);
	for (i = 0; i < K_N; i++) {
		int flags = MAP_PRIVATE | MAP_FIXED_NOREPLACE;
		int f = -1;

		if (i == K_FILE)
			f = fd;
		else if (i == K_TMPFS_FILE)
			f = tfd;
		else
			flags |= MAP_ANONYMOUS;
		p[i] = mmap((void *)KIND_AT(i), KIND_LEN, PROT_READ | PROT_WRITE, flags, f, 0);
		if (p[i] == MAP_FAILED)
			_exit(3);
	}
	madvise(p[K_WIPE], KIND_LEN, MADV_WIPEONFORK);
	madvise(p[K_DONTFORK], KIND_LEN, MADV_DONTFORK);
	for (i = 0; i < K_N; i++)
		if (i != K_FILE && i != K_TMPFS_FILE)
			memset(p[i], 'a' + i, KIND_LEN);
	memset(p[K_FILE], 'w', PAGE);	/* page 0 written, pages 1-3 the file's */
	mprotect(p[K_RDONLY], KIND_LEN, PROT_READ);
	if (mlock(p[K_LOCKED], KIND_LEN))
		_exit(3);
	if (write(ready, &ok, 1) != 1)
		_exit(3);
	for (;;)
		pause();
}

static int all_bytes(const char *p, unsigned long len, char c)
{
	for (unsigned long i = 0; i < len; i++)
		if (p[i] != c)
			return 0;
	return 1;
}

static int maps_perms(unsigned long addr, char *perms)
{
	char line[512];
	unsigned long s, e;
	FILE *f = fopen("/proc/self/maps", "r");
	int found = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %4s", &s, &e, perms) == 3 && s == addr) {
			found = 1;
			break;
		}
	if (f)
		fclose(f);
	return found;
}

static void test_kinds(void)
{
	int r[2], fd, i;
	long ret[K_N];
	char ok, perms[8] = "";
	pid_t pid;

	if (pipe(r))
		die("pipe");
	pid = fork();
	if (!pid)
		kinds_source(r[1]);
	if (read(r[0], &ok, 1) != 1)
		die("kinds source did not start");
	kill(pid, SIGSTOP);	/* as CRIU's frozen source */
	fd = pidfd_open(pid);
	for (i = 0; i < K_N; i++)
		ret[i] = do_graft(fd, KIND_AT(i), KIND_AT(i) + KIND_LEN, NULL);

	result(!ret[K_ANON] && all_bytes((char *)KIND_AT(K_ANON), KIND_LEN, 'a' + K_ANON),
	       "kind: private anonymous is grafted with its bytes", "ret %ld", ret[K_ANON]);
	result(!ret[K_RDONLY] && maps_perms(KIND_AT(K_RDONLY), perms) && !strcmp(perms, "r--p") &&
	       all_bytes((char *)KIND_AT(K_RDONLY), KIND_LEN, 'a' + K_RDONLY),
	       "kind: a read-only private mapping keeps its protection", "ret %ld perms %s",
	       ret[K_RDONLY], perms);
	result(!ret[K_FILE] && all_bytes((char *)KIND_AT(K_FILE), PAGE, 'w') &&
	       all_bytes((char *)KIND_AT(K_FILE) + PAGE, KIND_LEN - PAGE, 'f'),
	       "kind: private file mapping: written page from the source, the rest from the file",
	       "ret %ld", ret[K_FILE]);
	result(ret[K_TMPFS_FILE] == -EOPNOTSUPP, "kind: private mapping of a tmpfs file is refused",
	       "ret %ld", ret[K_TMPFS_FILE]);
	result(!ret[K_WIPE] && all_bytes((char *)KIND_AT(K_WIPE), KIND_LEN, 0),
	       "kind: MADV_WIPEONFORK is grafted empty (zeros)", "ret %ld", ret[K_WIPE]);
	result(ret[K_DONTFORK] == -EOPNOTSUPP, "kind: MADV_DONTFORK is refused", "ret %ld",
	       ret[K_DONTFORK]);
	result(!ret[K_LOCKED] && all_bytes((char *)KIND_AT(K_LOCKED), KIND_LEN, 'a' + K_LOCKED) &&
	       maps_perms(KIND_AT(K_LOCKED), perms),
	       "kind: an mlocked mapping is grafted", "ret %ld", ret[K_LOCKED]);
	{
		char line[256];
		long lck = -1;
		FILE *f = fopen("/proc/self/status", "r");

		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, "VmLck:", 6))
				lck = strtol(line + 6, NULL, 10);
		if (f)
			fclose(f);
		result(lck == 0, "kind: the graft is not locked (VmLck 0)", "VmLck %ld kB", lck);
	}
	for (i = 0; i < K_N; i++)
		if (!ret[i])
			munmap((void *)KIND_AT(i), KIND_LEN);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(fd);
	close(r[0]);
	close(r[1]);
	unlink("/mnt/ram/graft-kinds");
	unlink("/tmp/graft-kinds");
}

/*
 * Two processes graft from each other at the same time, 50 times: each
 * graft takes both mmap locks, so the order they are taken in must not
 * depend on who calls (or the two would deadlock).
 */
static void crossed_child(int me, int go, int done, pid_t peer_pid)
{
	const unsigned long len = 8 * MiB;
	unsigned long mine = BASE + me * GiB_STEP, theirs = BASE + !me * GiB_STEP;
	char c = 0;
	int peer, i, bad = 0;

	if (mmap((void *)mine, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED)
		_exit(3);
	fill((char *)mine, len, me);
	if (write(done, &c, 1) != 1 || read(go, &c, 1) != 1)
		_exit(3);
	peer = pidfd_open(peer_pid ? peer_pid : getppid());
	for (i = 0; i < 50; i++) {
		if (do_graft(peer, theirs, theirs + len, NULL) ||
		    check((char *)theirs, len, !me) != -1)
			bad++;
		munmap((void *)theirs, len);
	}
	if (write(done, &c, 1) != 1)
		_exit(3);
	/* Stay alive until the peer is done grafting from us. */
	if (read(go, &c, 1) != 1)
		_exit(3);
	_exit(bad ? 1 : 0);
}

static void test_crossed(void)
{
	int go[2], done[2], st0 = -1, st1 = -1, n = 0;
	pid_t p0, p1;
	char c = 0;

	if (pipe(go) || pipe(done))
		die("pipe");
	p0 = fork();
	if (!p0) {
		/* p0 learns p1's pid from the pipe */
		pid_t peer;

		if (read(go[0], &peer, sizeof(peer)) != sizeof(peer))
			_exit(3);
		crossed_child(0, go[0], done[1], peer);
	}
	p1 = fork();
	if (!p1)
		crossed_child(1, go[0], done[1], p0);
	if (write(go[1], &p1, sizeof(p1)) != sizeof(p1))
		die("pipe");
	while (n < 2 && read(done[0], &c, 1) == 1)
		n++;	/* both mapped and filled */
	/* Both start; a deadlock shows as an alarm. */
	alarm(120);
	if (write(go[1], "gg", 2) != 2)
		die("pipe");
	n = 0;
	while (n < 2 && read(done[0], &c, 1) == 1)
		n++;
	alarm(0);
	if (write(go[1], "qq", 2) != 2)
		die("pipe");
	waitpid(p0, &st0, 0);
	waitpid(p1, &st1, 0);
	result(WIFEXITED(st0) && !WEXITSTATUS(st0) && WIFEXITED(st1) && !WEXITSTATUS(st1),
	       "50 crossed grafts between two processes, at once", "status %x %x", st0, st1);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
}

static void write_knob(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, value, strlen(value)) < 0)
		printf("# %s: %s\n", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void settle(void)
{
	static const char *const knobs[] = {
		"/proc/sys/vm/drop_caches", "/proc/sys/vm/compact_memory",
	};

	sync();
	for (unsigned int i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
		int fd = open(knobs[i], O_WRONLY);

		if (fd >= 0) {
			if (write(fd, i ? "1\n" : "3\n", 2) < 0)
				printf("# %s: %s\n", knobs[i], strerror(errno));
			close(fd);
		}
	}
	usleep(200000);
}

/* One cycle: source A, grafting child B that reads and writes, both exit. */
static int leak_cycle(unsigned long len)
{
	struct source a = source_start(len, 3, SOURCE_PLAIN);
	int st = -1;
	pid_t b = fork();

	if (!b) {
		if (do_graft(a.pidfd, BASE, BASE + len, NULL))
			_exit(1);
		if (check((char *)BASE, len, 3) != -1)
			_exit(2);
		memset((void *)BASE, 0x22, len / 2);
		_exit(0);
	}
	waitpid(b, &st, 0);
	source_stop(&a);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

static void test_leaks(void)
{
	const unsigned long len = 32 * MiB;
	long free0, slab0, free1, slab1, pt0, pt1;
	int i, bad = 0;

	/* 4 KiB pages: THP frees in 2 MiB steps and makes MemFree jumpy. */
	source_nohuge = 1;
	/*
	 * Pages on the per-CPU free lists are not in MemFree; with the
	 * default list sizes they swing it by tens of MiB. Shrink the lists.
	 */
	write_knob("/proc/sys/vm/percpu_pagelist_high_fraction", "100000\n");

	for (i = 0; i < 10; i++)
		bad |= leak_cycle(len);
	settle();
	free0 = meminfo("MemFree");
	slab0 = meminfo("SUnreclaim");
	pt0 = meminfo("PageTables");
	for (i = 0; i < 100; i++)
		bad |= leak_cycle(len);
	settle();
	free1 = meminfo("MemFree");
	slab1 = meminfo("SUnreclaim");
	pt1 = meminfo("PageTables");
	source_nohuge = 0;
	write_knob("/proc/sys/vm/percpu_pagelist_high_fraction", "0\n");
	result(!bad, "100 graft/exit cycles of 32 MiB succeed", "a cycle failed");
	printf("# leak check: MemFree %+ld kB, SUnreclaim %+ld kB, PageTables %+ld kB over 100 cycles\n",
	       free1 - free0, slab1 - slab0, pt1 - pt0);
	printf("# AnonPages %ld AnonHugePages %ld Cached %ld Active %ld Inactive %ld Unevictable %ld\n",
	       meminfo("AnonPages"), meminfo("AnonHugePages"), meminfo("Cached"), meminfo("Active"),
	       meminfo("Inactive"), meminfo("Unevictable"));
	/* 100 leaked 32 MiB regions would be 3.2 GB; 20 leaked pages per cycle 8 MiB. */
	result(free0 - free1 < 8192, "MemFree does not shrink (tolerance 8 MiB)", "%ld kB lost",
	       free0 - free1);
	result(slab1 - slab0 < 1024, "unreclaimable slab does not grow (tolerance 1 MiB)",
	       "%ld kB more", slab1 - slab0);
	result(pt1 - pt0 < 256, "page tables are freed", "%ld kB more", pt1 - pt0);
}

static void speed(const char *kind)
{
	const unsigned long len = 1024 * MiB;
	struct source a = source_start(len, 9, SOURCE_PLAIN);
	double t0, t_graft, t_copy;
	uint64_t grafted;
	char name[128];
	char *dst;
	long ret;

	/* Best of 3 for both, the guest's clock being an emulator's. */
	t_graft = 1e9;
	for (int i = 0; i < 3; i++) {
		if (i)
			munmap((void *)BASE, len);
		t0 = now();
		ret = do_graft(a.pidfd, BASE, BASE + len, &grafted);
		if (now() - t0 < t_graft)
			t_graft = now() - t0;
		if (ret)
			break;
	}
	snprintf(name, sizeof(name), "graft 1 GiB (%s)", kind);
	result(ret == 0, name, "got %ld", ret);
	if (ret)
		goto out;
	result(pfn_mismatches(a.pid, getpid(), BASE, len) == 0,
	       "the 1 GiB graft shares every page", "some differ");

	dst = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (dst == MAP_FAILED)
		die("mmap");
	memset(dst, 1, len);
	t_copy = 1e9;
	for (int i = 0; i < 3; i++) {
		t0 = now();
		memcpy(dst, (void *)BASE, len);
		if (now() - t0 < t_copy)
			t_copy = now() - t0;
	}
	result(check(dst, len, 9) == -1, "memcpy of the grafted 1 GiB reads A's bytes", "differs");
	printf("# speed (%s): graft 1 GiB %.1f ms, memcpy 1 GiB %.1f ms (prefaulted destination; best of 3 each), ratio %.3f\n",
	       kind, t_graft * 1e3, t_copy * 1e3, t_graft / t_copy);
	munmap(dst, len);
	munmap((void *)BASE, len);
out:
	source_stop(&a);
}

static void test_speed(void)
{
	char thp[128] = "?";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (f) {
		if (!fgets(thp, sizeof(thp), f))
			thp[0] = 0;
		thp[strcspn(thp, "\n")] = 0;
		fclose(f);
	}
	printf("# transparent_hugepage/enabled: %s\n", thp);
	source_nohuge = 1;
	speed("4 KiB pages, MADV_NOHUGEPAGE");
	source_nohuge = 0;
	speed("default THP policy");
}

static void on_alarm(int sig)
{
	(void)sig;
	printf("not ok - timed out (deadlock?)\n1..%d\n", testno + 1);
	fflush(stdout);
	_exit(1);
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "all";
	int all = !strcmp(what, "all");

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, on_alarm);
	if (all || !strcmp(what, "basic")) {
		printf("# basic, 4 KiB pages (MADV_NOHUGEPAGE)\n");
		source_nohuge = 1;
		test_basic();
		source_nohuge = 0;
		printf("# basic, default THP policy\n");
		test_basic();
	}
	if (all || !strcmp(what, "kinds"))
		test_kinds();
	if (all || !strcmp(what, "concurrent")) {
		test_concurrent();
		test_crossed();
	}
	if (all || !strcmp(what, "refusals"))
		test_refusals();
	if (all || !strcmp(what, "leaks"))
		test_leaks();
	if (all || !strcmp(what, "speed"))
		test_speed();
	printf("1..%d\n", testno);
	return failures ? 1 : 0;
}
