import Runtime
import Devices

/// What microvm-oci reads of a bundle's `config.json` (OCI runtime spec 1.x): the
/// process, the root, the hostname, the mounts, the annotations and whether the
/// container has a network. Anything else (capabilities, seccomp, cgroups) belongs to
/// the guest kernel's own isolation, which the VM replaces.
public struct ContainerSpec: Equatable, Sendable {
    public var ociVersion: String
    public var process: Process
    public var root: Root
    public var hostname: String?
    public var mounts: [Mount]
    public var annotations: [(key: String, value: String)]
    /// False when the container asks for a network namespace of its own with no path (a
    /// new, empty one: `podman --network none`); true for a namespace to join or none.
    public var hasNetwork: Bool
    /// `linux.uidMappings` and `linux.gidMappings`: container ids to host ids.
    public var uidMappings: [IDMapping]
    public var gidMappings: [IDMapping]

    /// The most ranges a mapping may have, as the kernel's `uid_map` takes.
    public static let maximumMappingRanges = 340

    public struct Process: Equatable, Sendable {
        public var args: [String]
        public var env: [String]
        public var cwd: String
        public var uid: UInt32
        public var gid: UInt32
        public var additionalGids: [UInt32]
        public var umask: UInt32?
        public var terminal: Bool
        public var rlimits: [Rlimit]
        public var consoleSize: (width: UInt16, height: UInt16)?

        public static func == (lhs: Process, rhs: Process) -> Bool {
            lhs.args == rhs.args && lhs.env == rhs.env && lhs.cwd == rhs.cwd && lhs.uid == rhs.uid && lhs.gid == rhs.gid
                && lhs.additionalGids == rhs.additionalGids && lhs.umask == rhs.umask && lhs.terminal == rhs.terminal
                && lhs.rlimits == rhs.rlimits && lhs.consoleSize?.width == rhs.consoleSize?.width
                && lhs.consoleSize?.height == rhs.consoleSize?.height
        }
    }

    public struct Rlimit: Equatable, Sendable {
        public var type: String
        public var soft: UInt64
        public var hard: UInt64
    }

    public struct Root: Equatable, Sendable {
        /// Absolute: a relative `root.path` is resolved against the bundle.
        public var path: String
        public var readonly: Bool
    }

    public struct Mount: Equatable, Sendable {
        public var destination: String
        public var type: String
        /// Absolute for a bind mount: a relative source is resolved against the bundle, as runc does.
        public var source: String
        public var options: [String]

        public var isBind: Bool {
            type == "bind" || type == "rbind" || options.contains { $0 == "bind" || $0 == "rbind" }
        }
    }

    public static func == (lhs: ContainerSpec, rhs: ContainerSpec) -> Bool {
        lhs.ociVersion == rhs.ociVersion && lhs.process == rhs.process && lhs.root == rhs.root && lhs.hostname == rhs.hostname
            && lhs.mounts == rhs.mounts && lhs.hasNetwork == rhs.hasNetwork
            && lhs.uidMappings == rhs.uidMappings && lhs.gidMappings == rhs.gidMappings
            && lhs.annotations.elementsEqual(rhs.annotations) { $0.key == $1.key && $0.value == $1.value }
    }

    public func annotation(_ key: String) -> String? {
        annotations.last { $0.key == key }?.value
    }

