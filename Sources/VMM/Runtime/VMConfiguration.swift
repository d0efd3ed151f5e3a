/// Everything needed to build a VM, as the command line or a library user gives it.
public struct VMConfiguration: Sendable {
    /// Path of a bzImage or ELF vmlinux.
    public var kernel: String
    public var initrd: String?
    public var commandLine: KernelCommandLine
    /// Guest RAM in bytes.
    public var memorySize: UInt64
    public var vcpuCount: Int
    /// Where the guest's console output is copied besides the terminal.
    public var consoleLog: String?
    /// Whether to take console input from standard input.
    public var consoleInput: Bool

    public static let defaultMemorySize: UInt64 = 256 << 20
    public static let minimumMemorySize: UInt64 = 2 << 20
    /// The command line used when none is given: serial console, reboot through the
    /// i8042 (which ends microvm), and reboot at once on panic. The host profile's
    /// parameters are added to this or any other command line when the VM is built.
    public static let defaultCommandLine = "console=ttyS0 reboot=k panic=-1"

    public init(kernel: String, initrd: String? = nil, commandLine: KernelCommandLine = KernelCommandLine(defaultCommandLine),
                memorySize: UInt64 = defaultMemorySize, vcpuCount: Int = 1, consoleLog: String? = nil, consoleInput: Bool = true) {
        self.kernel = kernel
        self.initrd = initrd
        self.commandLine = commandLine
        self.memorySize = memorySize
        self.vcpuCount = vcpuCount
        self.consoleLog = consoleLog
        self.consoleInput = consoleInput
    }
}
