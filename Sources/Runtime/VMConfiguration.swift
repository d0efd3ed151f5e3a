import Boot
import Devices
import Glibc

/// Everything needed to boot a VM, as the command line or a library user gives it: the
/// guest's machine and the run's session in one list, which `machine` and `session` split.
public struct VMConfiguration: Sendable {
    /// Path of a bzImage or ELF vmlinux.
    public var kernel: String
    public var initrd: String?
    /// More cpio archives, loaded after the initrd; the kernel unpacks them all into its
    /// root, later files replacing earlier ones (how microvm-oci hands a container's
    /// configuration to the guest).
    public var appendedInitrds: [String] = []
    public var commandLine: KernelCommandLine
    /// Guest RAM in bytes.
    public var memorySize: UInt64
    public var vcpuCount: Int
    /// Which device carries the guest's console.
    public var console: ConsoleDevice
    /// Serve the console on this Unix socket instead of standard input and output.
    public var consoleSocket: String?
    /// Where the guest's console output goes when there is no console socket.
    public var consoleOutput: Int32
    /// Where the guest's console output is copied, from the time the VM is built.
    public var consoleLog: String?
    /// The most bytes `consoleLog` holds, within `consoleLogLimits`: beyond it the oldest
    /// output is dropped, and a line at the log's start says how much (`ConsoleLog`).
    public var consoleLogLimit: UInt64
    /// Whether to take console input from standard input (ignored with a console socket).
    public var consoleInput: Bool
    /// Raw disk images, attached as virtio-blk devices /dev/vda, /dev/vdb, … in this order.
    public var disks: [Disk]
    /// The first disk holds the root filesystem: the initrd's /init mounts it and runs the
    /// command (or the root's /sbin/init) inside it.
    public var rootOnFirstDisk: Bool
    /// Host directories served over virtio-9p, after the disks. The initrd's /init mounts
    /// each at /mnt/TAG; the one tagged `Share.rootTag` is the guest's root instead.
    public var shares: [Share]
    /// What the guest's /init runs, each argument passed through unchanged; nil for the
    /// command line's own (after `--`) or a shell.
    public var command: [String]?
    /// Restrict each vCPU thread and the thread that calls `run()` to the system calls
    /// they need, from the start of the run on. The calling thread keeps its filter after
    /// `run()` returns, so a process that goes on to do other work leaves this off.
    public var seccomp: Bool
    /// Answer control requests (pause, resume, snapshot, stop, status) on this Unix socket.
    public var controlSocket: String?
    /// Describe the machine in ACPI tables (CPUs, interrupt controllers, COM1, the virtio
    /// devices, power-off and reset registers). Without them the kernel finds its CPUs in
    /// the MP table and the virtio devices on its command line (`virtio_mmio.device=`),
    /// which a kernel built without ACPI needs.
    public var acpi: Bool
    /// A virtio-net device and where its frames go; nil for none.
    public var network: Network?
    /// The network device's MAC address; nil for one derived from the VM's configuration
    /// (the same on every run of the same VM, different for another tap or disk).
    public var mac: [UInt8]?
    /// A virtio-rng device with this rate limit; nil for none.
    public var entropy: VirtioEntropy.RateLimit?
    /// A virtio-vsock device (guest CID 3) whose host side listens at this Unix socket
    /// path; a guest connecting to the host's port P reaches the socket `PATH_P`.
    public var vsock: String?
    /// Sample the vCPUs' instruction pointers for the whole run (`MicroVM.guestProfile`).
    public var profiling: Profiling?
    /// Give the guest's command microvm's own standard streams, for a container runtime:
    /// standard input and output on a virtio-console (hvc0), standard error on a second
    /// one (hvc1) whose input carries control lines to the guest's `oci-init`: the
    /// forwarded signals (`EventLoop.forwardedSignals`, as `signal N`) and the end of
    /// standard input (`eof`). The kernel's console then goes only to `consoleLog`.
    /// Needs the serial console, so that the two consoles are hvc0 and hvc1.
    public var commandStreams = false

    public struct Profiling: Sendable {
        /// Samples per second and vCPU, within `GuestProfiler.rates`.
        public var rate: Int
        /// Names the sampled addresses: the booted vmlinux's, or a bzImage's System.map.
        public var symbols: SymbolTable
        /// The file `symbols` came from, which no output of the run may replace.
        public var symbolsFile: String?