    /// Reads a parsed `config.json`; `bundle` is the directory it came from.
    public init(_ json: JSONValue, bundle: String) throws(OCIError) {
        guard case .object = json else { throw .config("the document is not a JSON object") }
        guard case .string(let version)? = json["ociVersion"] else { throw .config("no \"ociVersion\" string") }
        guard version.hasPrefix("1.") else { throw .config("ociVersion \(version) is not supported; microvm-oci reads 1.x") }
        ociVersion = version

        guard let processValue = json["process"] else { throw .config("no \"process\": microvm-oci needs the process to run") }
        let args = try Self.strings(processValue["args"], "process.args")
        guard !args.isEmpty else { throw .config("process.args is empty") }
        let cwd = try Self.string(processValue["cwd"], "process.cwd") ?? "/"
        guard cwd.hasPrefix("/") else { throw .config("process.cwd \(cwd) is not an absolute path") }
        let user = processValue["user"]
        var rlimits: [Rlimit] = []
        if let list = processValue["rlimits"] {
            guard case .array(let items) = list else { throw .config("process.rlimits is not an array") }
            for item in items {
                guard let type = try Self.string(item["type"], "process.rlimits[].type") else { throw .config("an rlimit without a type") }
                guard ContainerSpec.rlimitResources[type] != nil else { throw .config("unknown rlimit \(type)") }
                rlimits.append(Rlimit(type: type, soft: try Self.number(item["soft"], "rlimit soft") ?? 0,
                                      hard: try Self.number(item["hard"], "rlimit hard") ?? 0))
            }
        }
        var consoleSize: (UInt16, UInt16)?
        if let size = processValue["consoleSize"] {
            let width = try Self.number(size["width"], "process.consoleSize.width") ?? 0
            let height = try Self.number(size["height"], "process.consoleSize.height") ?? 0
            consoleSize = (UInt16(clamping: width), UInt16(clamping: height))
        }
        process = Process(
            args: args, env: try Self.strings(processValue["env"], "process.env"), cwd: cwd,
            uid: UInt32(clamping: try Self.number(user?["uid"], "process.user.uid") ?? 0),
            gid: UInt32(clamping: try Self.number(user?["gid"], "process.user.gid") ?? 0),
            additionalGids: try Self.numbers(user?["additionalGids"], "process.user.additionalGids").map { UInt32(clamping: $0) },
            umask: try Self.number(user?["umask"], "process.user.umask").map { UInt32(clamping: $0) },
            terminal: try Self.bool(processValue["terminal"], "process.terminal"),
            rlimits: rlimits, consoleSize: consoleSize)

        guard let rootValue = json["root"], let path = try Self.string(rootValue["path"], "root.path"), !path.isEmpty else {
            throw .config("no root.path")
        }
        root = Root(path: path.hasPrefix("/") ? path : bundle + "/" + path, readonly: try Self.bool(rootValue["readonly"], "root.readonly"))
        hostname = try Self.string(json["hostname"], "hostname")

        var mounts: [Mount] = []
        if let list = json["mounts"] {
            guard case .array(let items) = list else { throw .config("mounts is not an array") }
            for item in items {
                guard let destination = try Self.string(item["destination"], "mounts[].destination"), destination.hasPrefix("/") else {
                    throw .config("a mount without an absolute destination")
                }
                let options = try Self.strings(item["options"], "mounts[].options")
                let type = try Self.string(item["type"], "mounts[].type") ?? (options.contains { $0 == "bind" || $0 == "rbind" } ? "bind" : "")
                var mount = Mount(destination: destination, type: type, source: try Self.string(item["source"], "mounts[].source") ?? "",
                                  options: options)
                if mount.isBind && !mount.source.isEmpty && !mount.source.hasPrefix("/") {
                    mount.source = bundle + "/" + mount.source
                }
                mounts.append(mount)
            }
        }
        self.mounts = mounts

        var annotations: [(key: String, value: String)] = []
        if let list = json["annotations"] {
            guard case .object(let members) = list else { throw .config("annotations is not an object") }
            for member in members {
                guard case .string(let value) = member.value else { throw .config("the annotation \(member.key) is not a string") }
                annotations.append((member.key, value))
            }
        }
        self.annotations = annotations

        var hasNetwork = true
        if case .array(let namespaces)? = json["linux"]?["namespaces"] {
            for namespace in namespaces where namespace["type"] == .string("network") {
                if case .string(let path)? = namespace["path"], !path.isEmpty { continue }
                hasNetwork = false
            }
        }
        self.hasNetwork = hasNetwork
        uidMappings = try Self.idMappings(json["linux"]?["uidMappings"], "linux.uidMappings")
        gidMappings = try Self.idMappings(json["linux"]?["gidMappings"], "linux.gidMappings")
    }

