/// What the ACPI tables describe: the CPUs, the interrupt controllers, the legacy serial
/// port, the virtio-mmio slots, the power registers and the VM generation ID. The runtime fills it from the
/// devices it built, so the tables never disagree with the buses.
public struct ACPIPlatform: Sendable {
    /// COM1-style UART: its first I/O port and ISA interrupt.
    public struct SerialPort: Sendable {
        public var port: UInt16
        public var irq: UInt8
        public init(port: UInt16, irq: UInt8) {
            self.port = port
            self.irq = irq
        }
    }

    /// One virtio-mmio device: its register window and its interrupt (GSI).
    public struct VirtioMMIODevice: Sendable {
        public var address: UInt64
        public var size: UInt32
        public var gsi: UInt32
        public init(address: UInt64, size: UInt32, gsi: UInt32) {
            self.address = address
            self.size = size
            self.gsi = gsi
        }
    }

    /// The hardware-reduced sleep registers and the reset register, one I/O port each,
    /// and the sleep type `_S5` names (what a power-off writes to sleep control).
    public struct PowerRegisters: Sendable {
        public var sleepControl: UInt16
        public var sleepStatus: UInt16
        public var reset: UInt16
        public var resetValue: UInt8
        public var softOffSleepType: UInt8
        public init(sleepControl: UInt16, sleepStatus: UInt16, reset: UInt16, resetValue: UInt8, softOffSleepType: UInt8) {
            self.sleepControl = sleepControl
            self.sleepStatus = sleepStatus
            self.reset = reset
            self.resetValue = resetValue
            self.softOffSleepType = softOffSleepType
        }
    }

    /// Microsoft's Virtual Machine Generation ID: 16 bytes at `address` that change when the
    /// VM is cloned (restored from a snapshot), and the interrupt of the Generic Event Device
    /// that tells the guest they did, so that it reseeds its random number generator.
    public struct GenerationID: Sendable {
        public var address: UInt64
        public var gsi: UInt32
        public init(address: UInt64, gsi: UInt32) {
            self.address = address
            self.gsi = gsi
        }
    }

    /// The most CPUs the tables describe: xAPIC IDs are 8-bit, 255 is broadcast and the
    /// IOAPIC takes the ID after the last CPU.
    public static let maximumCPUs = 254

    public var cpus: Int
    public var localAPICAddress: UInt32
    public var ioAPICAddress: UInt32
    public var serial: SerialPort?
    public var virtioDevices: [VirtioMMIODevice]
    public var power: PowerRegisters
    public var generationID: GenerationID

    public init(cpus: Int, localAPICAddress: UInt32, ioAPICAddress: UInt32, serial: SerialPort?,
                virtioDevices: [VirtioMMIODevice], power: PowerRegisters, generationID: GenerationID) {
        precondition((1...Self.maximumCPUs).contains(cpus), "1 to \(Self.maximumCPUs) CPUs")
        self.cpus = cpus
        self.localAPICAddress = localAPICAddress
        self.ioAPICAddress = ioAPICAddress
        self.serial = serial
        self.virtioDevices = virtioDevices
        self.power = power
        self.generationID = generationID
    }

    /// APIC IDs are the CPU indices; the IOAPIC's follows them, as in the MP table.
    public var ioAPICID: UInt8 { UInt8(cpus) }
}
