#!/usr/bin/env python3
"""Writes the test initrd as an uncompressed newc cpio archive.

Usage: mkcpio.py BUSYBOX INIT OUTPUT [MODULE.ko | PROGRAM ...]

The archive holds /init, /bin/busybox with a link for every applet it lists, the
mount points /init uses and /dev/console. Kernel modules, for a distribution kernel,
go to /lib/modules with a file `order` that lists them in the order given, which /init
loads them in. Other programs go to /usr/bin. Written here rather than with cpio(1)
so that no root privilege (for the device node) is needed and the bytes are the
same on every build: owners are root, times are zero.
"""
import os
import subprocess
import sys

S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR = 0o040000, 0o100000, 0o120000, 0o020000


def entry(out, inode, name, mode, data=b"", rdev=(0, 0)):
    name_bytes = name.encode() + b"\0"
    fields = [inode, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_bytes), 0]
    out.write(b"070701" + b"".join(b"%08X" % f for f in fields))
    out.write(name_bytes)
    out.write(b"\0" * (-(110 + len(name_bytes)) % 4))
    out.write(data)
    out.write(b"\0" * (-len(data) % 4))


def main():
    busybox, init, output = sys.argv[1:4]
    modules = [path for path in sys.argv[4:] if path.endswith(".ko")]
    programs = [path for path in sys.argv[4:] if not path.endswith(".ko")]
    listing = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True).stdout
    applets = sorted({line.strip() for line in listing.splitlines() if line.strip()})
    directories = ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "root", "etc"]
    if modules:
        directories += ["lib", "lib/modules"]
    with open(output, "wb") as out:
        inode = 1
        for directory in directories:
            entry(out, inode, directory, S_IFDIR | 0o755)
            inode += 1
        entry(out, inode, "dev/console", S_IFCHR | 0o600, rdev=(5, 1))
        inode += 1
        with open(init, "rb") as f:
            entry(out, inode, "init", S_IFREG | 0o755, f.read())
        inode += 1
        with open(busybox, "rb") as f:
            entry(out, inode, "bin/busybox", S_IFREG | 0o755, f.read())
        inode += 1
        for applet in applets:
            if applet == "bin/busybox":
                continue
            depth = applet.count("/")
            target = "../" * depth + "bin/busybox"
            entry(out, inode, applet, S_IFLNK | 0o777, target.encode())
            inode += 1
        for program in programs:
            with open(program, "rb") as f:
                entry(out, inode, "usr/bin/" + os.path.basename(program), S_IFREG | 0o755, f.read())
            inode += 1
        for module in modules:
            with open(module, "rb") as f:
                entry(out, inode, "lib/modules/" + os.path.basename(module), S_IFREG | 0o644, f.read())
            inode += 1
        if modules:
            order = "".join(os.path.basename(module) + "\n" for module in modules)
            entry(out, inode, "lib/modules/order", S_IFREG | 0o644, order.encode())
            inode += 1
        entry(out, 0, "TRAILER!!!", 0)
    print(f"initrd: {len(applets)} busybox applets linked" + (f", {len(modules)} kernel modules" if modules else ""))


if __name__ == "__main__":
    main()
