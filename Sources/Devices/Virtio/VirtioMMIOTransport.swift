import Memory
import Synchronization

/// The virtio-mmio transport, register layout version 2 (virtio 1.x, section 4.2.2):
/// one instance per device, 4 KiB of MMIO, one interrupt line.
public final class VirtioMMIOTransport: BusDevice, Sendable {
    public static let size: UInt64 = 0x1000
    /// Where the driver writes a queue's index to notify it: a VMM may hand writes of one
    /// index to an ioeventfd, so that they never leave the kernel.
    public static let queueNotifyOffset = UInt64(Register.queueNotify)

    enum Register {
        static let magic = 0x000
        static let version = 0x004
        static let deviceID = 0x008
        static let vendorID = 0x00c
        static let deviceFeatures = 0x010
        static let deviceFeaturesSelect = 0x014
        static let driverFeatures = 0x020
        static let driverFeaturesSelect = 0x024
        static let queueSelect = 0x030
        static let queueSizeMaximum = 0x034
        static let queueSize = 0x038
        static let queueReady = 0x044
        static let queueNotify = 0x050
        static let interruptStatus = 0x060
        static let interruptAcknowledge = 0x064
        static let status = 0x070
        static let queueDescriptorLow = 0x080
        static let queueDescriptorHigh = 0x084
        static let queueDriverLow = 0x090
        static let queueDriverHigh = 0x094
        static let queueDeviceLow = 0x0a0
        static let queueDeviceHigh = 0x0a4
        static let configurationGeneration = 0x0fc
        static let configuration = 0x100
    }

    public enum Status {
        public static let acknowledge: UInt32 = 1
        public static let driver: UInt32 = 2
        public static let driverOK: UInt32 = 4
        public static let featuresOK: UInt32 = 8
        public static let deviceNeedsReset: UInt32 = 0x40
        public static let failed: UInt32 = 0x80
    }

    static let magic: UInt32 = 0x7472_6976 // "virt"
    static let vendor: UInt32 = 0x4d56_4d53 // "SMVM"
    static let interruptUsedBuffer: UInt32 = 1
    static let interruptConfiguration: UInt32 = 2

    struct QueueConfiguration {
        var size: UInt16 = 0
        var ready = false
        var descriptor: UInt64 = 0
        var driver: UInt64 = 0
        var device: UInt64 = 0
    }

    struct State {
        var status: UInt32 = 0
        var deviceFeaturesSelect: UInt32 = 0
        var driverFeaturesSelect: UInt32 = 0
        var driverFeatures: UInt64 = 0
        var queueSelect: UInt32 = 0
        var queues: [QueueConfiguration]
        var interruptStatus: UInt32 = 0
        var lineHigh = false
        var active = false
        var configurationGeneration: UInt32 = 0
        var reportedError = false
        /// The queues handed to the device at activation, kept for snapshots.
        var activeQueues: [Virtqueue?] = []
    }

    public let device: VirtioDevice
    private let memory: GuestMemory
    private let line: InterruptLine
    private let log: @Sendable (String) -> Void
    private let state: Mutex<State>
    /// Held across a status write and the device callback it causes (reset or activate).
    private let lifecycle = Mutex(())
    public let offeredFeatures: UInt64

    /// `log` receives one line the first time the guest breaks a queue.
    public init(device: VirtioDevice, memory: GuestMemory, interrupt: InterruptLine, log: @escaping @Sendable (String) -> Void) {
        self.device = device
        self.memory = memory
        self.line = interrupt
        self.log = log
        offeredFeatures = device.deviceFeatures | VirtioFeature.version1 | VirtioFeature.eventIndex | VirtioFeature.indirectDescriptors
        state = Mutex(State(queues: Array(repeating: QueueConfiguration(), count: device.maximumQueueSizes.count)))
    }

