#!/usr/bin/env python3
"""Lists the kernel modules a distribution kernel needs for microvm's devices, each after
the modules it depends on.

Usage: modules.py MODULES_DIR NAME...

MODULES_DIR is a kernel's lib/modules/VERSION as unpacked from its .deb (no modules.dep:
depmod runs only when the package is installed). Dependencies come from each module's own
.modinfo section ("depends="). Names that the kernel has built in, or does not have at
all, are skipped with a note on stderr; the others print as paths relative to MODULES_DIR.
"""
import os
import struct
import sys


def modinfo(path):
    """The key=value strings of an ELF64 module's .modinfo section."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise SystemExit(f"modules.py: {path} is not a 64-bit ELF module")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    def section(index):
        name, _, _, _, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + index * shentsize)
        return name, offset, size
    _, names_offset, _ = section(shstrndx)
    for index in range(shnum):
        name, offset, size = section(index)
        end = data.index(b"\0", names_offset + name)
        if data[names_offset + name:end] == b".modinfo":
            fields = data[offset:offset + size].split(b"\0")
            return dict(field.decode().split("=", 1) for field in fields if b"=" in field)
    return {}


def main():
    directory, wanted = sys.argv[1], sys.argv[2:]
    paths = {}
    for parent, _, files in os.walk(os.path.join(directory, "kernel")):
        for file in files:
            if file.endswith(".ko"):
                paths[file[:-3].replace("-", "_")] = os.path.join(parent, file)
    builtin = set()
    builtin_list = os.path.join(directory, "modules.builtin")
    if os.path.exists(builtin_list):
        with open(builtin_list) as f:
            builtin = {os.path.basename(line.strip())[:-3].replace("-", "_") for line in f if line.strip()}

    order, visiting = [], set()
    def visit(name):
        name = name.replace("-", "_")
        if name in order:
            return
        if name not in paths:
            print(f"modules.py: {name}: " + ("built into the kernel" if name in builtin else "not in this kernel"), file=sys.stderr)
            return
        if name in visiting:
            raise SystemExit(f"modules.py: dependency loop through {name}")
        visiting.add(name)
        for dependency in filter(None, modinfo(paths[name]).get("depends", "").split(",")):
            visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name)
    for name in order:
        print(os.path.relpath(paths[name], directory))


if __name__ == "__main__":
    main()