        public init(rate: Int = GuestProfiler.defaultRate, symbols: SymbolTable, symbolsFile: String? = nil) {
            self.rate = rate
            self.symbols = symbols
            self.symbolsFile = symbolsFile
        }
    }

    public enum Network: Equatable, Sendable {
        /// passt, started by microvm (socket nil) or listening at `socket`.
        case passt(socket: String?)
        /// An existing tap device.
        case tap(name: String)
    }

    public struct Disk: Equatable, Sendable {
        public var path: String
        public var readOnly: Bool

        public init(path: String, readOnly: Bool = false) {
            self.path = path
            self.readOnly = readOnly
        }
    }

    public struct Share: Equatable, Sendable {
        public var path: String
        /// The name the guest mounts; letters, digits, `-`, `_` and `.`.
        public var tag: String
        public var readOnly: Bool
        /// Keep the setuid and setgid bits the guest gives files (`--share DIR,suid`);
        /// otherwise they are taken off whatever the guest creates or changes.
        public var keepsSetID: Bool
        /// Only these names in the directory's top level are visible to the guest (how a
        /// bind mount of single files shares those files and not their directory); nil
        /// for the whole directory.
        public var visibleEntries: Set<String>?
        /// Guest ids to host ids for the owners of files on the share (microvm-oci's
        /// `linux.uidMappings`/`gidMappings`); empty for the guest's ids as they are.
        public var userIDs: [IDMapping]
        public var groupIDs: [IDMapping]

        /// The tag of a share that is the guest's root file system.
        public static let rootTag = "microvm-root"

        public init(path: String, tag: String, readOnly: Bool = false, keepsSetID: Bool = false,
                    visibleEntries: Set<String>? = nil, userIDs: [IDMapping] = [], groupIDs: [IDMapping] = []) {
            self.path = path
            self.tag = tag
            self.readOnly = readOnly
            self.keepsSetID = keepsSetID
            self.visibleEntries = visibleEntries
            self.userIDs = userIDs
            self.groupIDs = groupIDs
        }
    }

    public enum ConsoleDevice: String, Sendable, CaseIterable {
        /// The 16550 UART on COM1 (`console=ttyS0`).
        case serial
        /// virtio-console over virtio-mmio (`console=hvc0`); the UART stays for early messages.
        case virtio
    }

    /// How many virtio devices a VM can have: disks, shares, consoles, the network, vsock and virtio-rng together.
    public static var virtioSlotCount: Int { VirtioSlots.capacity }

    public static let defaultConsoleLogLimit: UInt64 = 16 << 20
    /// Room for the line that counts dropped output and some output, up to 1 TiB.
    public static let consoleLogLimits: ClosedRange<UInt64> = 4096...(1 << 40)

    public static let defaultMemorySize: UInt64 = 256 << 20
    public static let minimumMemorySize: UInt64 = 2 << 20
    /// The command line used when none is given: the console, and reboot at once on panic.
    /// A reboot ends microvm through the ACPI reset register, or through the i8042 where
    /// the kernel has no ACPI (Linux tries both). With virtio, early messages go to the
    /// UART until hvc0 takes over. The host profile's parameters are added to this or
    /// any other command line when the VM is built.
    public static func defaultCommandLine(console: ConsoleDevice = .serial) -> String {
        switch console {
        case .serial: return "console=ttyS0 panic=-1"
        case .virtio: return "earlycon=uart8250,io,0x3f8 console=hvc0 panic=-1"
        }
    }

