import Glibc

/// What one run binds on the host to a `MachineSpec`: where the console goes, the files
/// and directories behind the disks and shares, the network backend, the sockets, and how
/// the VM's threads are confined. A fresh boot and a restore take the same session.
public struct Session: Sendable {
    /// Serve the console on this Unix socket instead of standard input and output.
    public var consoleSocket: String?
    /// Where the guest's console output goes when there is no console socket.
    public var consoleOutput: Int32 = STDOUT_FILENO
    /// Where the guest's console output is copied, from the time the VM runs.
    public var consoleLog: String?
    /// The most bytes `consoleLog` holds, within `VMConfiguration.consoleLogLimits`.
    public var consoleLogLimit: UInt64 = VMConfiguration.defaultConsoleLogLimit
    /// Whether to take console input from standard input (ignored with a console socket).
    public var consoleInput = true
    /// The files behind the machine's disks, in their order.
    public var disks: [VMConfiguration.Disk] = []
    /// The directories behind the machine's shares, by tag.
    public var shares: [VMConfiguration.Share] = []
    /// The network device's backend.
    public var network: VMConfiguration.Network?
    /// The Unix socket path of the vsock device's host side.
    public var vsock: String?
    /// Restrict each vCPU thread and the thread that calls `run()` to the system calls they need.
    public var seccomp = false
    /// Answer control requests on this Unix socket.
    public var controlSocket: String?
    /// Sample the vCPUs' instruction pointers for the whole run.
    public var profiling: VMConfiguration.Profiling?

    public init(consoleSocket: String? = nil, consoleOutput: Int32 = STDOUT_FILENO, consoleLog: String? = nil,
                consoleLogLimit: UInt64 = VMConfiguration.defaultConsoleLogLimit, consoleInput: Bool = true,
                disks: [VMConfiguration.Disk] = [], shares: [VMConfiguration.Share] = [], network: VMConfiguration.Network? = nil,
                vsock: String? = nil, seccomp: Bool = false, controlSocket: String? = nil, profiling: VMConfiguration.Profiling? = nil) {
        self.consoleSocket = consoleSocket
        self.consoleOutput = consoleOutput
        self.consoleLog = consoleLog
        self.consoleLogLimit = consoleLogLimit
        self.consoleInput = consoleInput
        self.disks = disks
        self.shares = shares
        self.network = network
        self.vsock = vsock
        self.seccomp = seccomp
        self.controlSocket = controlSocket
        self.profiling = profiling
    }
}
