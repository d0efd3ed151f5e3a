import Glibc
import VMM

/// What `--rootfs PATH[,ro]` names: an ext4 image, attached as it is, or a directory,
/// turned into an ext4 image with `mkfs.ext4 -d` (no root needed) and cached under the
/// microvm cache by a hash of the tree, so an unchanged tree reuses its image.
enum RootFilesystem {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// How a directory becomes the guest's root.
    enum Mode: String, CaseIterable {
        /// Served as it is over virtio-9p.
        case share = "9p"
        /// Copied into a cached ext4 image.
        case image = "ext4"
    }

    static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFDIR
    }

    /// The image to attach as /dev/vda; `report` gets a progress line while one is built.
    static func image(for path: String, report: (String) -> Void) throws -> String {
        let file: InputFile
        do {
            file = try InputFile(path, kinds: [.regular, .blockDevice, .directory])
        } catch {
            throw Failure(description: "cannot open the root filesystem \(path): \(error.reason)")
        }
        if file.status.st_mode & S_IFMT == S_IFDIR { return try imageOfDirectory(path, report: report) }
        // An ext4 superblock has 0xEF53 at byte 1080.
        var magic: UInt16 = 0
        guard pread(file.fd, &magic, 2, 1080) == 2, UInt16(littleEndian: magic) == 0xef53 else {
            throw Failure(description: "the root filesystem \(path) is not an ext4 image (nor a directory)")
        }
        return path
    }

    private static func imageOfDirectory(_ directory: String, report: (String) -> Void) throws -> String {
        var tree = TreeSummary()
        try tree.walk(directory, relative: "")
        let cache = DefaultGuest.cacheDirectory + "/rootfs-images"
        try makeDirectories(cache)
        let image = cache + "/" + String(tree.hash, radix: 16) + ".ext4"
        if access(image, R_OK) == 0 { return image }
        // Room for the files, the file system's own metadata, and what the guest writes.
        let megabytes = max(64, (tree.bytes * 3 / 2) >> 20 + 32)
        report("building an ext4 image of \(directory) (\(megabytes) MiB) in \(image)")
        let staging = image + ".partial-\(getpid())"
        unlink(staging)
        try run(mkfs(), ["-q", "-F", "-t", "ext4", "-i", "8192", "-L", "rootfs", "-d", directory, staging, "\(megabytes)M"])
        guard rename(staging, image) == 0 else {
            unlink(staging)
            throw Failure(description: "cannot move the root filesystem image to \(image): \(String(cString: strerror(errno)))")
        }
        return image
    }

    private static func mkfs() throws -> String {
        for candidate in ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4", "/usr/bin/mkfs.ext4"] where access(candidate, X_OK) == 0 {
            return candidate
        }
        throw Failure(description: "mkfs.ext4 is not installed; a directory given as --rootfs needs it (apt-get install e2fsprogs)")
    }

    private static func makeDirectories(_ path: String) throws {
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw Failure(description: "cannot create \(prefix): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Runs `tool` and waits; its error output becomes the failure's message.
    private static func run(_ tool: String, _ arguments: [String]) throws {
        var output: [Int32] = [0, 0]
        guard pipe(&output) == 0 else { throw Failure(description: "pipe: \(String(cString: strerror(errno)))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, output[1], 2)
        let argv = ([tool] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, tool, &actions, nil, argv, environ)
        close(output[1])
        defer { close(output[0]) }
        guard spawned == 0 else { throw Failure(description: "cannot run \(tool): \(String(cString: strerror(spawned)))") }
        var text: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(output[0], $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            if text.count < 4096 { text += buffer[0..<count] }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else {
            let message = String(decoding: text, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? "status \(status)"
            throw Failure(description: "\(tool) failed: \(message)")
        }
    }
}

/// Names, types, sizes, modes, owners and modification times of everything under a
/// directory, hashed (FNV-1a, 64 bits): a changed tree gets a new image.
struct TreeSummary {
    private(set) var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    private(set) var bytes = 0

    private mutating func mix(_ text: String) {
        for byte in text.utf8 + [0] {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
    }

    mutating func walk(_ path: String, relative: String) throws {
        guard let directory = opendir(path) else {
            throw RootFilesystem.Failure(description: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        for name in names.sorted() {
            let full = path + "/" + name
            var status = stat()
            guard lstat(full, &status) == 0 else { continue }
            mix("\(relative)/\(name) \(status.st_mode) \(status.st_size) \(status.st_uid):\(status.st_gid) "
                + "\(status.st_mtim.tv_sec).\(status.st_mtim.tv_nsec)")
            bytes += (Int(status.st_size) + 4095) / 4096 * 4096 + 256
            switch status.st_mode & S_IFMT {
            case S_IFDIR: try walk(full, relative: relative + "/" + name)
            case S_IFLNK:
                var target = [CChar](repeating: 0, count: 4096)
                let count = readlink(full, &target, target.count - 1)
                if count > 0 { mix(String(decoding: target[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
            default: break
            }
        }
    }
}