    /// Current device status (for tests and diagnostics).
    public var status: UInt32 { state.withLock { $0.status } }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        data.initializeMemory(as: UInt8.self, repeating: 0)
        let offset = Int(offset)
        if offset >= Register.configuration {
            device.readConfiguration(offset: offset - Register.configuration, into: data)
            return
        }
        guard data.count == 4, offset % 4 == 0 else { return }
        let value: UInt32 = state.withLock { state in
            switch offset {
            case Register.magic: return Self.magic
            case Register.version: return 2
            case Register.deviceID: return device.deviceType
            case Register.vendorID: return Self.vendor
            case Register.deviceFeatures:
                return state.deviceFeaturesSelect < 2 ? UInt32(truncatingIfNeeded: offeredFeatures >> (32 * UInt64(state.deviceFeaturesSelect))) : 0
            case Register.queueSizeMaximum:
                return selectedQueue(state).map { UInt32(device.maximumQueueSizes[$0]) } ?? 0
            case Register.queueReady:
                return selectedQueue(state).map { state.queues[$0].ready ? 1 : 0 } ?? 0
            case Register.interruptStatus: return state.interruptStatus
            case Register.status: return state.status
            case Register.configurationGeneration: return state.configurationGeneration
            default: return 0
            }
        }
        data.storeBytes(of: value.littleEndian, as: UInt32.self)
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        let offset = Int(offset)
        guard data.count == 4, offset % 4 == 0, offset < Register.configuration else { return }
        let value = UInt32(littleEndian: data.loadUnaligned(as: UInt32.self))
        switch offset {
        case Register.queueNotify:
            // Outside the lock: the device calls back into the interrupt path.
            let index = Int(value)
            let active = state.withLock { state in
                state.active && state.status & Status.deviceNeedsReset == 0 && index < state.queues.count && state.queues[index].ready
            }
            if active { device.queueNotified(index) }
        case Register.status:
            // A reset and an activation each change the transport and then tell the device;
            // one at a time, so that one vCPU's reset cannot land inside another's activation.
            lifecycle.withLock { _ in writeRegister(offset, value) }
        default:
            writeRegister(offset, value)
        }
    }

    private func writeRegister(_ offset: Int, _ value: UInt32) {
        var activation: (queues: [Virtqueue?], features: UInt64)?
        var failure: VirtqueueError?
        var resetDevice = false
        state.withLock { state in
            let queue = selectedQueue(state)
            // Queue layout may change only while the driver sets the device up.
            let configurable = state.status & Status.driverOK == 0
            switch offset {
            case Register.deviceFeaturesSelect: state.deviceFeaturesSelect = value
            case Register.driverFeaturesSelect: state.driverFeaturesSelect = value
            case Register.driverFeatures where state.driverFeaturesSelect < 2 && state.status & Status.featuresOK == 0:
                let shift = 32 * UInt64(state.driverFeaturesSelect)
                state.driverFeatures = (state.driverFeatures & ~(0xffff_ffff << shift)) | (UInt64(value) << shift)
            case Register.queueSelect: state.queueSelect = value
            case Register.queueSize where configurable:
                if let queue, value > 0, value <= UInt32(device.maximumQueueSizes[queue]), value & (value - 1) == 0 {
                    state.queues[queue].size = UInt16(value)
                }
            case Register.queueReady where configurable:
                if let queue { state.queues[queue].ready = value == 1 }
            case Register.queueDescriptorLow where configurable: setLow(&state, queue, \.descriptor, value)
            case Register.queueDescriptorHigh where configurable: setHigh(&state, queue, \.descriptor, value)
            case Register.queueDriverLow where configurable: setLow(&state, queue, \.driver, value)
            case Register.queueDriverHigh where configurable: setHigh(&state, queue, \.driver, value)
            case Register.queueDeviceLow where configurable: setLow(&state, queue, \.device, value)
            case Register.queueDeviceHigh where configurable: setHigh(&state, queue, \.device, value)
            case Register.interruptAcknowledge:
                state.interruptStatus &= ~value
                updateLine(&state)
            case Register.status:
                if value == 0 {
                    let wasActive = state.active
                    state = State(queues: Array(repeating: QueueConfiguration(), count: device.maximumQueueSizes.count))
                    state.configurationGeneration &+= 1
                    updateLine(&state)
                    resetDevice = wasActive
                    return
                }
                var status = value
                if status & Status.featuresOK != 0 && state.status & Status.featuresOK == 0 {
                    // Refuse features we did not offer, and drivers that are not virtio 1.x.
                    let acceptable = state.driverFeatures & ~offeredFeatures == 0 && state.driverFeatures & VirtioFeature.version1 != 0
                    if !acceptable { status &= ~Status.featuresOK }
                }
                if status & Status.driverOK != 0 && !state.active && status & Status.featuresOK != 0 {
                    do throws(VirtqueueError) {
                        activation = (try makeQueues(state), state.driverFeatures)
                        state.activeQueues = activation?.queues ?? []
                        state.active = true
                    } catch {
                        failure = error
                        status &= ~Status.driverOK
                    }
                }
                state.status = (state.status & Status.deviceNeedsReset) | status
            default:
                break
            }
        }
        if resetDevice { device.reset() }
        if let failure { deviceNeedsReset(failure) }
        if let activation { device.activate(queues: activation.queues, features: activation.features, interrupt: self) }
    }

    private func selectedQueue(_ state: State) -> Int? {
        Int(state.queueSelect) < state.queues.count ? Int(state.queueSelect) : nil
    }

    private func setLow(_ state: inout State, _ queue: Int?, _ field: WritableKeyPath<QueueConfiguration, UInt64>, _ value: UInt32) {
        guard let queue else { return }
        state.queues[queue][keyPath: field] = (state.queues[queue][keyPath: field] & 0xffff_ffff_0000_0000) | UInt64(value)
    }

    private func setHigh(_ state: inout State, _ queue: Int?, _ field: WritableKeyPath<QueueConfiguration, UInt64>, _ value: UInt32) {
        guard let queue else { return }
        state.queues[queue][keyPath: field] = (state.queues[queue][keyPath: field] & 0xffff_ffff) | (UInt64(value) << 32)
    }

    /// The queues the driver made ready (nil for the others, which the device never walks).
    private func makeQueues(_ state: State) throws(VirtqueueError) -> [Virtqueue?] {
        var queues: [Virtqueue?] = []
        for (index, configuration) in state.queues.enumerated() {
            guard configuration.ready else {
                queues.append(nil)
                continue
            }
            let size = configuration.size == 0 ? device.maximumQueueSizes[index] : configuration.size
            queues.append(try Virtqueue(memory: memory, size: size, descriptorTable: GuestAddress(configuration.descriptor),
                                        availableRing: GuestAddress(configuration.driver), usedRing: GuestAddress(configuration.device),
                                        eventIndex: state.driverFeatures & VirtioFeature.eventIndex != 0))
        }
        return queues
    }

    private func updateLine(_ state: inout State) {
        let high = state.interruptStatus != 0
        guard high != state.lineHigh else { return }
        state.lineHigh = high
        line.setLevel(high)
    }

    private func raise(_ bit: UInt32) {
        state.withLock { state in
            state.interruptStatus |= bit
            updateLine(&state)
        }
    }
}

