#!/usr/bin/env bash
# The kernel lane (`npm run test:kernel`): build criu-modules/kernel against a
# Debian 6.1 kernel's headers, boot that kernel under QEMU (TCG: the machines'
# KVM cannot run ordinary guests, and their own kernel cannot load modules),
# load the module in the guest and run its tests there (the module's, then
# CRIU's through it); then run the engine's live clone tests on tier 2 in a
# second guest that has the host's userspace as its root (scripts/kernel-guest.sh).
#
# Exit status: 0 all tests passed; 1 a test failed (the guest's output is
# printed); 2 the lane could not be prepared (packages, build); 3 the guest
# did not boot; 4 the guest booted but never reported a result (crash, hang).
# The engine's tests are skipped, saying why, before `npm run setup` has run.
#
# Environment:
#   TFORK_KERNEL_VERSION  Debian kernel ABI to use, e.g. 6.1.0-56-amd64
#                         (default: the newest 6.1 one apt knows)
#   TFORK_KERNEL_CACHE    cache directory (default $TFORK_ROOT/kernel-lane,
#                         TFORK_ROOT defaulting to /var/lib/podman-tfork)
#   TFORK_KERNEL_TESTS    argument of graft-test (all|basic|kinds|concurrent|refusals|leaks|speed),
#                         criu for the CRIU tests alone, engine for the engine's
#                         tests alone (all runs the three)
#   TFORK_KERNEL_CRIU     the CRIU binary the guest runs criu-graft-test with
#                         (default: the installed $TFORK_ROOT/prefix/sbin/criu);
#                         the CRIU tests are skipped, with a message, when it
#                         lacks --graft-from (patch 0004)
#   TFORK_KERNEL_TIMEOUT  seconds the guest may run (default 600)
#   TFORK_KERNEL_SMP      guest CPUs (default 2)
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here/criu-modules/kernel"
cache="${TFORK_KERNEL_CACHE:-${TFORK_ROOT:-/var/lib/podman-tfork}/kernel-lane}"
tests="${TFORK_KERNEL_TESTS:-all}"
timeout_s="${TFORK_KERNEL_TIMEOUT:-600}"
smp="${TFORK_KERNEL_SMP:-2}"
criu_bin="${TFORK_KERNEL_CRIU:-${TFORK_ROOT:-/var/lib/podman-tfork}/prefix/sbin/criu}"

say() { printf 'kernel-lane: %s\n' "$*" >&2; }
fail() { say "$1"; exit "${2:-2}"; }
t0=$(date +%s)

[ "$(id -u)" = 0 ] || fail "must run as root (apt-get, dpkg-deb)"
mkdir -p "$cache"

# The engine on tier 2: its live clone tests, run in a second guest that has
# the host's userspace as its root and tfork_graft loaded (scripts/kernel-guest.sh),
# each clone required to have grafted (TFORK_EXPECT_TIER=2).
engine_tests() {
	local reason=""
	[ -e "$here/dist/index.js" ] || reason="the engine is not built (npm run build)"
	[ -e "${TFORK_ROOT:-/var/lib/podman-tfork}/etc/containers.conf" ] || reason="podman-tfork setup has not run (npm run setup)"
	if [ -n "$reason" ]; then
		say "skipping the engine's tests in the guest: $reason"
		return 0
	fi
	say "the engine's live clone tests on tier 2, in a guest with the host's userspace (several minutes under TCG)"
	local rc=0
	TFORK_EXPECT_TIER=2 bash "$here/scripts/kernel-guest.sh" --mem 12288 --timeout 2400 -- \
		env CI=true npx vitest run --reporter=verbose test/integration/graft.test.ts test/integration/clone.test.ts || rc=$?
	case "$rc" in
	0) say "the engine's tests passed on tier 2" ;;
	2 | 3 | 4) fail "the engine's guest could not run its tests (kernel-guest.sh exit $rc)" "$rc" ;;
	*) fail "the engine's tests failed in the guest (exit $rc)" 1 ;;
	esac
}

# Packages (QEMU, cpio, busybox, gcc, the kernel's headers) and the kernel image.
. "$here/scripts/kernel-common.sh"
lane_pkgs=()
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || lane_pkgs+=(libc6-dev)
prepare_kernel "${lane_pkgs[@]}"
if [ "$tests" = engine ]; then
	engine_tests
	exit 0
fi

