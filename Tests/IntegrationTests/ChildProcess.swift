import Foundation

/// A child process started with posix_spawn and reaped with wait4, with its own peak RSS,
/// whatever else the test process runs beside it. The peak is the child's VmHWM, sampled
/// until it exits: wait4's ru_maxrss cannot go below the RSS of the test process itself,
/// whose memory the child shares until it execs.
struct ChildProcess {
    struct Ending {
        /// The exit status, or 128 + N after signal N.
        let status: Int32
        let peakResidentKiB: Int
        let seconds: Double
    }

    let pid: pid_t
    let started = Date()

    /// Starts `executable` with `arguments`; stdin is /dev/null, stdout and stderr go to the given descriptors.
    init(_ executable: String, _ arguments: [String], stdout: Int32, stderr: Int32) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard result == 0 else { throw POSIXError(POSIXErrorCode(rawValue: result) ?? .EINVAL) }
        self.pid = pid
    }

    /// Waits up to `timeout` seconds; nil (and the child killed) if it did not end by then.
    func wait(timeout: Double) -> Ending? {
        var status: Int32 = 0
        var usage = rusage()
        var peak = 0
        let deadline = started.addingTimeInterval(timeout)
        while true {
            peak = max(peak, highWaterMark())
            let reaped = wait4(pid, &status, WNOHANG, &usage)
            if reaped == pid { break }
            if Date() > deadline {
                kill(pid, SIGKILL)
                _ = wait4(pid, &status, 0, &usage)
                return nil
            }
            usleep(1_000)
        }
        let exited = status & 0x7f == 0
        return Ending(status: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f),
                      peakResidentKiB: peak, seconds: Date().timeIntervalSince(started))
    }

    /// VmHWM of the running child, in KiB (0 once it has exited).
    private func highWaterMark() -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}