extension VirtioMMIOTransport: VirtioInterrupt {
    public func usedBuffers() { raise(Self.interruptUsedBuffer) }

    public func configurationChanged() {
        state.withLock { $0.configurationGeneration &+= 1 }
        raise(Self.interruptConfiguration)
    }

    public func deviceNeedsReset(_ error: VirtqueueError) {
        let first = state.withLock { state in
            state.status |= Status.deviceNeedsReset
            defer { state.reportedError = true }
            return !state.reportedError
        }
        if first { log("virtio device \(device.deviceType): \(error.description); the device needs a reset") }
        raise(Self.interruptConfiguration)
    }
}

extension VirtioMMIOTransport: StatefulDevice {
    public func saveState(into writer: inout StateWriter) {
        state.withLock { state in
            for value in [state.status, state.deviceFeaturesSelect, state.driverFeaturesSelect, state.queueSelect,
                          state.interruptStatus, state.configurationGeneration] {
                writer.put(value)
            }
            writer.put(state.driverFeatures)
            writer.put(state.lineHigh)
            writer.put(state.active)
            writer.put(state.reportedError)
            writer.put(UInt32(state.queues.count))
            for (index, queue) in state.queues.enumerated() {
                writer.put(queue.size)
                writer.put(queue.ready)
                writer.put(queue.descriptor)
                writer.put(queue.driver)
                writer.put(queue.device)
                let position = state.activeQueues.indices.contains(index) ? state.activeQueues[index]?.position : nil
                writer.put(position != nil)
                if let position {
                    writer.put(position.nextAvailable)
                    writer.put(position.nextUsed)
                    writer.put(position.lastSignalledUsed)
                    writer.put(position.signalledOnce)
                }
            }
        }
        var device = StateWriter()
        self.device.saveState(into: &device)
        writer.put(bytes: device.bytes)
    }

