#!/bin/busybox sh
# /init of the kernel lane's guest: load tfork_graft, run its tests (and
# CRIU's through it when the host put a CRIU in), report, power off. The host reads the TFORK-LANE lines on the serial console.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mkdir -p /mnt/ram && mount -t ramfs ram /mnt/ram
echo "TFORK-LANE: booted $(uname -r)"

rc=0
check() { # name, then a command that must succeed
	name=$1; shift
	if "$@"; then echo "ok - $name"; else echo "not ok - $name"; rc=1; fi
}

# Loading must fail cleanly, with a message, when a symbol is missing.
if insmod /tfork_graft.ko require_symbol=tfork_no_such_symbol 2>/dev/null; then
	echo "not ok - load refused on a kernel without a needed symbol"; rc=1
	rmmod tfork_graft
else
	check "load refused on a kernel without a needed symbol, with a message" \
		sh -c 'dmesg | grep -q "tfork_graft: kernel symbol tfork_no_such_symbol not found"'
fi

if ! insmod /tfork_graft.ko; then
	echo "not ok - insmod tfork_graft.ko"
	dmesg | tail -n 20
	echo "TFORK-LANE-RESULT rc=90"
	poweroff -f
fi
check "/dev/tfork-graft is a root-only character device" \
	sh -c '[ -c /dev/tfork-graft ] && [ "$(stat -c %a:%u /dev/tfork-graft)" = "600:0" ]'

tests=$(cat /tests)
if [ "$tests" != criu ]; then
	/graft-test "$tests" || rc=1
fi
# CRIU through the module (the host put CRIU in only if it has the options)
if [ -x /usr/sbin/criu ] && [ -x /criu-graft-test ]; then
	for m in $(cat /criu-modules/order); do insmod "/criu-modules/$m.ko" 2>/dev/null; done
	ip link set lo up  # CRIU probes TCP repair over loopback
	/criu-graft-test /usr/sbin/criu || rc=1
else
	echo "# CRIU tests skipped: no CRIU with --graft-from in the guest"
fi

check "rmmod tfork_graft" rmmod tfork_graft
if [ -x /usr/sbin/criu ] && [ -x /criu-graft-test ]; then
	rm -rf /tmp/cgt
	/criu-graft-test /usr/sbin/criu nomodule || rc=1
fi
if dmesg | grep -E -q 'BUG:|WARNING:|Oops|general protection|Bad rss-counter|Bad page'; then
	echo "not ok - the kernel log is clean"
	dmesg | grep -E -A 30 'BUG:|WARNING:|Oops|general protection|Bad rss-counter|Bad page' | head -n 80
	rc=1
else
	echo "ok - the kernel log is clean (no BUG, WARNING, Oops, bad rss-counter)"
fi
echo "TFORK-LANE-RESULT rc=$rc"
poweroff -f
