import Runtime

/// What microvm-oci keeps of a container between commands, in `state.json` in the
/// container's directory: the VM process and whether `start` let it run.
public struct ContainerRecord: Equatable, Sendable {
    public var id: String
    public var pid: Int32
    /// The process's start time in clock ticks after boot (/proc/PID/stat), so that a
    /// recycled PID is never taken for the VM.
    public var startTime: UInt64
    public var bundle: String
    public var rootfs: String
    /// RFC 3339, UTC.
    public var created: String
    public var started: Bool
    /// `pause` paused the VM and no `resume` has run it again.
    public var paused: Bool
    public var annotations: [(key: String, value: String)]

    public static let ociVersion = "1.0.2"

    public init(id: String, pid: Int32, startTime: UInt64, bundle: String, rootfs: String, created: String,
                started: Bool = false, paused: Bool = false, annotations: [(key: String, value: String)] = []) {
        self.id = id
        self.pid = pid
        self.startTime = startTime
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created
        self.started = started
        self.paused = paused
        self.annotations = annotations
    }

    public static func == (lhs: ContainerRecord, rhs: ContainerRecord) -> Bool {
        lhs.json == rhs.json
    }

    public enum Status: String, Sendable {
        case created, running, paused, stopped
    }

    /// The container's status: stopped once the VM process is gone (or a zombie).
    public func status(alive: (Int32, UInt64) -> Bool = ProcessInfo.isAlive) -> Status {
        guard pid > 0, alive(pid, startTime) else { return .stopped }
        return started ? (paused ? .paused : .running) : .created
    }

    public var json: JSONValue {
        .object([
            ("id", .string(id)), ("pid", .number(Double(pid))), ("start_time", .number(Double(startTime))),
            ("bundle", .string(bundle)), ("rootfs", .string(rootfs)), ("created", .string(created)), ("started", .bool(started)), ("paused", .bool(paused)),
            ("annotations", .object(annotations.map { ($0.key, .string($0.value)) })),
        ])
    }

    /// Reads state.json's document; the error says what is wrong, for `ContainerDirectory.read` to name the container.
    public init(_ json: JSONValue) throws(OCIError) {
        guard case .string(let id)? = json["id"], case .number(let pidNumber)? = json["pid"], case .number(let startNumber)? = json["start_time"],
              case .string(let bundle)? = json["bundle"], case .string(let rootfs)? = json["rootfs"],
              case .string(let created)? = json["created"], case .bool(let started)? = json["started"],
              case .object(let members)? = json["annotations"] else {
            throw .failed("a member is missing or of the wrong type")
        }
        // Anything could have written the file: a number that is no PID or start time is refused, never converted.
        guard let pid = Int32(exactly: pidNumber), pid > 0 else { throw .failed("pid \(JSONValue.number(pidNumber).encoded) is not a process ID") }
        guard let startTime = UInt64(exactly: startNumber) else {
            throw .failed("start_time \(JSONValue.number(startNumber).encoded) is not a whole number of clock ticks")
        }
        var annotations: [(key: String, value: String)] = []
        for member in members {
            guard case .string(let value) = member.value else { throw .failed("the annotation \(member.key.prefix(64)) is not a string") }
            annotations.append((member.key, value))
        }
        // Absent in the records of earlier versions, which never paused.
        var paused = false
        if let member = json["paused"] {
            guard case .bool(let value) = member else { throw .failed("paused is not true or false") }
            paused = value
        }
        self.init(id: id, pid: pid, startTime: startTime, bundle: bundle, rootfs: rootfs,
                  created: created, started: started, paused: paused, annotations: annotations)
    }

    /// The OCI state (runtime spec, "State"), as `state` prints it; `pid` only while
    /// the VM process lives. runc's `rootfs` and `created` come along.
    public func ociState(_ status: Status) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("ociVersion", .string(Self.ociVersion)), ("id", .string(id)), ("status", .string(status.rawValue))]
        if status != .stopped { members.append(("pid", .number(Double(pid)))) }
        members += [("bundle", .string(bundle)), ("rootfs", .string(rootfs)), ("created", .string(created))]
        if !annotations.isEmpty { members.append(("annotations", .object(annotations.map { ($0.key, .string($0.value)) }))) }
        return .object(members)
    }
}
