import Glibc
import VMM

/// How a container becomes a VM: the VM's configuration and what the guest's
/// `oci-init` is told (guest/initrd/oci-init.c reads the records).
///
/// The root is shared over virtio-9p. Bind mounts become 9p shares: a directory is
/// shared itself (one share per directory and access mode), a file through a share of
/// its directory that shows only the files bound from it (one per directory and access
/// mode, never merged with a share of the whole directory), and the guest binds the file
/// or directory into place. Every share maps owners by the spec's id mappings. `proc`, `sysfs`,
/// `tmpfs`, `devpts` and `mqueue` are made in the guest; a tmpfs at /dev gets the
/// standard device nodes; /dev/shm is a tmpfs of the guest's (the VM is the container's
/// IPC boundary); cgroup mounts are left out (the VM is its resource boundary too).
public struct ContainerPlan: Sendable {
    public var configuration: VMConfiguration
    /// The records of /oci/config, in order.
    public var records: [(key: String, value: String)]
    /// The spec asks for a boot rather than a template's restore (`org.microvm.template=false`).
    public var boots: Bool

    /// Annotations that set the VM's options (docs/oci.md).
    public enum Annotation {
        public static let memory = "org.microvm.memory"
        public static let cpus = "org.microvm.cpus"
        public static let kernel = "org.microvm.kernel"
        public static let initrd = "org.microvm.initrd"
        public static let network = "org.microvm.network"
        public static let cmdline = "org.microvm.cmdline"
        /// `false`: boot the kernel instead of restoring the template of the container's machine.
        public static let template = "org.microvm.template"
    }

    /// The tags of the bind mounts' shares: `oci0`, `oci1`, …
    static let shareTagPrefix = "oci"
    /// Where oci-init mounts each bind mount's share, inside the guest.
    static let shareMountDirectory = "/run/oci"
    /// Where the guest's /init mounts the 9p device of a VM restored from a template, whose
    /// exports are the shares (guest/initrd/init).
    static let exportsDirectory = "/run/exports"

