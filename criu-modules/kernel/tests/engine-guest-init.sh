#!/bin/busybox sh
# /init of scripts/kernel-guest.sh's guest: the engine (node, podman, the patched
# crun and CRIU) on Debian's 6.1 kernel with tfork_graft loaded, the host's own
# userspace as the guest's root. Two stages, one file:
#
#   stage 1 (no argument; /init of the initramfs, busybox only): load the
#     virtio/9p/overlay modules, mount the host's root (9p, read-only) under an
#     overlay whose upper layer is a tmpfs, switch_root into it running stage 2;
#   stage 2 (argument "stage2", under the host's /bin/sh inside that root):
#     /proc, /sys, /dev, /run, /tmp, the host's cgroup layout, the kernel's
#     module tree and modprobe, the storage disk at the graphroot, tfork_graft;
#     then the host's command, its output on the console, its exit status in a
#     TFORK-GUEST-RESULT line; power off.
#
# Written by the host into the initramfs (kept in /etc/tfork-guest afterwards):
#   guest.conf  kver=, moddir= (the kernel's module tree, a host path), graft_ko=
#               (tfork_graft.ko, a host path), storage= (graphroot), hostname=
#   run         the command: a bash script (cwd, TFORK_* environment, exec)
# The host reads the TFORK-GUEST lines on the serial console: "booted" (stage 1
# runs), "running" (the command starts), "TFORK-GUEST-RESULT rc=N". A guest
# that cannot set itself up says why and powers off without a result.
set -u
stage="${1:-stage1}"
conf=/etc/tfork-guest

die() {
	echo "TFORK-GUEST: setup failed: $*"
	[ -e /proc/uptime ] && dmesg 2>/dev/null | tail -n 15
	sync
	/bin/busybox poweroff -f
	exit 1
}

if [ "$stage" = stage1 ]; then
	/bin/busybox --install -s /bin
	export PATH=/bin
	mount -t proc proc /proc
	mount -t sysfs sys /sys
	mount -t devtmpfs dev /dev
	echo "TFORK-GUEST: booted $(uname -r)"
	. /guest.conf
	# the modules the root needs, dependencies first (order written by the host)
	for ko in $(cat /modules/order); do
		insmod "/modules/$ko" || die "insmod $ko"
	done
	mkdir -p /lower /upper /newroot
	mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /lower \
		|| die "mount the host's root (9p)"
	mount -t tmpfs -o mode=755 upper /upper
	mkdir -p /upper/upper /upper/work
	mount -t overlay -o lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work,index=off,redirect_dir=off,metacopy=off,xino=off \
		overlay /newroot || die "mount the overlay root"
	mkdir -p "/newroot$conf"
	cp /guest.conf /run-cmd "/newroot$conf/" || die "copy the run configuration"
	mv "/newroot$conf/run-cmd" "/newroot$conf/run"
	cp /init "/newroot$conf/init"
	for m in dev proc sys; do
		mount --move "/$m" "/newroot/$m" || die "move /$m"
	done
	exec switch_root /newroot /bin/sh "$conf/init" stage2
	die "switch_root"
fi

# ---- stage 2: in the host's userspace ----
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
. "$conf/guest.conf"
bb=/bin/busybox

mount -t tmpfs -o mode=755,size=50% run /run || die "mount /run"
mount -t tmpfs -o mode=1777 tmp /tmp || die "mount /tmp"
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts /dev/pts || die "mount /dev/pts"
ln -sf pts/ptmx /dev/ptmx 2>/dev/null || true
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm || die "mount /dev/shm"
mount -t mqueue mqueue /dev/mqueue 2>/dev/null || true
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr

# The host's cgroup layout (hybrid): v1 hierarchies, name=systemd, cgroup2 at unified.
mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup || die "mount /sys/fs/cgroup"
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
	mkdir -p "/sys/fs/cgroup/$c"
	mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || die "mount the $c cgroup"
done
mkdir -p /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd || die "mount the name=systemd cgroup"
mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified || die "mount cgroup2"

# The guest kernel's modules, and a modprobe for the kernel's request_module
# (netfilter, bridge, veth, sock_diag load on demand); the host has no kmod, so
# busybox's module tools stand in for it (in the overlay's upper layer).
mkdir -p "/lib/modules/$kver"
mount --bind "$moddir" "/lib/modules/$kver" || die "bind the module tree $moddir"
for a in modprobe insmod rmmod lsmod modinfo depmod; do
	[ -e "/usr/sbin/$a" ] || ln -s "$bb" "/usr/sbin/$a"
done
echo /usr/sbin/modprobe >/proc/sys/kernel/modprobe
for m in virtio_blk crc32c_generic btrfs nf_tables; do
	modprobe "$m" || die "modprobe $m"
done

hostname "${hostname:-tfork-guest}"
$bb ip link set lo up || die "loopback"  # CRIU probes TCP repair over loopback

# The storage disk (virtio, writes discarded by QEMU) at the graphroot.
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do $bb usleep 100000; i=$((i + 1)); done
mkdir -p "$storage"
mount -t btrfs /dev/vda "$storage" || die "mount the storage disk at $storage"

$bb insmod "$graft_ko" || die "insmod $graft_ko"
[ -c /dev/tfork-graft ] || die "no /dev/tfork-graft after insmod"

echo "TFORK-GUEST: running (guest uptime $(cut -d' ' -f1 /proc/uptime) s)"
/bin/bash "$conf/run" </dev/null >/dev/console 2>&1
rc=$?
sync
echo "TFORK-GUEST-RESULT rc=$rc"
$bb poweroff -f
