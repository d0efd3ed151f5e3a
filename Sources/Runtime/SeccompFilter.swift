import CLinux
import CSeccomp
import Glibc
import KVM

/// Per-thread system call allow-lists, built with libseccomp. A call outside the list
/// raises SIGSYS, whose handler names the call number and ends the process.
public enum SeccompFilter {
    public enum ThreadKind: String, Sendable {
        case vcpu = "vCPU"
        case eventLoop = "event loop"
    }

    /// What each kind of thread does once the VM is built (measured with strace over the
    /// integration scenarios), plus the allocator's and the runtime's needs. `ioctl` and
    /// `mprotect` are not here: they are allowed only with the arguments below, and
    /// `openat` fails with EACCES where it is not listed. The event loop puts the kick
    /// signal's previous handler back when the run ends (rt_sigaction).
    static func allowList(_ kind: ThreadKind, sharing: Bool = false, control: Bool = false, networking: Bool = false,
                          vsock: Bool = false, consoleLog: Bool = false) -> [String] {
        // glibc's allocator: heaps grow and shrink (brk, mmap, munmap, madvise; realloc
        // moves large blocks with mremap), and the first time a thread's arena shrinks
        // glibc reads /proc/sys/vm/overcommit_memory (malloc/arena.c, shrink_heap): an
        // openat, a read and a close. A thread ending gives back its stack (madvise,
        // munmap), blocks signals and calls exit; its joiner waits on a futex.
        let allocator = ["mmap", "munmap", "madvise", "mremap", "brk", "read", "close"]
        let threads = ["futex", "rt_sigprocmask", "rt_sigreturn", "exit", "exit_group", "rseq"]
        let common = allocator + threads + ["write", "sendto", "tgkill", "getpid", "gettid", "sched_yield", "clock_gettime", "getrandom"]
        switch kind {
        case .vcpu:
            // Disk and 9p requests are served on the notifying vCPU's thread; glibc's
            // fchmodat(AT_SYMLINK_NOFOLLOW) goes through an O_PATH fd and /proc.
            let disks = ["preadv", "pwritev", "fdatasync"]
            let shares = ["openat2", "openat", "close", "fstat", "newfstatat", "statx", "fstatfs", "getdents64", "lseek",
                          "fsync", "ftruncate", "mkdirat", "unlinkat", "renameat", "renameat2", "symlinkat", "readlinkat",
                          "linkat", "mknodat", "fchownat", "fchmodat", "fchmodat2", "chmod", "utimensat", "fcntl"]
            // The notifying vCPU ends vsock connections and shuts their host sockets' write side.
            let vsockCalls = ["close", "shutdown"]
            // A profiled vCPU deletes its sampling timer as its loop ends. A console log is
            // written (pwritev), and cut when full, from the vCPU that prints.
            return common + disks + ["timer_delete"] + (sharing ? shares : []) + (vsock ? vsockCalls : [])
                + (consoleLog ? ["ftruncate"] : [])
        case .eventLoop:
            // A control socket's snapshot writes the state and memory files.
            let snapshots = ["openat", "fstat", "newfstatat", "statx", "ftruncate", "pwrite64", "fsync", "renameat",
                             "renameat2", "rename", "getcwd", "lseek"]
            // The loop receives and sends frames (passt's socket or a tap), and ends and
            // reaps the passt it started.
            let network = ["sendmsg", "writev", "shutdown", "kill", "wait4"]
            // The loop connects the guest's vsock connections to their host sockets.
            let vsockCalls = ["recvmsg", "shutdown", "socket", "connect"]
            return common + ["poll", "ppoll", "read", "recvfrom", "accept", "accept4", "fcntl", "close", "unlink", "rt_sigaction"]
                + (control ? snapshots : []) + (networking ? network : []) + (vsock ? vsockCalls : [])
        }
    }

    /// ioctl requests each kind of thread may issue. Both may set terminal attributes:
    /// that is how the terminal is put back, at the end of a run or from the SIGSYS handler.
    static func ioctlRequests(_ kind: ThreadKind, control: Bool = false, networking: Bool = false) -> [UInt] {
        let terminal = [CLINUX_TCGETS, CLINUX_TCSETS]
        switch kind {
        case .vcpu: return KVMRequest.vcpuThread + terminal + (networking ? [CLINUX_TUNSETOFFLOAD] : [])
        case .eventLoop: return KVMRequest.eventLoop + terminal + [CLINUX_TIOCGWINSZ] + (control ? KVMRequest.snapshot : [])
        }
    }

    public struct Error: Swift.Error, CustomStringConvertible {
        let call: String
        let result: Int32
        public var description: String { "seccomp: \(call) failed: \(String(cString: strerror(-result)))" }
    }

    /// Restricts the calling thread (only it) to `kind`'s allow-list.
    /// `sharing`: the VM serves shared directories, whose requests a vCPU thread serves.
    /// `control`: the event loop answers a control socket, which may write snapshots.
    /// `networking`: the VM has a network device. `vsock`: it has a vsock device.
    /// `consoleLog`: the VM's console output is copied to a log file.
    /// x86_64 numbers of calls that an older libseccomp does not know by name (fchmodat2
    /// came with Linux 6.6 and libseccomp 2.5.5): the shim makes them by number whatever
    /// the library knows, so a filter without them would kill the thread that does.
    static let newerCalls: [String: Int32] = ["fchmodat2": 452]

