#!/usr/bin/env bash
# Run one command in a QEMU guest (TCG) booting Debian's 6.1 kernel with
# tfork_graft loaded and the host's own userspace as its root, so the engine
# (node, podman, the patched crun and CRIU under $TFORK_ROOT/prefix, conmon, the
# CNI plugins) runs unchanged on the kernel the module is built for.
#
#   bash scripts/kernel-guest.sh [--mem MiB] [--timeout S] -- COMMAND [ARG...]
#
# The command runs as root in the guest with the repository as its working
# directory, stdin /dev/null, stdout and stderr streamed here (the serial
# console: both arrive on stdout). The TFORK_* variables given to this script
# are in its environment; PATH is the ordinary one (the engine sets its own).
#
# The guest: the host's / over 9p (read-only, only the root filesystem: no
# submounts) under an overlay whose upper layer is a tmpfs, so every write is
# discarded; fresh /proc, /sys, /dev, /run, /tmp; the host's cgroup layout
# (hybrid: v1 hierarchies + name=systemd + cgroup2 at unified); the kernel's
# module tree at /lib/modules/KVER with busybox's modprobe (modules load on
# demand); $TFORK_ROOT/storage is a btrfs disk holding localhost/tfork/{tiny,
# memory,desktop}, copied from the host's storage once and cached (rebuilt when
# their image ids change), its writes discarded; /dev/tfork-graft from
# tfork_graft.ko. No network device (the loopback is up).
#
# Exit status: the command's; 2 the guest could not be prepared (packages,
# build, storage disk, bad usage); 3 the guest did not boot; 4 the guest
# booted but never reported a result (setup failed in the guest, crash,
# timeout). The guest's whole console is kept in $cache/guest-run.*/guest.log
# only while it runs; on 3 and 4 its end is printed.
#
# Options:
#   --mem MiB      guest memory (default 8192)
#   --timeout S    seconds the guest may run, boot included (default 1800)
# Environment (as scripts/kernel-lane.sh):
#   TFORK_KERNEL_VERSION  Debian kernel ABI, e.g. 6.1.0-56-amd64 (default: the
#                         newest 6.1 one apt knows)
#   TFORK_KERNEL_CACHE    cache directory (default $TFORK_ROOT/kernel-lane,
#                         TFORK_ROOT defaulting to /var/lib/podman-tfork)
#   TFORK_KERNEL_SMP      guest CPUs (default 2)
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here/criu-modules/kernel"
troot="${TFORK_ROOT:-/var/lib/podman-tfork}"
cache="${TFORK_KERNEL_CACHE:-$troot/kernel-lane}"
smp="${TFORK_KERNEL_SMP:-2}"
mem=8192
timeout_s=1800
images=(localhost/tfork/tiny localhost/tfork/memory localhost/tfork/desktop)
storage_size=16G

say() { printf 'kernel-guest: %s\n' "$*" >&2; }
fail() { say "$1"; exit "${2:-2}"; }
usage() {
	echo "usage: bash scripts/kernel-guest.sh [--mem MiB] [--timeout S] -- COMMAND [ARG...]" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--mem) [ $# -ge 2 ] || usage; mem=$2; shift 2 ;;
	--mem=*) mem=${1#*=}; shift ;;
	--timeout) [ $# -ge 2 ] || usage; timeout_s=$2; shift 2 ;;
	--timeout=*) timeout_s=${1#*=}; shift ;;
	--) shift; break ;;
	-h|--help) usage ;;
	*) say "unknown option $1"; usage ;;
	esac