    /// `guest` is the default kernel and initrd, used unless annotations name others, which
    /// must lie in one of `allowedImages` (directories the administrator named; none by
    /// default). The configuration's `appendedInitrds` is left for the caller: where
    /// `configArchive` is written.
    public init(spec: ContainerSpec, guest: (kernel: String, initrd: String), allowedImages: [String] = []) throws(OCIError) {
        let memory: UInt64
        do {
            memory = try MemorySize.parse(spec.annotation(Annotation.memory) ?? "256M")
        } catch {
            throw .config("annotation \(Annotation.memory): \(error)")
        }
        switch spec.annotation(Annotation.template) {
        case nil, "true": boots = false
        case "false": boots = true
        case let other?: throw .config("annotation \(Annotation.template): \(other); give true or false")
        }
        let cpuText = spec.annotation(Annotation.cpus) ?? "1"
        guard let cpus = Int(cpuText), cpus >= 1 else { throw .config("annotation \(Annotation.cpus): \(cpuText) is not a vCPU count") }
        let network: VMConfiguration.Network?
        switch spec.annotation(Annotation.network) {
        case nil: network = spec.hasNetwork ? .passt(socket: nil) : nil
        case "passt": network = .passt(socket: nil)
        case "none": network = nil
        case let other?: throw .config("annotation \(Annotation.network): \(other); give passt or none")
        }
        var root = spec.root
        var status = stat()
        guard stat(root.path, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
            throw .bundle("the root file system \(root.path) is not a directory")
        }
        root.path = Self.canonical(root.path)

        let kernel = try Self.allowedImage(spec.annotation(Annotation.kernel), Annotation.kernel, allowedImages) ?? guest.kernel
        let initrd = try Self.allowedImage(spec.annotation(Annotation.initrd), Annotation.initrd, allowedImages) ?? guest.initrd

        var shares = [VMConfiguration.Share(path: root.path, tag: VMConfiguration.Share.rootTag, readOnly: root.readonly)]
        var records: [(String, String)] = []
        var mountRecords: [(String, String)] = []
        var devices = false
        for mount in spec.mounts {
            let (flags, data) = Self.flags(mount.options)
            func add(_ type: String, _ source: String, flags: UInt, data: String) {
                mountRecords += [("mount", type), ("source", source), ("target", mount.destination), ("flags", String(flags)), ("data", data)]
            }
            switch mount.isBind ? "bind" : mount.type {
            case "bind":
                if mount.destination == "/dev/shm" {
                    add("tmpfs", "shm", flags: flags & ~Self.bindFlags, data: "mode=1777")
                    continue
                }
                var source = stat()
                guard stat(mount.source, &source) == 0 else { throw .bundle("the bind mount's source \(mount.source) does not exist") }
                let isDirectory = source.st_mode & S_IFMT == S_IFDIR
                let path = Self.canonical(mount.source)
                let directory = isDirectory ? path : String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
                let sharePath = directory.isEmpty ? "/" : directory
                let name = isDirectory ? nil : path.split(separator: "/").last.map(String.init)
                let readOnly = flags & UInt(MS_RDONLY) != 0
                let tag: String
                // A file's share shows only the files bound through it, so it is never one with a directory's.
                if let index = shares.indices.dropFirst().first(where: {
                    shares[$0].path == sharePath && shares[$0].readOnly == readOnly && (shares[$0].visibleEntries == nil) == isDirectory
                }) {
                    tag = shares[index].tag
                    if let name { shares[index].visibleEntries?.insert(name) }
                } else {
                    tag = Self.shareTagPrefix + String(shares.count - 1)
                    shares.append(VMConfiguration.Share(path: sharePath, tag: tag, readOnly: readOnly, visibleEntries: name.map { [$0] }))
                    records.append(("share", tag + (readOnly ? " 1" : " 0")))
                }
                add("bind", Self.shareMountDirectory + "/" + tag + (name.map { "/" + $0 } ?? ""), flags: flags | Self.bindFlags, data: "")
            case "proc", "sysfs", "tmpfs", "devpts", "mqueue":
                if mount.type == "tmpfs" && mount.destination == "/dev" { devices = true }
                add(mount.type, mount.source.isEmpty ? mount.type : mount.source, flags: flags, data: data)
            case "cgroup", "cgroup2":
                continue
            default:
                throw .config("the mount at \(mount.destination) has type \"\(mount.type)\"; microvm-oci makes bind, proc, sysfs, tmpfs, devpts and mqueue mounts")
            }
        }
        // Beside the shares: the command's two consoles, virtio-rng and the network device.
        let capacity = VMConfiguration.virtioSlotCount - 2 - 1 - (network == nil ? 0 : 1)
        guard shares.count <= capacity else {
            throw .config("the bind mounts need \(shares.count - 1) shared directories; a VM has room for \(capacity - 1) beside its root")
        }
        for index in shares.indices {
            shares[index].userIDs = spec.uidMappings
            shares[index].groupIDs = spec.gidMappings
        }
        records += mountRecords
        if devices { records.append(("devices", "1")) }
        if let hostname = spec.hostname, !hostname.isEmpty { records.append(("hostname", hostname)) }
        let process = spec.process
        records += [("cwd", process.cwd), ("uid", String(process.uid)), ("gid", String(process.gid))]
        records += process.additionalGids.map { ("group", String($0)) }
        if let umask = process.umask { records.append(("umask", String(umask))) }
        for limit in process.rlimits {
            records.append(("rlimit", "\(ContainerSpec.rlimitResources[limit.type] ?? 0) \(limit.soft) \(limit.hard)"))
        }
        if process.terminal { records.append(("terminal", "1")) }
        records += process.args.map { ("arg", $0) }
        records += process.env.map { ("env", $0) }
        for (key, value) in records where value.utf8.contains(0) {
            throw .config("\(key) \(value.prefix(40)) holds a NUL byte")
        }
        self.records = records

        var configuration = VMConfiguration(
            kernel: kernel, initrd: initrd,
            commandLine: KernelCommandLine(spec.annotation(Annotation.cmdline) ?? "console=ttyS0 panic=-1 quiet"),
            memorySize: memory, vcpuCount: cpus, consoleInput: true, shares: shares, seccomp: true, network: network)
        configuration.commandStreams = true
        self.configuration = configuration
    }

