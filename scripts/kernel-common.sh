# Sourced by scripts/kernel-lane.sh and scripts/kernel-guest.sh: what both need
# before they boot Debian's 6.1 kernel under QEMU. Expects say() and fail()
# (message, exit status) and $cache; takes the packages the caller needs besides
# the common ones. Sets kver (the kernel ABI), headers, kdir (the unpacked
# linux-image package) and vmlinuz.
prepare_kernel() {
	local need_pkgs=("$@")
	command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
	command -v cpio >/dev/null || need_pkgs+=(cpio)
	dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
	command -v gcc >/dev/null || need_pkgs+=(gcc make)

	kver="${TFORK_KERNEL_VERSION:-}"
	if [ -z "$kver" ]; then
		kver=$(newest_61_kernel)
		if [ -z "$kver" ]; then
			apt-get update -qq >/dev/null 2>&1 || true
			kver=$(newest_61_kernel)
		fi
		[ -n "$kver" ] || fail "apt knows no linux-image-6.1.0-*-amd64 package"
	fi
	headers="/usr/src/linux-headers-$kver"
	[ -d "$headers" ] || need_pkgs+=("linux-headers-$kver")

	if [ "${#need_pkgs[@]}" -gt 0 ]; then
		say "installing ${need_pkgs[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" \
			>"$cache/apt.log" 2>&1 || {
			apt-get update -qq >/dev/null 2>&1 || true
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" \
				>"$cache/apt.log" 2>&1
		} || { tail -n 20 "$cache/apt.log" >&2; fail "apt-get install failed"; }
	fi

	# The kernel image: the package's files, unpacked once per version.
	kdir="$cache/linux-image-$kver"
	vmlinuz="$kdir/boot/vmlinuz-$kver"
	if [ ! -e "$vmlinuz" ]; then
		say "fetching linux-image-$kver"
		local dl="$cache/download"
		rm -rf "$dl" "$kdir.tmp"
		mkdir -p "$dl"
		(cd "$dl" && apt-get download -qq "linux-image-$kver" >/dev/null 2>&1) \
			|| (cd "$dl" && apt-get download -qq "linux-image-$kver-unsigned" >/dev/null 2>&1) \
			|| fail "apt-get download linux-image-$kver failed"
		dpkg-deb -x "$dl"/linux-image-*.deb "$kdir.tmp"
		mv "$kdir.tmp" "$kdir"
		rm -rf "$dl"
	fi
	[ -e "$vmlinuz" ] || fail "no vmlinuz in linux-image-$kver"
}

newest_61_kernel() {
	apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null \
		| awk '{print $1}' | sed 's/^linux-image-//' | sort -V | tail -n1
}
