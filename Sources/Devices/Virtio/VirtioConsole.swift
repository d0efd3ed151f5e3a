import Memory
import Synchronization

/// virtio-console with a single port (virtio 1.x, section 5.3): receiveq 0 carries
/// input to the guest, transmitq 1 output from it. The console size is offered with
/// VIRTIO_CONSOLE_F_SIZE. Input waits in a bounded buffer until the guest posts
/// receive buffers; output goes from guest memory to `output` with no copy.
public final class VirtioConsole: VirtioDevice, Sendable {
    public static let featureSize: UInt64 = 1 << 0
    static let receiveQueue = 0
    static let transmitQueue = 1
    public static let queueSize: UInt16 = 256
    /// Input held for the guest at most; the console stops reading beyond it.
    public static let inputCapacity = 64 * 1024
    /// Output taken from one transmit chain at most; the rest of a larger chain is dropped.
    /// Linux sends at most a page per buffer, so only a hostile guest reaches it.
    public static let maximumChainOutput = 1 << 20

    /// The receive side: driven by the event loop (input) and by receiveq notifications.
    struct State {
        var queue: Virtqueue?
        /// Weak: the transport owns this device, and a strong reference back would keep both alive forever.
        weak var interrupt: VirtioInterrupt?
        var pendingInput: [UInt8] = []
        var columns: UInt16 = 80
        var rows: UInt16 = 24
        var broken = false
    }

    private let state = Mutex(State())
    /// The transmit side: only vCPU threads take it, and may block in `output` while
    /// holding it, so that input never waits for a slow console reader.
    private let transmit = Mutex(ServedQueue())
    private let output: @Sendable (UnsafeRawBufferPointer) -> Void

    public var deviceType: UInt32 { 3 }
    public var maximumQueueSizes: [UInt16] { [Self.queueSize, Self.queueSize] }
    public var deviceFeatures: UInt64 { Self.featureSize }

    /// `output` receives what the guest writes to the console, on the notifying vCPU's
    /// thread, as slices of guest memory valid during the call.
    public init(output: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) {
        self.output = output
    }

    public func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        var configuration = [UInt8](repeating: 0, count: 12)
        state.withLock { state in
            configuration.storeLittleEndian(state.columns, at: 0)
            configuration.storeLittleEndian(state.rows, at: 2)
        }
        configuration.storeLittleEndian(UInt32(1), at: 4)
        for index in 0..<data.count where offset + index < configuration.count && offset >= 0 {
            data[index] = configuration[offset + index]
        }
    }

    /// Room left for input.
    public var inputSpace: Int { state.withLock { Self.inputCapacity - $0.pendingInput.count } }

    /// Queues console input for the guest; returns how many bytes were taken.
    @discardableResult
    public func receive(_ bytes: some Collection<UInt8>) -> Int {
        let (taken, interrupt) = state.withLock { state in
            let taken = min(bytes.count, Self.inputCapacity - state.pendingInput.count)
            state.pendingInput += bytes.prefix(taken)
            return (taken, deliverInput(&state))
        }
        interrupt?()
        return taken
    }

    /// Sets the console size the guest sees (a terminal resize).
    public func setSize(columns: UInt16, rows: UInt16) {
        let interrupt = state.withLock { state -> VirtioInterrupt? in
            guard state.columns != columns || state.rows != rows else { return nil }
            state.columns = columns
            state.rows = rows
            return state.interrupt
        }
        interrupt?.configurationChanged()
    }

    public func activate(queues: [Virtqueue?], features: UInt64, interrupt: VirtioInterrupt) {
        transmit.withLock { transmit in
            transmit = ServedQueue(queue: queues[Self.transmitQueue], interrupt: interrupt)
        }
        let signal = state.withLock { state in
            state.queue = queues[Self.receiveQueue]
            state.interrupt = interrupt
            state.broken = false
            return deliverInput(&state)
        }
        signal?()
    }

    public func queueNotified(_ index: Int) {
        if index == Self.receiveQueue {
            state.withLock { deliverInput(&$0) }?()
            return
        }
        let output = self.output
        transmit.withLock { transmit in
            transmit.serveAvailable { chain, queue throws(VirtqueueError) in
                let readable = try queue.readableBuffers(of: chain)
                for slice in readable.slices(from: 0, length: Self.maximumChainOutput) { output(UnsafeRawBufferPointer(slice)) }
                return 0
            }
        }?()
    }

    public func reset() {
        transmit.withLock { $0 = ServedQueue() }
        state.withLock { state in
            state.queue = nil
            state.interrupt = nil
            state.broken = false
        }
    }

    /// Moves pending input into the guest's receive buffers; returns the interrupt to raise.
    private func deliverInput(_ state: inout State) -> (@Sendable () -> Void)? {
        guard !state.broken, let queue = state.queue, !state.pendingInput.isEmpty else { return nil }
        var completed = false
        do throws(VirtqueueError) {
            while !state.pendingInput.isEmpty, let chain = try queue.next() {
                let writable = try queue.writableBuffers(of: chain)
                let written = writable.write(Array(state.pendingInput.prefix(writable.count)))
                state.pendingInput.removeFirst(written)
                queue.complete(chain, written: UInt32(written))
                completed = true
            }
        } catch {
            state.broken = true
            return ServedQueue.failure(state.interrupt, error)
        }
        return completed && queue.shouldInterrupt() ? ServedQueue.notifier(state.interrupt) : nil
    }
}

extension VirtioConsole {
    public func saveState(into writer: inout StateWriter) {
        writer.put(transmit.withLock { $0.broken })
        state.withLock { state in
            writer.put(state.columns)
            writer.put(state.rows)
            writer.put(state.broken)
            writer.put(bytes: state.pendingInput)
        }
    }

    public func restoreState(from reader: inout StateReader) throws(StateError) {
        let transmitBroken = try reader.bool("console transmit queue")
        let columns = try reader.get(UInt16.self, "console columns")
        let rows = try reader.get(UInt16.self, "console rows")
        let broken = try reader.bool("console receive queue")
        let input = try reader.bytes("console input", limit: Self.inputCapacity)
        transmit.withLock { $0.broken = transmitBroken }
        state.withLock { state in
            state.columns = columns
            state.rows = rows
            state.broken = broken
            state.pendingInput = input
        }
    }
}