done
[ $# -gt 0 ] || usage
[[ "$mem" =~ ^[0-9]+$ ]] || fail "--mem takes MiB, not $mem"
[[ "$timeout_s" =~ ^[0-9]+$ ]] || fail "--timeout takes seconds, not $timeout_s"
t0=$(date +%s.%N)

[ "$(id -u)" = 0 ] || fail "must run as root (apt-get, dpkg-deb, loop devices)"
mkdir -p "$cache"

# Everything the host must unmount, detach or kill, whatever happens.
run_dir=""
loopdev=""
qemu_pid=""
cleanup() {
	if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	if [ -n "$loopdev" ]; then
		losetup -d "$loopdev" 2>/dev/null || true
	fi
	[ -z "$run_dir" ] || rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Packages (QEMU, cpio, busybox, gcc, the kernel's headers, btrfs-progs) and the kernel image.
command -v podman >/dev/null || fail "no podman on the host (run podman-tfork setup)"
. "$here/scripts/kernel-common.sh"
guest_pkgs=()
command -v mkfs.btrfs >/dev/null || guest_pkgs+=(btrfs-progs)
prepare_kernel "${guest_pkgs[@]}"
# modules.dep (and .alias, for modprobe of "net-pf-..", "nft-chain-.." names):
# the package ships none; busybox's depmod makes them, once.
moddir="$kdir/lib/modules/$kver"
if [ ! -s "$moddir/modules.dep" ] || [ ! -s "$moddir/modules.alias" ]; then
	say "depmod $kver (busybox)"
	/bin/busybox depmod -b "$kdir" "$kver" || fail "depmod $kver failed"
fi

# The module, built as the kernel lane builds it (in a directory of its own,
# since the lane empties its own), again only when its sources changed.
build="$cache/guest-build-$kver"
stamp=$(cat "$src/Makefile" "$src/tfork_graft.c" $(find "$src/include" -type f | sort) | sha256sum | cut -d' ' -f1)
if [ ! -e "$build/tfork_graft.ko" ] || [ "$(cat "$build/stamp" 2>/dev/null)" != "$stamp" ]; then
	rm -rf "$build"
	mkdir -p "$build"
	cp -r "$src"/Makefile "$src"/tfork_graft.c "$src"/include "$build"/
	say "building tfork_graft.ko against $headers"
	make -s -C "$headers" M="$build" modules >"$build/make.log" 2>&1 \
		|| { cat "$build/make.log" >&2; fail "module build failed"; }
	echo "$stamp" >"$build/stamp"
fi

# The storage disk: a btrfs image holding the three images, made from the host's
# storage with `podman save | podman load`. The load runs in a private mount
# namespace where the image is mounted at the graphroot itself and the runroot,
# libpod tmp dir and /dev/shm (podman's lock segment) are fresh tmpfs: libpod's
# database records those paths and the guest's podman checks them, and the
# host's podman (its locks, its running state) is never touched.
export CONTAINERS_CONF="$troot/etc/containers.conf" CONTAINERS_STORAGE_CONF="$troot/etc/storage.conf"
[ -e "$CONTAINERS_CONF" ] && [ -e "$CONTAINERS_STORAGE_CONF" ] \
	|| fail "no $CONTAINERS_CONF or $CONTAINERS_STORAGE_CONF (run podman-tfork setup)"
graphroot=$(sed -n 's/^graphroot *= *"\(.*\)"/\1/p' "$CONTAINERS_STORAGE_CONF")
runroot=$(sed -n 's/^runroot *= *"\(.*\)"/\1/p' "$CONTAINERS_STORAGE_CONF")
tmpdir=$(sed -n 's/^tmp_dir *= *"\(.*\)"/\1/p' "$CONTAINERS_CONF")
[ -n "$graphroot" ] && [ -n "$runroot" ] && [ -n "$tmpdir" ] \
	|| fail "cannot read graphroot, runroot, tmp_dir from the podman configuration"
ids=$(podman image inspect --format '{{.Id}}' "${images[@]}" 2>/dev/null) \
	|| fail "the host's storage lacks one of ${images[*]} (run podman-tfork setup)"
disk="$cache/guest-storage.img"
key=$(printf 'v1 %s %s %s\n' "$storage_size" "$graphroot" "$ids" | sha256sum | cut -d' ' -f1)
if [ ! -e "$disk" ] || [ "$(cat "$disk.key" 2>/dev/null)" != "$key" ]; then
	say "making the guest's storage disk ($storage_size sparse btrfs: ${images[*]})"
	ts=$(date +%s)
	rm -f "$disk" "$disk.key" "$disk.tmp"
	truncate -s "$storage_size" "$disk.tmp"
	mkfs.btrfs -q -f "$disk.tmp" >/dev/null || fail "mkfs.btrfs failed"
	loopdev=$(losetup --find --show "$disk.tmp") || fail "losetup failed"
	load_log="$cache/guest-storage.log"
	# shellcheck disable=SC2016
	podman save -q -m --format docker-archive "${images[@]}" 2>"$load_log.save" \
		| unshare -m --propagation private sh -euc '
			mkdir -p "$2" "$3" "$4"
			mount -t btrfs "$1" "$2"
			mount -t tmpfs -o mode=755 tfork-runroot "$3"
			mount -t tmpfs -o mode=755 tfork-tmpdir "$4"
			mount -t tmpfs -o mode=1777 tfork-shm /dev/shm
			podman load -q
			podman images
			btrfs filesystem sync "$2" >/dev/null 2>&1 || sync
			umount "$2"' sh "$loopdev" "$graphroot" "$runroot" "$tmpdir" >"$load_log" 2>&1 \
		|| { cat "$load_log.save" "$load_log" >&2; fail "copying the images into the storage disk failed"; }
	losetup -d "$loopdev"
	loopdev=""
	mv "$disk.tmp" "$disk"
	echo "$key" >"$disk.key"
	say "storage disk ready in $(( $(date +%s) - ts ))s ($(du -h "$disk" | cut -f1) used)"
fi

# The initramfs: busybox, the modules the root needs (dependencies first),
# engine-guest-init.sh as /init, the run configuration.
run_dir=$(mktemp -d "$cache/guest-run.XXXXXX")
root="$run_dir/initramfs"
mkdir -p "$root"/{bin,dev,proc,sys,modules}
cp /bin/busybox "$root/bin/busybox"
cp "$src/tests/engine-guest-init.sh" "$root/init"
chmod +x "$root/init"
declare -A seen=()
order=()
add_module() { # module name; its dependencies (from modules.dep) first
	local rel deps d
	rel=$(awk -v m="$1" -F: '{ n = $1; sub(/.*\//, "", n); sub(/\.ko.*/, "", n); gsub(/-/, "_", n) }
		n == m { print $1; exit }' "$moddir/modules.dep")
	[ -n "$rel" ] || fail "no module $1 in linux-image-$kver"
	[ -z "${seen[$rel]:-}" ] || return 0
	seen[$rel]=1
	deps=$(awk -v r="$rel" -F': *' '$1 == r { print $2; exit }' "$moddir/modules.dep")
	for d in $deps; do
		d=${d##*/}; d=${d%%.ko*}; add_module "${d//-/_}"
	done
	cp "$moddir/$rel" "$root/modules/"
	order+=("$(basename "$rel")")
}
for m in virtio_pci 9pnet_virtio 9p overlay; do add_module "$m"; done
printf '%s\n' "${order[@]}" >"$root/modules/order"
cat >"$root/guest.conf" <<EOF
kver='$kver'
moddir='$moddir'
graft_ko='$build/tfork_graft.ko'
storage='$graphroot'
hostname='tfork-guest'
EOF
{
	echo '# the command kernel-guest.sh runs in the guest'
	printf 'cd %q || exit 125\n' "$here"
	while IFS= read -r -d '' kv; do
		case "$kv" in TFORK_*=*) printf 'export %q\n' "$kv" ;; esac
	done < <(env -0)
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$root/run-cmd"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$run_dir/initramfs.cpio"

# The host's root, as QEMU shares it: a non-recursive bind of / in a private
# mount namespace of QEMU's own, so the guest sees the root filesystem alone
# (none of the host's /proc, /dev, storage mount or other submounts).
log="$run_dir/guest.log"
: >"$log"
say "booting $kver under QEMU (TCG, $smp CPUs, $mem MiB, timeout ${timeout_s}s)"
# shellcheck disable=SC2016
timeout --foreground -k 10 "$timeout_s" unshare -m --propagation private sh -ec '
	mkdir -p "$1"; mount --bind / "$1"; mount -o remount,bind,ro "$1"; shift
	exec "$@"' sh "$run_dir/hostroot" \
	qemu-system-x86_64 -accel tcg -nographic -no-reboot -m "$mem" -smp "$smp" \
	-kernel "$vmlinuz" -initrd "$run_dir/initramfs.cpio" \
	-append "console=ttyS0 panic=-1 oops=panic loglevel=4" \
	-fsdev "local,id=hostroot,path=$run_dir/hostroot,security_model=passthrough,readonly=on" \
	-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
	-drive "file=$disk,format=raw,if=virtio,snapshot=on" \
	-nic none </dev/null >"$log" 2>&1 &
qemu_pid=$!

# Stream the command's output (the console between "running" and the result),
# in the background too, so that a signal reaches the traps while it streams.
# (mawk, Debian's awk, reads a pipe in blocks unless -W interactive)
awk_line=(awk)
awk -W version 2>&1 | grep -q mawk && awk_line=(awk -W interactive)
tail -n +1 -f --pid="$qemu_pid" "$log" | "${awk_line[@]}" '
	{ sub(/\r+$/, "") }
	running && /TFORK-GUEST-RESULT rc=/ { i = index($0, "TFORK-GUEST-RESULT"); if (i > 1) print substr($0, 1, i - 1); running = 0; fflush(); next }
	running { print; fflush(); next }
	/TFORK-GUEST: / { sub(/.*TFORK-GUEST: /, ""); print "kernel-guest: guest " $0 > "/dev/stderr"; if ($0 ~ /^running/) running = 1 }' &
stream_pid=$!
set +e
wait "$qemu_pid"
qemu_rc=$?
wait "$stream_pid"
set -e
qemu_pid=""
elapsed=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
# (without the carriage returns and the terminal controls of the firmware)
tr -d '\r' <"$log" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' >"$log.txt"
why="qemu exit $qemu_rc"
[ "$qemu_rc" != 124 ] && [ "$qemu_rc" != 137 ] || why="timed out after ${timeout_s}s"
if ! grep -q 'TFORK-GUEST: booted' "$log.txt"; then
	tail -n 40 "$log.txt" >&2
	fail "the guest did not boot ($why, ${elapsed}s)" 3
fi
result=$(sed -n 's/.*TFORK-GUEST-RESULT rc=\([0-9]*\).*/\1/p' "$log.txt" | tail -n1)
if [ -z "$result" ]; then
	sed -n '/TFORK-GUEST: booted/,$p' "$log.txt" | tail -n 60 >&2
	fail "the guest booted but reported no result (setup failed, crash or timeout; $why, ${elapsed}s)" 4
fi
say "command exited $result (${elapsed}s in all)"
exit "$result"
