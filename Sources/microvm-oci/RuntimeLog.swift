import Glibc
import OCI
import VMM

/// Where a command's error goes: standard error, and the `--log` file when the caller
/// gave one, as a logrus-style JSON line with `--log-format json` (what conmon and
/// Podman read back when a command fails).
struct RuntimeLog {
    var path: String?
    var json = false

    func error(_ message: String) {
        let line = "microvm-oci: \(message)\n"
        _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
        append(message, level: "error")
    }

    /// A line for the `--log` file only: the VM process's standard error is the container's.
    func info(_ message: String) {
        append(message, level: "info")
    }

    private func append(_ message: String, level: String) {
        guard let path else { return }
        // Not blocking: a FIFO nobody reads would hold the error, and the command, forever.
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let entry = json
            ? JSONValue.object([("level", .string(level)), ("msg", .string(message)), ("time", .string(Timestamp.now()))]).encoded + "\n"
            : "time=\"\(Timestamp.now())\" level=\(level) msg=\(JSONObject.quote(message))\n"
        _ = entry.withCString { write(fd, $0, strlen($0)) }
    }
}

enum Timestamp {
    /// RFC 3339 in UTC with nanoseconds, as runc writes times.
    static func now() -> String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        var parts = tm()
        var seconds = time.tv_sec
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let fraction = String(time.tv_nsec)
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            + "." + String(repeating: "0", count: 9 - fraction.count) + fraction + "Z"
    }
}
