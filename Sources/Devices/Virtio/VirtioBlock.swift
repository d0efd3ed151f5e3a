import Memory
import Synchronization

/// virtio-blk (virtio 1.x, section 5.2) over one request queue. Each request is a chain:
/// a 16-byte header the device reads, data, and a status byte the device writes last.
/// Data moves between the guest's buffers and the backend in place; a request moves at
/// most `maximumRequestBytes`, so what one request costs the host is bounded.
///
/// A device built without a backend is an empty slot (a VM template's disk, bound per
/// run): its capacity is 0 and every read, write and flush gets IOERR until `attach`.
public final class VirtioBlock: VirtioDevice, Sendable {
    public static let sectorSize: UInt64 = 512
    public static let queueSize: UInt16 = 256
    /// Data buffers one request may have (VIRTIO_BLK_F_SEG_MAX); with the header and the
    /// status byte, a chain stays within `Virtqueue.maximumChainLength`.
    public static let segmentMaximum: UInt32 = 126
    /// Data one request may move; a larger one gets IOERR. Linux's requests stay under 1.25 MiB.
    public static let maximumRequestBytes = 8 << 20
    /// Length of the GET_ID answer.
    public static let identifierLength = 20

    public enum Feature {
        public static let segmentMaximum: UInt64 = 1 << 2
        public static let readOnly: UInt64 = 1 << 5
        public static let blockSize: UInt64 = 1 << 6
        public static let flush: UInt64 = 1 << 9
    }

    public enum RequestType {
        public static let read: UInt32 = 0
        public static let write: UInt32 = 1
        public static let flush: UInt32 = 4
        public static let getID: UInt32 = 8
    }

    public enum Status {
        public static let ok: UInt8 = 0
        public static let ioError: UInt8 = 1
        public static let unsupported: UInt8 = 2
    }

    /// The backend, and what the driver must hear of it. Apart from the queue, so that
    /// reading the configuration never waits for the requests being served.
    struct Binding {
        var backend: BlockBackend?
        /// The driver's interrupt while the device is active.
        weak var interrupt: VirtioInterrupt?
        /// A backend came while the device was not active: its activation tells the driver.
        var unannounced = false
    }

    private let state = Mutex(ServedQueue())
    private let binding: Mutex<Binding>
    private let identifier: [UInt8]
    private let offersReadOnly: Bool

    public var deviceType: UInt32 { 2 }
    public var maximumQueueSizes: [UInt16] { [Self.queueSize] }
    public var deviceFeatures: UInt64 {
        Feature.segmentMaximum | Feature.blockSize | Feature.flush | (offersReadOnly ? Feature.readOnly : 0)
    }

    /// `identifier` is what GET_ID answers (the guest's /sys/block/vdX/serial), cut to 20
    /// bytes; without `backend` the device is an empty slot.
    public init(backend: BlockBackend? = nil, identifier: String) {
        binding = Mutex(Binding(backend: backend))
        offersReadOnly = backend?.isReadOnly ?? false
        self.identifier = Array(identifier.utf8.prefix(Self.identifierLength))
    }

    /// Sectors of 512 bytes; a partial last sector is not offered.
    public var capacity: UInt64 { (binding.withLock { $0.backend }?.size ?? 0) / Self.sectorSize }

    /// Binds `backend` to an empty slot, from any thread. The capacity becomes the
    /// backend's, and a configuration change tells the driver (at once if it is active,
    /// else when it activates): Linux's virtio_blk then reads the new size. The features
    /// stay those offered when the device was built, and an empty slot offers a writable
    /// disk: Linux reads VIRTIO_BLK_F_RO only at probe, so a read-only backend attached
    /// later answers writes with IOERR (the guest's /init mounts such a disk read-only).
    public func attach(_ backend: BlockBackend) throws(AttachError) {
        let interrupt = try binding.withLock { binding throws(AttachError) -> VirtioInterrupt? in
            guard binding.backend == nil else {
                throw .attached(device: "disk \(String(decoding: identifier, as: UTF8.self))")
            }
            binding.backend = backend
            binding.unannounced = binding.interrupt == nil
            return binding.interrupt
        }
        interrupt?.configurationChanged()
    }