    public init(kernel: String, initrd: String? = nil, commandLine: KernelCommandLine? = nil,
                memorySize: UInt64 = defaultMemorySize, vcpuCount: Int = 1, console: ConsoleDevice = .serial,
                consoleSocket: String? = nil, consoleOutput: Int32 = STDOUT_FILENO, consoleLog: String? = nil,
                consoleLogLimit: UInt64 = defaultConsoleLogLimit,
                consoleInput: Bool = true, disks: [Disk] = [], rootOnFirstDisk: Bool = false, shares: [Share] = [], command: [String]? = nil,
                seccomp: Bool = false, controlSocket: String? = nil, acpi: Bool = true, network: Network? = nil,
                mac: [UInt8]? = nil, entropy: VirtioEntropy.RateLimit? = .standard, vsock: String? = nil,
                profiling: Profiling? = nil) {
        self.kernel = kernel
        self.initrd = initrd
        self.commandLine = commandLine ?? KernelCommandLine(Self.defaultCommandLine(console: console))
        self.memorySize = memorySize
        self.vcpuCount = vcpuCount
        self.console = console
        self.consoleSocket = consoleSocket
        self.consoleOutput = consoleOutput
        self.consoleLog = consoleLog
        self.consoleLogLimit = consoleLogLimit
        self.consoleInput = consoleInput
        self.disks = disks
        self.rootOnFirstDisk = rootOnFirstDisk
        self.shares = shares
        self.command = command
        self.seccomp = seccomp
        self.controlSocket = controlSocket
        self.acpi = acpi
        self.network = network
        self.mac = mac
        self.entropy = entropy
        self.vsock = vsock
        self.profiling = profiling
    }

    /// What the guest sees. The devices in a fixed order: the command's streams or the
    /// console, the disks (vda, vdb, …), the shares, the network, vsock, virtio-rng. What
    /// the initrd's /init does (the root, the shares to mount, the network, the command)
    /// is on the kernel command line.
    public var machine: MachineSpec {
        var devices: [DeviceSpec] = []
        if commandStreams { devices.append(.commandStreams) }
        if console == .virtio { devices.append(.console) }
        devices += disks.map { .disk(readOnly: $0.readOnly) }
        devices += shares.map { .share(tag: $0.tag, readOnly: $0.readOnly) }
        if let network {
            if case .tap = network {
                devices.append(.network(mac: networkMAC, offloads: true))
            } else {
                devices.append(.network(mac: networkMAC, offloads: false))
            }
        }
        if vsock != nil { devices.append(.vsock) }
        if let entropy { devices.append(.entropy(entropy)) }
        var commandLine = commandLine
        if rootOnFirstDisk, let root = disks.first {
            commandLine.insertKernelParameters(["microvm.root=/dev/vda"] + (root.readOnly ? ["microvm.rootro=1"] : []))
        }
        let mounted = shares.filter { $0.tag != Share.rootTag }.map(\.tag)
        if !mounted.isEmpty {
            commandLine.insertKernelParameters(["microvm.shares=" + mounted.joined(separator: ",")])
        }
        if let root = shares.first(where: { $0.tag == Share.rootTag }) {
            commandLine.insertKernelParameters(["microvm.root=9p:\(root.tag)"] + (root.readOnly ? ["microvm.rootro=1"] : []))
        }
        if network != nil {
            commandLine.insertKernelParameters(["microvm.net=dhcp"])
        }
        if let command {
            commandLine.insertKernelParameters([GuestCommand.kernelParameter(command)])
        }
        return MachineSpec(kernel: kernel, initrds: (initrd.map { [$0] } ?? []) + appendedInitrds, commandLine: commandLine,
                           memorySize: memorySize, vcpuCount: vcpuCount, acpi: acpi, console: console, devices: devices)
    }

    /// What this run binds on the host.
    public var session: Session {
        Session(consoleSocket: consoleSocket, consoleOutput: consoleOutput, consoleLog: consoleLog, consoleLogLimit: consoleLogLimit,
                consoleInput: consoleInput, disks: disks, shares: shares, network: network, vsock: vsock, seccomp: seccomp,
                controlSocket: controlSocket, profiling: profiling)
    }

    /// The MAC address the network device gets: `mac`, or a locally administered unicast
    /// address hashed (FNV-1a) from the backend and the disks, so that it stays the same
    /// from run to run and differs between VMs on different taps or root disks.
    public var networkMAC: [UInt8] {
        if let mac { return mac }
        var identity = String(describing: network) + "|" + kernel
        for disk in disks { identity += "|" + disk.path }
        for share in shares { identity += "|" + share.path }
        return Self.derivedMAC(identity)
    }

    /// A locally administered unicast address hashed (FNV-1a) from `identity`.
    static func derivedMAC(_ identity: String) -> [UInt8] {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in identity.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return [0x02] + (0..<5).map { UInt8(truncatingIfNeeded: hash >> ($0 * 8)) }
    }
}