    /// The archive appended to the initrd of a booted VM: /oci/config with the records.
    public var configArchive: [UInt8] {
        var archive = CPIOArchive()
        archive.addDirectory("oci")
        archive.addFile("oci/config", contents: configFile(exports: nil))
        return archive.finish()
    }

    /// /oci/config: the records, each `key=value` and a NUL byte. With `exports`, the
    /// shares are directories there (a VM restored from a template).
    public func configFile(exports: String?) -> [UInt8] {
        var text: [UInt8] = []
        for (key, value) in records + (exports.map { [("exports", $0)] } ?? []) {
            text += Array(key.utf8) + [UInt8(ascii: "=")] + Array(value.utf8) + [0]
        }
        return text
    }

    /// The work order of a VM restored from a template: /oci/config and the root, with the
    /// network when the container has one; oci-init does the rest.
    public var workOrder: WorkOrder {
        var order = configuration.workOrder
        order.files = [("/oci/config", configFile(exports: Self.exportsDirectory))]
        return order
    }

    static let bindFlags = UInt(MS_BIND) | UInt(MS_REC)

    /// Mount options as MS_* flags and the rest as the file system's data.
    static func flags(_ options: [String]) -> (UInt, String) {
        let set: [String: Int] = [
            "ro": Int(MS_RDONLY), "nosuid": Int(MS_NOSUID), "nodev": Int(MS_NODEV), "noexec": Int(MS_NOEXEC),
            "sync": Int(MS_SYNCHRONOUS), "dirsync": Int(MS_DIRSYNC), "noatime": Int(MS_NOATIME),
            "nodiratime": Int(MS_NODIRATIME), "relatime": Int(MS_RELATIME), "strictatime": Int(MS_STRICTATIME),
            "bind": Int(MS_BIND), "rbind": Int(MS_BIND | MS_REC),
        ]
        let clear: [String: Int] = [
            "rw": Int(MS_RDONLY), "suid": Int(MS_NOSUID), "dev": Int(MS_NODEV), "exec": Int(MS_NOEXEC),
            "async": Int(MS_SYNCHRONOUS), "atime": Int(MS_NOATIME), "diratime": Int(MS_NODIRATIME),
            "norelatime": Int(MS_RELATIME), "nostrictatime": Int(MS_STRICTATIME),
        ]
        let propagation: Set<String> = ["private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable",
                                         "defaults", "tmpcopyup", "idmap", "ridmap"]
        var flags = 0
        var data: [String] = []
        for option in options {
            if let bits = set[option] {
                flags |= bits
            } else if let bits = clear[option] {
                flags &= ~bits
            } else if !propagation.contains(option) {
                data.append(option)
            }
        }
        return (UInt(flags), data.joined(separator: ","))
    }

    /// The real path of the image an annotation names, when it lies inside one of the
    /// allowed directories: otherwise a container could boot any host file it names, and
    /// a secret would become guest RAM (Kata's CVE-2020-27151). The resolved path is what
    /// the VM opens, so a link swapped in after the check cannot lead elsewhere.
    static func allowedImage(_ path: String?, _ annotation: String, _ allowed: [String]) throws(OCIError) -> String? {
        guard let path else { return nil }
        guard !allowed.isEmpty else {
            throw .config("annotation \(annotation): \(path) is refused; microvm-oci boots an annotation's image only from a directory named with --allowed-images")
        }
        guard let resolved = realpath(path, nil) else {
            throw .config("annotation \(annotation): cannot resolve \(path): \(String(cString: strerror(errno)))")
        }
        let real = String(cString: resolved)
        free(resolved)
        let inside = allowed.contains { directory in
            let base = canonical(directory)
            return base == "/" || real.hasPrefix(base + "/")
        }
        guard inside else {
            let named = real == path ? path : "\(path) (\(real))"
            throw .config("annotation \(annotation): \(named) is not inside a directory named with --allowed-images")
        }
        return real
    }

    /// The path with symbolic links resolved, so that the share is the directory itself.
    static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
