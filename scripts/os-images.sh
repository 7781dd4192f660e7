#!/usr/bin/env bash
# os-images.sh: build real Debian VM disk images for `aimwan bench --images`:
# a template and three role clones "cloned from one template", as a site
# that creates VMs from a golden image has them.
#
#   1. debootstrap a Debian system (minbase plus what a cloud VM template
#      carries: kernel, systemd, ssh, sudo, cron, rsyslog, python3...) into
#      DIR/trees/template, then clean it like a template (apt cache emptied,
#      machine-id blank, no ssh host keys).
#   2. For each role (web, db, build): copy the template's folder, give the
#      copy its own identity (host name, machine-id, ssh host keys) and
#      install the role's packages with apt in a chroot (services are not
#      started: policy-rc.d), then clean the apt cache.
#   3. Make each folder an ext4 image with `mkfs.ext4 -d` (no mount needed),
#      all of the same size, sparse: DIR/template.img, web.img, db.img,
#      build.img; DIR/MANIFEST.txt lists what went into each.
#
# Needs root (debootstrap, chroot, mounts of proc/sys/dev inside the trees),
# debootstrap, e2fsprogs >= 1.43 (mkfs.ext4 -d) and a Debian mirror. The
# trees are deleted at the end unless --keep-trees. See docs/bench.md ("Real
# OS images").
#
# Usage: scripts/os-images.sh [--out DIR] [--size 3G] [--suite bookworm]
#                             [--mirror URL] [--keep-trees]
set -euo pipefail

OUT=os-images
SIZE=3G
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
KEEP=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
	case "$1" in
	--out) OUT=$2; shift 2 ;;
	--size) SIZE=$2; shift 2 ;;
	--suite) SUITE=$2; shift 2 ;;
	--mirror) MIRROR=$2; shift 2 ;;
	--keep-trees) KEEP=1; shift ;;
	-h | --help) usage 0 ;;
	*) echo "os-images.sh: unknown argument $1" >&2; usage ;;
	esac
done

[ "$(id -u)" = 0 ] || { echo "os-images.sh: needs root (debootstrap, chroot)" >&2; exit 2; }
for t in debootstrap mkfs.ext4 chroot; do
	command -v "$t" >/dev/null || { echo "os-images.sh: $t not found (apt-get install debootstrap e2fsprogs)" >&2; exit 2; }
done

# What a cloud VM template carries on top of minbase.
TEMPLATE_PKGS=systemd-sysv,udev,linux-image-amd64,openssh-server,sudo,ca-certificates,curl,wget,less,vim-tiny,\
iproute2,iputils-ping,ifupdown,isc-dhcp-client,cron,logrotate,rsyslog,python3,man-db,locales,tzdata,apt-utils,\
unattended-upgrades,gnupg,bash-completion,e2fsprogs,kmod,procps
# Roles: the packages each clone installs after it was copied from the template.
declare -A ROLE_PKGS=(
	[web]="nginx php8.2-fpm php8.2-mysql php8.2-gd php8.2-curl php8.2-xml php8.2-mbstring certbot python3-certbot-nginx"
	[db]="postgresql postgresql-contrib mariadb-server"
	[build]="build-essential git cmake pkg-config python3-dev libssl-dev golang-go"
)
ROLES=(web db build)
# One file-system UUID for all: a clone of a template disk keeps its UUID.
FSUUID=5e3d1c2a-7b4f-4c1e-9a6d-2f8b0c4e6a10

TREES=$OUT/trees
mkdir -p "$TREES"
MOUNTED=()
cleanup() {
	local i
	for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTED[$i]}" 2>/dev/null || true; done
	MOUNTED=()
}
trap cleanup EXIT

# chroot_run TREE CMD...: run CMD in TREE with proc, sys and dev mounted,
# services kept from starting and apt non-interactive.
chroot_run() {
	local tree=$1
	shift
	mount -t proc proc "$tree/proc" && MOUNTED+=("$tree/proc")
	mount --rbind /sys "$tree/sys" && MOUNTED+=("$tree/sys")
	mount --rbind /dev "$tree/dev" && MOUNTED+=("$tree/dev")
	printf '#!/bin/sh\nexit 101\n' >"$tree/usr/sbin/policy-rc.d"
	chmod 755 "$tree/usr/sbin/policy-rc.d"
	cp /etc/resolv.conf "$tree/etc/resolv.conf"
	local rc=0
	DEBIAN_FRONTEND=noninteractive LC_ALL=C chroot "$tree" "$@" || rc=$?
	rm -f "$tree/usr/sbin/policy-rc.d"
	cleanup
	return $rc
}

