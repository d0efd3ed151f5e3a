import ACPI
import Devices
import Memory

/// The virtio-mmio slots: 4 KiB of MMIO and one interrupt each, from
/// `MemoryMap.virtioMMIOBase` on, handed out in the order devices are added. Adding a
/// device is one call; the kernel learns of each slot from `kernelParameters`.
final class VirtioSlots {
    struct Slot {
        let address: GuestAddress
        let irq: UInt32
        let transport: VirtioMMIOTransport
    }

    /// How many devices fit: one per interrupt line set aside for virtio.
    static var capacity: Int { MemoryMap.virtioIRQs.count }

    private(set) var slots: [Slot] = []
    private let bus: Bus
    private let memory: GuestMemory
    private let interrupt: (UInt32) -> InterruptLine
    private let log: @Sendable (String) -> Void

    init(bus: Bus, memory: GuestMemory, interrupt: @escaping (UInt32) -> InterruptLine, log: @escaping @Sendable (String) -> Void) {
        self.bus = bus
        self.memory = memory
        self.interrupt = interrupt
        self.log = log
    }

    /// Puts `device` in the next slot; returns the slot.
    @discardableResult
    func add(_ device: VirtioDevice) throws -> Slot {
        guard slots.count < Self.capacity else { throw ConfigurationError.tooManyDevices(requested: slots.count + 1, capacity: Self.capacity) }
        let address = GuestAddress(MemoryMap.virtioMMIOBase.rawValue + UInt64(slots.count) * MemoryMap.virtioMMIOSlotSize)
        let irq = MemoryMap.virtioIRQs[slots.count]
        let transport = VirtioMMIOTransport(device: device, memory: memory, interrupt: interrupt(irq), log: log)
        try bus.insert(transport, base: address.rawValue, size: VirtioMMIOTransport.size)
        let slot = Slot(address: address, irq: irq, transport: transport)
        slots.append(slot)
        return slot
    }

    /// The slots as the DSDT describes them.
    var acpiDevices: [ACPIPlatform.VirtioMMIODevice] {
        slots.map { .init(address: $0.address.rawValue, size: UInt32(MemoryMap.virtioMMIOSlotSize), gsi: $0.irq) }
    }

    /// One `virtio_mmio.device=` word per slot, for kernels that find devices on the command line.
    var kernelParameters: [String] {
        slots.map { "virtio_mmio.device=4K@\($0.address):\($0.irq)" }
    }
}
