import CLinux
import Devices
import Glibc

/// The VM process's jail, Firecracker's jailer being the model. Entered once the VM is
/// built (its kernel in guest memory, its files, shares, sockets and /dev/kvm open, passt
/// started) and before any thread of its starts: a mount namespace whose root is a small
/// read-only tmpfs showing only the directories the VM still opens by path, no_new_privs,
/// every capability dropped but those the 9p server needs to act for the guest's users,
/// and resource limits. A user who is not root enters a user namespace of their own first.
public struct Jail: Sendable {
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        /// The process runs more than one thread: namespaces and capabilities are per thread.
        case threads(Int)
        /// The VM opens paths in the root directory, which the jail would have to show whole.
        case rootDirectory
        /// A user who is not root needs a user namespace, and this host refuses one.
        case noUserNamespace(errno: Int32)
        /// A system call of the jail's failed.
        case failed(call: String, path: String, errno: Int32)

        public var description: String {
            switch self {
            case .threads(let count):
                "cannot enter the jail: the process runs \(count) threads, and only a single-threaded process can"
            case .rootDirectory:
                "cannot enter the jail: a socket of the VM's is in /, which the jail would have to show whole; put the VM's sockets in a directory of their own"
            case .noUserNamespace(let errno):
                "cannot enter the jail: this host does not let a user other than root make a user namespace (unshare(CLONE_NEWUSER): \(String(cString: strerror(errno)))); run as root, or allow unprivileged user namespaces"
            case .failed(let call, let path, let errno):
                "cannot enter the jail: \(call) \(path): \(String(cString: strerror(errno)))"
            }
        }
    }

    /// What the 9p server needs to act for the guest's users when microvm runs as root:
    /// give files away, reach and change any file on the share, keep set-group-ID bits.
    /// Device nodes are never made, so CAP_MKNOD is not kept; nor is CAP_DAC_READ_SEARCH,
    /// which CAP_DAC_OVERRIDE covers for reading and searching and which would add
    /// open_by_handle_at, a way to files outside the jail's mount namespace.
    public static let shareCapabilities = [CLINUX_CAP_CHOWN, CLINUX_CAP_DAC_OVERRIDE, CLINUX_CAP_FOWNER, CLINUX_CAP_FSETID]
    /// The jail's root: a directory per path component leading to each shown directory.
    static let rootOptions = "size=64k,nr_inodes=256,mode=0755"
    /// Where the new root is prepared; a mount in the jail's namespace only, hidden from then on.
    static let staging = "/tmp"

    /// Absolute directories shown in the jail at the same paths, none beneath another.
    public let directories: [String]
    /// The CAP_* numbers kept.
    public let capabilities: [Int32]
    /// Descriptors the VM may open once jailed, beside those open when it enters.
    public let moreFiles: Int

    /// `directories` may be relative (to the working directory) and nested.
    public init(directories: [String], capabilities: [Int32], moreFiles: Int) throws(Jail.Error) {
        let absolute = directories.map(Self.absolute).sorted { $0.count < $1.count }
        var kept: [String] = []
        for directory in absolute where !kept.contains(where: { directory == $0 || directory.hasPrefix($0 + "/") }) {
            guard directory != "/" else { throw .rootDirectory }
            kept.append(directory)
        }
        self.directories = kept
        self.capabilities = capabilities
        self.moreFiles = moreFiles
    }

    /// Enters the jail; the process stays in it. Throws before it changes anything it cannot undo
    /// when the process has other threads or cannot make its namespaces.
    public func enter() throws(Jail.Error) {
        let threads = try Self.entries(of: "/proc/self/task")
        guard threads == 1 else { throw .threads(threads) }
        // Less the one that lists them.
        let openFiles = try Self.entries(of: "/proc/self/fd") - 1
        let workingDirectory = Self.workingDirectory()
        try enterNamespaces()
        try call("mount", "/") { clinux_mount(nil, "/", nil, CLINUX_MS_REC | CLINUX_MS_PRIVATE, nil) }
        try makeRoot()
        try call("chdir", Self.staging) { chdir(Self.staging) == 0 ? 0 : -errno }
        try call("pivot_root", Self.staging) { clinux_pivot_root(".", ".") }
        try call("umount2", "the old root") { clinux_umount2(".", CLINUX_MNT_DETACH) }
        try call("mount", "/ read-only") {
            clinux_mount(nil, "/", nil, CLINUX_MS_REMOUNT | CLINUX_MS_RDONLY | CLINUX_MS_NOSUID | CLINUX_MS_NODEV | CLINUX_MS_NOEXEC, nil)
        }
        // Relative socket paths keep working when the working directory is shown.
        if workingDirectory.map({ chdir($0) }) != 0 { try call("chdir", "/") { chdir("/") == 0 ? 0 : -errno } }
        try limit(RLIMIT_NOFILE, to: rlim_t(max(0, openFiles + moreFiles)))
        try limit(RLIMIT_CORE, to: 0)
        try dropPrivileges()
    }

    /// A mount namespace; for a user other than root, inside a user namespace that maps
    /// only their own user and group, as themselves.
    private func enterNamespaces() throws(Jail.Error) {
        let (user, group) = (geteuid(), getegid())
        guard user != 0 else {
            try call("unshare", "CLONE_NEWNS") { clinux_unshare(CLINUX_CLONE_NEWNS) }
            return
        }
        let result = clinux_unshare(CLINUX_CLONE_NEWUSER | CLINUX_CLONE_NEWNS)
        guard result == 0 else { throw .noUserNamespace(errno: -result) }
        try Self.write("deny", to: "/proc/self/setgroups")
        try Self.write("\(user) \(user) 1", to: "/proc/self/uid_map")
        try Self.write("\(group) \(group) 1", to: "/proc/self/gid_map")
    }

    /// The new root at `staging`: a tmpfs, and each directory bound at its own path.
    /// Each source is opened before the tmpfs hides what is beneath `staging`.
    private func makeRoot() throws(Jail.Error) {
        var sources: [Int32] = []
        defer { for fd in sources { close(fd) } }
        for directory in directories {
            let fd = open(directory, CLINUX_O_PATH | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { throw .failed(call: "open", path: directory, errno: errno) }
            sources.append(fd)
        }
        try call("mount", "a tmpfs on \(Self.staging)") {
            clinux_mount("microvm-jail", Self.staging, "tmpfs", CLINUX_MS_NOSUID | CLINUX_MS_NODEV | CLINUX_MS_NOEXEC, Self.rootOptions)
        }
        for (directory, fd) in zip(directories, sources) {
            var path = Self.staging
            for component in directory.split(separator: "/") {
                path += "/" + component
                guard mkdir(path, 0o755) == 0 || errno == EEXIST else { throw .failed(call: "mkdir", path: path, errno: errno) }
            }
            try call("mount", directory) { clinux_mount("/proc/self/fd/\(fd)", path, nil, CLINUX_MS_BIND | CLINUX_MS_REC, nil) }
        }
    }

    /// no_new_privs, then every capability but `capabilities` out of each set.
    private func dropPrivileges() throws(Jail.Error) {
        try call("prctl", "PR_SET_NO_NEW_PRIVS") { clinux_prctl(CLINUX_PR_SET_NO_NEW_PRIVS, 1, 0) }
        var capability: Int32 = 0
        // The bounding set ends with the kernel's last capability, which this build may not name.
        while capability < 64 {
            if !capabilities.contains(capability) {
                let result = clinux_prctl(CLINUX_PR_CAPBSET_DROP, UInt(capability), 0)
                if result == -EINVAL { break }
                try call("prctl", "PR_CAPBSET_DROP \(capability)") { result }
            }
            capability += 1
        }
        try call("prctl", "PR_CAP_AMBIENT_CLEAR_ALL") { clinux_prctl(CLINUX_PR_CAP_AMBIENT, UInt(CLINUX_PR_CAP_AMBIENT_CLEAR_ALL), 0) }
        let kept = capabilities.reduce(UInt64(0)) { $0 | 1 << UInt64($1) }
        try call("capset", "\(capabilities)") { clinux_capset(kept, kept, 0) }
    }

    private func limit(_ resource: __rlimit_resource, to value: rlim_t) throws(Jail.Error) {
        let kind = __rlimit_resource_t(resource.rawValue)
        var current = rlimit()
        try call("getrlimit", "\(resource.rawValue)") { getrlimit(kind, &current) == 0 ? 0 : -errno }
        var new = rlimit(rlim_cur: min(value, current.rlim_max), rlim_max: min(value, current.rlim_max))
        try call("setrlimit", "\(resource.rawValue)") { setrlimit(kind, &new) == 0 ? 0 : -errno }
    }

    /// Runs a call that returns 0 or -errno.
    private func call(_ name: String, _ path: String, _ body: () -> Int32) throws(Jail.Error) {
        let result = body()
        guard result == 0 else { throw .failed(call: name, path: path, errno: -result) }
    }

    private static func write(_ text: String, to path: String) throws(Jail.Error) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .failed(call: "open", path: path, errno: errno) }
        defer { close(fd) }
        let written = text.withCString { Glibc.write(fd, $0, strlen($0)) }
        guard written == text.utf8.count else { throw .failed(call: "write", path: path, errno: errno) }
    }

    /// The names in a directory of /proc, but `.` and `..`.
    private static func entries(of path: String) throws(Jail.Error) -> Int {
        guard let directory = opendir(path) else { throw .failed(call: "opendir", path: path, errno: errno) }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if name != [0x2e] && name != [0x2e, 0x2e] { count += 1 }
        }
        return count
    }

    private static func workingDirectory() -> String? {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        guard buffer.withUnsafeMutableBytes({ getcwd($0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// `path` from the working directory, without `.` or empty components.
    static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : (workingDirectory() ?? "") + "/" + path
        return "/" + full.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }
}
