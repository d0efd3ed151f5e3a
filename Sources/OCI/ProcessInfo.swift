import Glibc

/// What /proc says of a process.
public enum ProcessInfo {
    /// The start time (clock ticks after boot) of a live process, nil for a zombie or none.
    public static func startTime(of pid: Int32) -> UInt64? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        // The command name in parentheses may hold spaces and parentheses: the fields start after the last ')'.
        guard let close = buffer[0..<count].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = buffer[(close + 1)..<count].split(separator: UInt8(ascii: " "))
        // fields[0] is the state (field 3), fields[19] the start time (field 22).
        guard fields.count > 19, let state = fields[0].first, state != UInt8(ascii: "Z"), state != UInt8(ascii: "X") else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }

    public static func isAlive(_ pid: Int32, startTime: UInt64) -> Bool {
        Self.startTime(of: pid) == startTime
    }
}
