import Glibc

/// passt, started for one VM: it gets one end of a socket pair (`--fd`) and serves the
/// guest's network on it without privileges, quitting when microvm closes its end.
final class PasstProcess {
    enum Error: Swift.Error, CustomStringConvertible {
        case notInstalled
        case cannotStart(String)
        case cannotConnect(path: String, reason: String)

        var description: String {
            switch self {
            case .notInstalled: "--net passt needs passt, which is not installed (on Debian: apt-get install passt)"
            case .cannotStart(let reason): "cannot start passt: \(reason)"
            case .cannotConnect(_, let reason): "passt's socket: \(reason)"
            }
        }
    }

    let pid: pid_t
    /// microvm's end of the socket pair, for the network backend to own.
    let socket: Int32

    init() throws(PasstProcess.Error) {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw .cannotStart("socketpair: \(String(cString: strerror(errno)))")
        }
        defer { close(pair[1]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears close-on-exec on the copy passt keeps. passt's own lines (it cannot
        // reach syslog, it drops root) are not microvm's: a passt that fails shows as a
        // closed backend.
        posix_spawn_file_actions_adddup2(&actions, pair[1], 3)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let arguments = ["passt", "--foreground", "--quiet", "--one-off", "--fd", "3"]
        var argv = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        // passt starts with no signal blocked and every handler at its default, whatever
        // microvm inherited: a passt spawned with SIGTERM blocked would outlive the VM.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, "passt", &actions, &attributes, &argv, environ)
        guard result == 0 else {
            close(pair[0])
            if result == ENOENT { throw .notInstalled }
            throw .cannotStart(String(cString: strerror(result)))
        }
        self.pid = pid
        socket = pair[0]
    }

    /// Ends passt if it has not quit on its own, and reaps it. passt started by root runs
    /// as nobody, out of reach of a jailed VM's signals: the end of its connection is what
    /// makes it quit (--one-off).
    func stop() {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == 0 {
            shutdown(socket, Int32(SHUT_RDWR))
            kill(pid, SIGTERM)
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }

    /// A connection to a passt the user started (`passt --socket PATH`).
    static func connect(to path: String) throws(PasstProcess.Error) -> Int32 {
        do {
            return try UnixSocket.connect(to: path)
        } catch {
            throw .cannotConnect(path: path, reason: error.description)
        }
    }
}