# The module and the test programs, built outside the source tree.
build="$cache/build-$kver"
rm -rf "$build"
mkdir -p "$build"
cp -r "$src"/Makefile "$src"/tfork_graft.c "$src"/include "$build"/
say "building tfork_graft.ko against $headers"
make -s -C "$headers" M="$build" modules >"$build/make.log" 2>&1 \
	|| { cat "$build/make.log" >&2; fail "module build failed"; }
gcc -static -pthread -O2 -Wall -I"$src/include/uapi" -o "$build/graft-test" "$src/tests/graft-test.c" \
	|| fail "test build failed"
gcc -static -pthread -O2 -Wall -o "$build/criu-graft-test" "$src/tests/criu-graft-test.c" \
	|| fail "test build failed"

# The initramfs: a static busybox, the module, the tests, /init.
root="$build/initramfs"
mkdir -p "$root"/{bin,dev,proc,sys,tmp}
cp /bin/busybox "$root/bin/busybox"
cp "$build/tfork_graft.ko" "$build/graft-test" "$root/"
cp "$src/tests/guest-init.sh" "$root/init"
# CRIU with its shared libraries and loader, when it has the graft options.
if [ "$tests" = all ] || [ "$tests" = criu ]; then
	if [ ! -x "$criu_bin" ]; then
		say "skipping the CRIU tests: no CRIU at $criu_bin (run podman-tfork setup, or set TFORK_KERNEL_CRIU)"
	elif ! "$criu_bin" --help 2>/dev/null | grep -- '--graft-from' >/dev/null; then
		# (grep reads all of it: with -q, criu could die of SIGPIPE and pipefail say no)
		say "skipping the CRIU tests: $criu_bin has no --graft-from (built without patch 0004?)"
	else
		say "CRIU tests with $criu_bin"
		mkdir -p "$root/usr/sbin" "$root/run"
		cp "$criu_bin" "$root/usr/sbin/criu"
		cp "$build/criu-graft-test" "$root/"
		ldd "$criu_bin" | grep -o '/[^ ]*' | while read -r lib; do
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		done
		# CRIU's feature detection needs nf_tables (a module in Debian's kernel)
		mods="$kdir/lib/modules/$kver/kernel"
		mkdir -p "$root/criu-modules"
		for m in crypto/crc32c_generic lib/libcrc32c net/netfilter/nfnetlink net/netfilter/nf_tables; do
			cp "$mods/$m.ko" "$root/criu-modules/$(basename "$m").ko" \
				|| fail "no $m.ko in linux-image-$kver"
		done
		printf '%s\n' crc32c_generic libcrc32c nfnetlink nf_tables >"$root/criu-modules/order"
	fi
fi
chmod +x "$root/init"
printf '%s\n' "$tests" >"$root/tests"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$build/initramfs.cpio"

log="$build/guest.log"
say "booting $kver under QEMU (TCG, ${smp} CPUs); guest output in $log"
set +e
timeout --foreground -k 10 "$timeout_s" qemu-system-x86_64 -accel tcg -nographic -no-reboot \
	-m 3072 -smp "$smp" -kernel "$vmlinuz" -initrd "$build/initramfs.cpio" \
	-append "console=ttyS0 panic=-1 oops=panic loglevel=4 slub_debug=FZP" </dev/null >"$log" 2>&1
qemu_rc=$?
set -e
tr -d '\r' <"$log" >"$log.txt"

elapsed=$(( $(date +%s) - t0 ))
if ! grep -q 'TFORK-LANE: booted' "$log.txt"; then
	tail -n 40 "$log.txt" >&2
	fail "the guest did not boot (qemu exit $qemu_rc, ${elapsed}s)" 3
fi
result=$(sed -n 's/.*TFORK-LANE-RESULT rc=\([0-9]*\).*/\1/p' "$log.txt" | tail -n1)
if [ -z "$result" ]; then
	sed -n '/TFORK-LANE: booted/,$p' "$log.txt" >&2
	fail "the guest booted but reported no result (crash or timeout; qemu exit $qemu_rc, ${elapsed}s)" 4
fi
sed -n '/TFORK-LANE: booted/,/TFORK-LANE-RESULT/p' "$log.txt" | sed 's/.*\(TFORK-LANE: booted\)/\1/'
if [ "$result" != 0 ]; then
	fail "guest tests failed (rc=$result, ${elapsed}s on $kver)" 1
fi
say "all guest tests passed on $kver (${elapsed}s)"
if [ "$tests" = all ]; then
	engine_tests
fi