    public func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        var configuration = [UInt8](repeating: 0, count: 24)
        configuration.storeLittleEndian(capacity, at: 0)
        configuration.storeLittleEndian(Self.segmentMaximum, at: 12)
        configuration.storeLittleEndian(UInt32(Self.sectorSize), at: 20)
        for index in 0..<data.count where offset >= 0 && offset + index < configuration.count {
            data[index] = configuration[offset + index]
        }
    }

    public func activate(queues: [Virtqueue?], features: UInt64, interrupt: VirtioInterrupt) {
        state.withLock { $0 = ServedQueue(queue: queues[0], interrupt: interrupt) }
        let announce = binding.withLock { binding in
            binding.interrupt = interrupt
            defer { binding.unannounced = false }
            return binding.unannounced
        }
        if announce { interrupt.configurationChanged() }
    }

    public func queueNotified(_ index: Int) {
        let backend = binding.withLock { $0.backend }
        state.withLock { $0.serveAvailable { chain, queue throws(VirtqueueError) in try serve(chain, in: queue, backend: backend) } }?()
    }

    public func reset() {
        state.withLock { $0 = ServedQueue() }
        binding.withLock { $0.interrupt = nil }
    }

    /// Serves one request and writes its status; returns the bytes written into the chain.
    /// A chain without a status byte cannot be answered and breaks the queue.
    func serve(_ chain: DescriptorChain, in queue: Virtqueue, backend: BlockBackend?) throws(VirtqueueError) -> UInt32 {
        guard let last = chain.buffers.last, last.writable else {
            throw .malformedRequest(head: chain.head, reason: "the request has no device-writable status byte at its end")
        }
        var request = BlockRequest(try queue.buffers(of: chain))
        let status = perform(&request, backend: backend)
        request.status.storeBytes(of: status, as: UInt8.self)
        return UInt32(status == Status.ok ? request.deviceWritten : 0) + 1
    }

    private func perform(_ request: inout BlockRequest, backend: BlockBackend?) -> UInt8 {
        guard let header = request.header else { return Status.ioError }
        switch header.type {
        case RequestType.read:
            guard let backend, request.readableData.isEmpty,
                  let offset = checkedOffset(header.sector, request.writableBytes, in: backend) else { return Status.ioError }
            request.deviceWritten = request.writableBytes
            return backend.read(into: request.writableData, at: offset) ? Status.ok : Status.ioError
        case RequestType.write:
            guard let backend, !backend.isReadOnly, request.writableData.isEmpty,
                  let offset = checkedOffset(header.sector, request.readableBytes, in: backend) else { return Status.ioError }
            return backend.write(request.readableData.map(UnsafeRawBufferPointer.init), at: offset) ? Status.ok : Status.ioError
        case RequestType.flush:
            guard let backend else { return Status.ioError }
            return backend.isReadOnly || backend.flush() ? Status.ok : Status.ioError
        case RequestType.getID:
            var source = identifier + [UInt8](repeating: 0, count: Self.identifierLength - identifier.count)
            for buffer in request.writableData where !source.isEmpty {
                let count = min(buffer.count, source.count)
                buffer.copyBytes(from: source[0..<count])
                source.removeFirst(count)
                request.deviceWritten += count
            }
            return Status.ok
        default:
            return Status.unsupported
        }
    }

    /// The byte offset of `sector` when `length` bytes from there are whole sectors inside the disk.
    private func checkedOffset(_ sector: UInt64, _ length: Int, in backend: BlockBackend) -> UInt64? {
        guard length > 0, length % Int(Self.sectorSize) == 0, length <= Self.maximumRequestBytes else { return nil }
        let (offset, overflow) = sector.multipliedReportingOverflow(by: Self.sectorSize)
        guard !overflow, offset <= backend.size, UInt64(length) <= backend.size - offset else { return nil }
        return offset
    }
}

/// The disk's contents are the file itself: a snapshot keeps only whether the guest broke
/// the queue. The backend is the run's: a restored device gets its own, or is an empty slot.
extension VirtioBlock {
    public func saveState(into writer: inout StateWriter) {
        writer.put(state.withLock { $0.broken })
    }

    public func restoreState(from reader: inout StateReader) throws(StateError) {
        let broken = try reader.bool("block queue")
        state.withLock { $0.broken = broken }
    }
}