    /// Puts the registers and queues back, hands an active device its queues again, then
    /// lets the device restore its own state.
    public func restoreState(from reader: inout StateReader) throws(StateError) {
        var restored = State(queues: [])
        restored.status = try reader.get(UInt32.self, "virtio status")
        restored.deviceFeaturesSelect = try reader.get(UInt32.self, "virtio device features select")
        restored.driverFeaturesSelect = try reader.get(UInt32.self, "virtio driver features select")
        restored.queueSelect = try reader.get(UInt32.self, "virtio queue select")
        restored.interruptStatus = try reader.get(UInt32.self, "virtio interrupt status")
        restored.configurationGeneration = try reader.get(UInt32.self, "virtio configuration generation")
        restored.driverFeatures = try reader.get(UInt64.self, "virtio driver features")
        restored.lineHigh = try reader.bool("virtio interrupt line")
        restored.active = try reader.bool("virtio activation")
        restored.reportedError = try reader.bool("virtio error report")
        guard try reader.get(UInt32.self, "virtio queue count") == UInt32(device.maximumQueueSizes.count) else {
            throw .invalid(what: "queue count of virtio device \(device.deviceType)")
        }
        guard restored.driverFeatures & ~offeredFeatures == 0 else { throw .invalid(what: "virtio driver features") }
        var positions: [Virtqueue.Position?] = []
        for index in device.maximumQueueSizes.indices {
            var queue = QueueConfiguration()
            queue.size = try reader.get(UInt16.self, "virtio queue size")
            guard queue.size <= device.maximumQueueSizes[index], queue.size & (queue.size &- 1) == 0 else {
                throw .invalid(what: "virtio queue size")
            }
            queue.ready = try reader.bool("virtio queue ready")
            queue.descriptor = try reader.get(UInt64.self, "virtio descriptor table")
            queue.driver = try reader.get(UInt64.self, "virtio available ring")
            queue.device = try reader.get(UInt64.self, "virtio used ring")
            restored.queues.append(queue)
            if try reader.bool("virtio queue position") {
                positions.append(Virtqueue.Position(
                    nextAvailable: try reader.get(UInt16.self, "virtio next available"), nextUsed: try reader.get(UInt16.self, "virtio next used"),
                    lastSignalledUsed: try reader.get(UInt16.self, "virtio last signalled"), signalledOnce: try reader.bool("virtio signalled once")))
            } else {
                positions.append(nil)
            }
        }
        var queues: [Virtqueue?] = []
        if restored.active {
            do throws(VirtqueueError) {
                queues = try makeQueues(restored)
            } catch {
                throw .invalid(what: "virtio queue layout (\(error.description))")
            }
            for (index, queue) in queues.enumerated() {
                guard let queue else { continue }
                guard let position = positions[index] else { throw .invalid(what: "virtio queue position") }
                queue.position = position
            }
            restored.activeQueues = queues
        }
        let deviceState = try reader.bytes("virtio device state", limit: 1 << 24)
        let lineHigh = restored.lineHigh
        let features = restored.driverFeatures
        state.withLock { $0 = restored }
        if restored.active { device.activate(queues: queues, features: features, interrupt: self) }
        var deviceReader = StateReader(deviceState)
        try device.restoreState(from: &deviceReader)
        try deviceReader.finish("state of virtio device \(device.deviceType)")
        if lineHigh { line.setLevel(true) }
    }
}