    /// What a machine's devices ask of the threads that serve them (`MachineBuilder`).
    public struct Needs: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// 9p shares: a vCPU thread opens, reads and writes files for the guest.
        public static let sharing = Needs(rawValue: 1 << 0)
        /// A network backend: tap offload ioctls, socket sends.
        public static let networking = Needs(rawValue: 1 << 1)
        /// vsock: host sockets connected for the guest.
        public static let vsock = Needs(rawValue: 1 << 2)
    }

    public static func install(for kind: ThreadKind, sharing: Bool = false, control: Bool = false,
                               networking: Bool = false, vsock: Bool = false, consoleLog: Bool = false) throws(SeccompFilter.Error) {
        installReporter()
        guard let context = seccomp_init(SCMP_ACT_TRAP) else { throw Error(call: "seccomp_init", result: -ENOMEM) }
        defer { seccomp_release(context) }
        let allowed = Set(allowList(kind, sharing: sharing, control: control, networking: networking, vsock: vsock, consoleLog: consoleLog))
        for name in allowed {
            let resolved = seccomp_syscall_resolve_name(name)
            guard let number = resolved >= 0 ? resolved : newerCalls[name] else { continue }
            let result = seccomp_rule_add_array(context, SCMP_ACT_ALLOW, number, 0, nil)
            guard result == 0 else { throw Error(call: "seccomp_rule_add for \(name)", result: result) }
        }
        // A thread that opens no files of its own (no shares, no snapshots) is refused
        // every open rather than killed by one: the only opens it makes are the runtime's
        // (the allocator's above), which cope with a failure (glibc then shrinks heaps
        // with madvise), while a kill there would lose the guest's exit status.
        if !allowed.contains("openat") {
            let result = seccomp_rule_add_array(context, 0x0005_0000 | UInt32(EACCES), seccomp_syscall_resolve_name("openat"), 0, nil)
            guard result == 0 else { throw Error(call: "seccomp_rule_add for openat", result: result) }
        }
        for request in ioctlRequests(kind, control: control, networking: networking) {
            // The request is an unsigned long; compare the low 32 bits, where every request number lies.
            var argument = scmp_arg_cmp(arg: 1, op: SCMP_CMP_MASKED_EQ, datum_a: 0xffff_ffff, datum_b: UInt64(request))
            let result = seccomp_rule_add_array(context, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("ioctl"), 1, &argument)
            guard result == 0 else { throw Error(call: "seccomp_rule_add for ioctl 0x\(String(request, radix: 16))", result: result) }
        }
        // Memory may change protection, but never become executable: no new code at run time.
        var notExecutable = scmp_arg_cmp(arg: 2, op: SCMP_CMP_MASKED_EQ, datum_a: UInt64(PROT_EXEC), datum_b: 0)
        let mprotect = seccomp_rule_add_array(context, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name("mprotect"), 1, &notExecutable)
        guard mprotect == 0 else { throw Error(call: "seccomp_rule_add for mprotect", result: mprotect) }
        let result = seccomp_load(context)
        guard result == 0 else { throw Error(call: "seccomp_load", result: result) }
    }

    /// The SIGSYS line's digits, allocated before any filter is installed.
    private nonisolated(unsafe) static let digits = UnsafeMutablePointer<UInt8>.allocate(capacity: 20)

    /// SIGSYS handler: one line with the call number, then exit 128 + SIGSYS. Only
    /// write and exit_group, both on every list. Nothing that allocates (no arrays, no
    /// generic calls whose metadata the runtime would make): the blocked call may come
    /// from inside malloc, which holds its arena's lock, and an allocation here would
    /// then wait for ever.
    private static func installReporter() {
        _ = digits
        var action = sigaction()
        action.sa_flags = SA_SIGINFO
        sigemptyset(&action.sa_mask)
        action.__sigaction_handler.sa_sigaction = { _, info, _ in
            let prefix: StaticString = "microvm: seccomp: blocked system call "
            let suffix: StaticString = ", which is not on this thread's allow-list (run with --no-seccomp to compare)\n"
            var number = 0
            if let info { number = Int(info.pointee._sifields._sigsys._syscall) }
            var start = 20
            repeat {
                start -= 1
                SeccompFilter.digits[start] = UInt8(truncatingIfNeeded: 48 + number % 10)
                number /= 10
            } while number > 0 && start > 0
            _ = write(STDERR_FILENO, prefix.utf8Start, prefix.utf8CodeUnitCount)
            _ = write(STDERR_FILENO, SeccompFilter.digits + start, 20 - start)
            _ = write(STDERR_FILENO, suffix.utf8Start, suffix.utf8CodeUnitCount)
            Terminal.restoreAfterCrash()
            _exit(128 + SIGSYS)
        }
        sigaction(SIGSYS, &action, nil)
    }
}
