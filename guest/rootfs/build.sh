#!/bin/sh
# Makes the sample root file system: a tree with Debian's static busybox and its applet
# links, /etc, and the mount points the initrd's /init uses; then an ext4 image of it
# with mkfs.ext4 -d. No root privileges needed.
# Usage: build.sh BUSYBOX DIR IMAGE
set -eu
busybox=$1 tree=$2 image=$3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$tree"
cd "$tree"
mkdir -p bin sbin usr/bin usr/sbin etc root tmp proc sys dev mnt var/tmp
cp "$busybox" bin/busybox
for applet in $("$busybox" --list-full); do
    # The root has no init of its own: without a command, /init starts a shell in it.
    [ "$applet" = sbin/init ] && continue
    [ -e "$applet" ] || ln -s /bin/busybox "$applet"
done
cp "$here/os-release" etc/os-release
printf 'root:x:0:0:root:/root:/bin/sh\n' >etc/passwd
printf 'root:x:0:\n' >etc/group
printf 'microvm\n' >etc/hostname
chmod 1777 tmp var/tmp
cd - >/dev/null
mkfs.ext4 -q -F -t ext4 -i 8192 -L rootfs -E root_owner=0:0 -d "$tree" "$image" 64M