    /// A mapping list as the kernel would take it: at most `maximumMappingRanges` ranges,
    /// each of at least one id and inside 32 bits on both sides, and no two ranges
    /// overlapping on either side (an id would have two meanings).
    static func idMappings(_ value: JSONValue?, _ name: String) throws(OCIError) -> [IDMapping] {
        guard let value, value != .null else { return [] }
        guard case .array(let items) = value else { throw .config("\(name) is not an array") }
        guard items.count <= maximumMappingRanges else {
            throw .config("\(name) has \(items.count) ranges; at most \(maximumMappingRanges) are allowed")
        }
        var mappings: [IDMapping] = []
        for (index, item) in items.enumerated() {
            let entry = "\(name)[\(index)]"
            guard case .object = item else { throw .config("\(entry) is not an object") }
            let container = try number(item["containerID"], entry + ".containerID")
            let host = try number(item["hostID"], entry + ".hostID")
            let size = try number(item["size"], entry + ".size")
            guard let container, let host, let size else { throw .config("\(entry) needs containerID, hostID and size") }
            // In this order, so that no sum can overflow; the last id of a range must be below 2^32 - 1, as the kernel has it.
            guard size >= 1 else { throw .config("\(entry).size is 0; a range maps at least one id") }
            guard size <= UInt64(UInt32.max), container <= UInt64(UInt32.max), host <= UInt64(UInt32.max),
                  container + size <= UInt64(UInt32.max), host + size <= UInt64(UInt32.max) else {
                throw .config("\(entry): a range of \(size) from \(container) (host \(host)) runs past \(UInt32.max - 1), the highest id")
            }
            let mapping = IDMapping(containerID: UInt32(truncatingIfNeeded: container), hostID: UInt32(truncatingIfNeeded: host),
                                    size: UInt32(truncatingIfNeeded: size))
            if let other = mappings.firstIndex(where: { Self.overlap($0, mapping) }) {
                throw .config("\(entry) overlaps \(name)[\(other)]")
            }
            mappings.append(mapping)
        }
        return mappings
    }

    private static func overlap(_ a: IDMapping, _ b: IDMapping) -> Bool {
        func overlap(_ x: UInt32, _ y: UInt32) -> Bool {
            UInt64(x) < UInt64(y) + UInt64(b.size) && UInt64(y) < UInt64(x) + UInt64(a.size)
        }
        return overlap(a.containerID, b.containerID) || overlap(a.hostID, b.hostID)
    }

    /// Linux's resource numbers on x86_64, by their names in the spec.
    public static let rlimitResources: [String: Int] = [
        "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
        "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
        "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
    ]

    private static func string(_ value: JSONValue?, _ name: String) throws(OCIError) -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let text)?: return text
        default: throw .config("\(name) is not a string")
        }
    }

    private static func strings(_ value: JSONValue?, _ name: String) throws(OCIError) -> [String] {
        switch value {
        case nil, .null?: return []
        case .array(let items)?:
            var result: [String] = []
            for item in items {
                guard case .string(let text) = item else { throw .config("\(name) holds something other than strings") }
                result.append(text)
            }
            return result
        default: throw .config("\(name) is not an array")
        }
    }

    private static func number(_ value: JSONValue?, _ name: String) throws(OCIError) -> UInt64? {
        switch value {
        case nil, .null?: return nil
        case .number(let number)? where number >= 0 && number == number.rounded():
            return number >= 0x1p64 ? UInt64.max : UInt64(number)
        default: throw .config("\(name) is not a whole number of at least 0")
        }
    }

    private static func numbers(_ value: JSONValue?, _ name: String) throws(OCIError) -> [UInt64] {
        guard let value, value != .null else { return [] }
        guard case .array(let items) = value else { throw .config("\(name) is not an array") }
        var result: [UInt64] = []
        for item in items { result.append(try number(item, name) ?? 0) }
        return result
    }

    private static func bool(_ value: JSONValue?, _ name: String) throws(OCIError) -> Bool {
        switch value {
        case nil, .null?: return false
        case .bool(let flag)?: return flag
        default: throw .config("\(name) is not true or false")
        }
    }
}