# clean_tree TREE: what a template builder removes before sealing an image.
clean_tree() {
	local tree=$1
	chroot_run "$tree" apt-get clean
	rm -rf "$tree"/var/lib/apt/lists/partial/* "$tree"/tmp/* "$tree"/var/tmp/*
	: >"$tree/etc/resolv.conf"
}

echo "== template: debootstrap $SUITE from $MIRROR into $TREES/template"
if [ ! -e "$TREES/template/.os-images-done" ]; then
	rm -rf "$TREES/template"
	debootstrap --variant=minbase --include="$TEMPLATE_PKGS" "$SUITE" "$TREES/template" "$MIRROR"
	echo template >"$TREES/template/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\ttemplate\n' >"$TREES/template/etc/hosts"
	printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" >"$TREES/template/etc/apt/sources.list"
	chroot_run "$TREES/template" apt-get update -qq
	chroot_run "$TREES/template" apt-get -y -qq upgrade
	clean_tree "$TREES/template"
	: >"$TREES/template/etc/machine-id" # blank: each VM makes its own at first boot
	rm -f "$TREES/template"/etc/ssh/ssh_host_*
	touch "$TREES/template/.os-images-done"
fi

for role in "${ROLES[@]}"; do
	tree=$TREES/$role
	echo "== $role: copy of the template, then apt-get install ${ROLE_PKGS[$role]}"
	[ -e "$tree/.os-images-done" ] && continue
	rm -rf "$tree"
	cp -a "$TREES/template" "$tree"
	rm -f "$tree/.os-images-done"
	echo "$role" >"$tree/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$role" >"$tree/etc/hosts"
	head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tree/etc/machine-id"
	echo >>"$tree/etc/machine-id"
	chroot_run "$tree" ssh-keygen -A
	chroot_run "$tree" apt-get update -qq
	# shellcheck disable=SC2086 # word splitting of the package list is wanted
	chroot_run "$tree" apt-get install -y -qq --no-install-recommends ${ROLE_PKGS[$role]}
	clean_tree "$tree"
	touch "$tree/.os-images-done"
done

manifest=$OUT/MANIFEST.txt
{
	echo "# aimwan scripts/os-images.sh: $SUITE from $MIRROR, images of $SIZE, made $(date -u +%FT%TZ)"
	echo "# template packages (on top of minbase): $TEMPLATE_PKGS"
} >"$manifest"
for name in template "${ROLES[@]}"; do
	tree=$TREES/$name
	img=$OUT/$name.img
	rm -f "$img"
	echo "== $name: mkfs.ext4 -d $tree $img $SIZE"
	rm -f "$tree/.os-images-done"
	mkfs.ext4 -q -F -L "$name" -U "$FSUUID" -E "hash_seed=$FSUUID,root_owner=0:0" -d "$tree" "$img" "$SIZE"
	touch "$tree/.os-images-done"
	pkgs=$(chroot "$tree" dpkg-query -f '.\n' -W | wc -l)
	used=$(du -sx --block-size=1 "$tree" | cut -f1)
	alloc=$(du --block-size=1 "$img" | cut -f1)
	printf '%s.img\tsize %s\tfiles %s bytes\tallocated %s bytes\tpackages %s\troles %s\n' \
		"$name" "$SIZE" "$used" "$alloc" "$pkgs" "${ROLE_PKGS[$name]:-template}" | tee -a "$manifest"
done

if [ "$KEEP" = 0 ]; then
	echo "== removing $TREES (--keep-trees keeps them)"
	rm -rf "$TREES"
fi
echo "images in $OUT: template.img (the template) and web.img db.img build.img (its clones)"
echo "replicate them: aimwan bench --out OUTDIR --images $OUT/web.img $OUT/db.img $OUT/build.img"
