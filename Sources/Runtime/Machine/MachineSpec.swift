import Boot
import Devices

/// What the guest sees: its memory, vCPUs, firmware tables, kernel, command line and
/// devices in their slots. A snapshot keeps it (with no host path: the kernel and initrds
/// are in guest memory by then) and a restore builds the same machine again, binding a new
/// `Session` to it. Templates are keyed by it (`TemplateStore.key(for:)`).
public struct MachineSpec: Equatable, Sendable {
    /// Path of a bzImage or ELF vmlinux; empty for a restored machine.
    public var kernel: String
    /// cpio archives, unpacked in this order into the guest's root.
    public var initrds: [String]
    public var commandLine: KernelCommandLine
    /// Guest RAM in bytes.
    public var memorySize: UInt64
    public var vcpuCount: Int
    /// Describe the machine in ACPI tables; without them the kernel finds its CPUs in the
    /// MP table and the virtio devices on its command line.
    public var acpi: Bool
    /// Which device carries the guest's console.
    public var console: VMConfiguration.ConsoleDevice
    /// The virtio devices, in slot order: the Nth takes the Nth virtio-mmio slot (after
    /// the two of `.commandStreams`, which takes two).
    public var devices: [DeviceSpec]

    public init(kernel: String, initrds: [String] = [], commandLine: KernelCommandLine, memorySize: UInt64, vcpuCount: Int,
                acpi: Bool, console: VMConfiguration.ConsoleDevice, devices: [DeviceSpec]) {
        self.kernel = kernel
        self.initrds = initrds
        self.commandLine = commandLine
        self.memorySize = memorySize
        self.vcpuCount = vcpuCount
        self.acpi = acpi
        self.console = console
        self.devices = devices
    }

    /// Virtio-mmio slots the devices take.
    var slotCount: Int { devices.reduce(0) { $0 + $1.slotCount } }

    /// The guest-visible part, as a snapshot stores it and a template's key hashes it.
    func save(into writer: inout StateWriter) {
        writer.put(memorySize)
        writer.put(UInt32(vcpuCount))
        writer.put(console.rawValue)
        writer.put(commandLine.text)
        writer.put(acpi)
        writer.put(UInt32(devices.count))
        for device in devices { device.save(into: &writer) }
    }

    /// A saved machine; its kernel is in the snapshot's memory.
    init(from reader: inout StateReader) throws(StateError) {
        memorySize = try reader.get(UInt64.self, "memory size")
        vcpuCount = Int(try reader.get(UInt32.self, "vCPU count"))
        guard (1...254).contains(vcpuCount) else { throw StateError.invalid(what: "vCPU count") }
        guard let console = VMConfiguration.ConsoleDevice(rawValue: try reader.string("console", limit: 16)) else {
            throw StateError.invalid(what: "console")
        }
        self.console = console
        commandLine = KernelCommandLine(try reader.string("command line", limit: 1 << 16))
        acpi = try reader.bool("ACPI")
        let count = Int(try reader.get(UInt32.self, "device count"))
        guard count <= 64 else { throw StateError.invalid(what: "device count") }
        devices = []
        for _ in 0..<count { devices.append(try DeviceSpec(from: &reader)) }
        kernel = ""
        initrds = []
    }
}
