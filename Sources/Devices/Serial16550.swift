import Synchronization

/// A 16550A UART as Linux's 8250 driver uses it: transmit is instant (THR is always
/// empty), received bytes wait in a bounded FIFO, and interrupts are raised for
/// received data and for THR empty, with the IIR priorities of the real part.
public final class Serial16550: BusDevice, Sendable {
    public static let com1Port: UInt64 = 0x3f8
    public static let com1IRQ: UInt32 = 4
    public static let portCount: UInt64 = 8
    /// Receive buffer bound: input beyond it waits with the console until the guest reads.
    public static let receiveCapacity = 4096

    enum Register {
        static let data: UInt64 = 0 // RBR / THR, DLL with DLAB
        static let interruptEnable: UInt64 = 1 // IER, DLM with DLAB
        static let interruptIdentification: UInt64 = 2 // IIR (read) / FCR (write)
        static let lineControl: UInt64 = 3
        static let modemControl: UInt64 = 4
        static let lineStatus: UInt64 = 5
        static let modemStatus: UInt64 = 6
        static let scratch: UInt64 = 7
    }

    enum Bits {
        static let ierReceivedData: UInt8 = 0x01
        static let ierTransmitEmpty: UInt8 = 0x02
        static let iirNoInterrupt: UInt8 = 0x01
        static let iirTransmitEmpty: UInt8 = 0x02
        static let iirReceivedData: UInt8 = 0x04
        static let iirFIFOEnabled: UInt8 = 0xc0
        static let fcrEnable: UInt8 = 0x01
        static let fcrClearReceive: UInt8 = 0x02
        static let lcrDivisorLatch: UInt8 = 0x80
        static let mcrLoopback: UInt8 = 0x10
        static let lsrDataReady: UInt8 = 0x01
        static let lsrTransmitEmpty: UInt8 = 0x20
        static let lsrIdle: UInt8 = 0x40
        /// DCD, DSR and CTS: a terminal is connected and ready.
        static let msrConnected: UInt8 = 0xb0
    }

    struct State {
        var interruptEnable: UInt8 = 0
        var lineControl: UInt8 = 0x03
        var modemControl: UInt8 = 0x08
        var scratch: UInt8 = 0
        var divisorLow: UInt8 = 0x0c
        var divisorHigh: UInt8 = 0
        var fifoEnabled = false
        var transmitEmptyPending = false
        var receive = ByteQueue(capacity: Serial16550.receiveCapacity)
        var lineHigh = false

        var receiveCount: Int { receive.count }

        var pendingInterrupt: UInt8? {
            if interruptEnable & Bits.ierReceivedData != 0 && receiveCount > 0 { return Bits.iirReceivedData }
            if interruptEnable & Bits.ierTransmitEmpty != 0 && transmitEmptyPending { return Bits.iirTransmitEmpty }
            return nil
        }

        mutating func popReceived() -> UInt8 {
            receive.pop() ?? 0
        }
    }

    let state = Mutex(State())
    private let interrupt: InterruptLine
    private let output: @Sendable (UnsafeRawBufferPointer) -> Void

    /// `output` receives what the guest transmits, on the vCPU thread, byte by byte as written.
    public init(interrupt: InterruptLine, output: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) {
        self.interrupt = interrupt
        self.output = output
    }

    /// Room left in the receive FIFO.
    public var receiveSpace: Int {
        state.withLock { Self.receiveCapacity - $0.receiveCount }
    }

    /// Queues bytes from the console for the guest; returns how many were taken.
    @discardableResult
    public func receive(_ bytes: some Collection<UInt8>) -> Int {
        state.withLock { state in
            let taken = state.receive.push(contentsOf: bytes)
            updateLine(&state)
            return taken
        }
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard !data.isEmpty else { return }
        let value = state.withLock { state in
            let value = readRegister(offset, &state)
            updateLine(&state)
            return value
        }
        data.initializeMemory(as: UInt8.self, repeating: 0)
        data[0] = value
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        guard let value = data.first else { return }
        var transmitted: UInt8?
        state.withLock { state in
            transmitted = writeRegister(offset, value, &state)
            updateLine(&state)
        }
        if let transmitted {
            withUnsafeBytes(of: transmitted) { output($0) }
        }
    }

    private func readRegister(_ offset: UInt64, _ state: inout State) -> UInt8 {
        let divisorLatch = state.lineControl & Bits.lcrDivisorLatch != 0
        switch offset {
        case Register.data:
            return divisorLatch ? state.divisorLow : state.popReceived()
        case Register.interruptEnable:
            return divisorLatch ? state.divisorHigh : state.interruptEnable
        case Register.interruptIdentification:
            let fifo = state.fifoEnabled ? Bits.iirFIFOEnabled : 0
            guard let pending = state.pendingInterrupt else { return fifo | Bits.iirNoInterrupt }
            // Reading IIR acknowledges a THR-empty interrupt, as on the real part.
            if pending == Bits.iirTransmitEmpty { state.transmitEmptyPending = false }
            return fifo | pending
        case Register.lineControl:
            return state.lineControl
        case Register.modemControl:
            return state.modemControl
        case Register.lineStatus:
            let ready = state.receiveCount > 0 ? Bits.lsrDataReady : 0
            return ready | Bits.lsrTransmitEmpty | Bits.lsrIdle
        case Register.modemStatus:
            if state.modemControl & Bits.mcrLoopback != 0 {
                // Loopback: DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD.
                let mcr = state.modemControl
                return (mcr & 0x01) << 5 | (mcr & 0x02) << 3 | (mcr & 0x04) << 4 | (mcr & 0x08) << 4
            }
            return Bits.msrConnected
        case Register.scratch:
            return state.scratch
        default:
            return 0xff
        }
    }

    /// Returns the byte to transmit, if the write was one.
    private func writeRegister(_ offset: UInt64, _ value: UInt8, _ state: inout State) -> UInt8? {
        let divisorLatch = state.lineControl & Bits.lcrDivisorLatch != 0
        switch offset {
        case Register.data:
            if divisorLatch {
                state.divisorLow = value
                return nil
            }
            state.transmitEmptyPending = true
            if state.modemControl & Bits.mcrLoopback != 0 {
                state.receive.push(contentsOf: CollectionOfOne(value))
                return nil
            }
            return value
        case Register.interruptEnable:
            if divisorLatch {
                state.divisorHigh = value
                return nil
            }
            // Enabling the THR-empty interrupt while THR is empty raises it at once;
            // Linux's 8250 driver starts transmitting on that interrupt.
            if value & Bits.ierTransmitEmpty != 0 && state.interruptEnable & Bits.ierTransmitEmpty == 0 {
                state.transmitEmptyPending = true
            }
            state.interruptEnable = value & 0x0f
        case Register.interruptIdentification:
            state.fifoEnabled = value & Bits.fcrEnable != 0
            if value & Bits.fcrClearReceive != 0 {
                state.receive.removeAll()
            }
        case Register.lineControl:
            state.lineControl = value
        case Register.modemControl:
            state.modemControl = value & 0x1f
        case Register.scratch:
            state.scratch = value
        default:
            break
        }
        return nil
    }

    private func updateLine(_ state: inout State) {
        let high = state.pendingInterrupt != nil
        guard high != state.lineHigh else { return }
        state.lineHigh = high
        interrupt.setLevel(high)
    }
}

extension Serial16550: StatefulDevice {
    public func saveState(into writer: inout StateWriter) {
        state.withLock { state in
            for register in [state.interruptEnable, state.lineControl, state.modemControl, state.scratch,
                             state.divisorLow, state.divisorHigh] {
                writer.put(register)
            }
            writer.put(state.fifoEnabled)
            writer.put(state.transmitEmptyPending)
            writer.put(state.lineHigh)
            writer.put(bytes: state.receive.contents)
        }
    }

    public func restoreState(from reader: inout StateReader) throws(StateError) {
        var restored = State()
        restored.interruptEnable = try reader.get(UInt8.self, "16550 IER")
        restored.lineControl = try reader.get(UInt8.self, "16550 LCR")
        restored.modemControl = try reader.get(UInt8.self, "16550 MCR")
        restored.scratch = try reader.get(UInt8.self, "16550 scratch")
        restored.divisorLow = try reader.get(UInt8.self, "16550 DLL")
        restored.divisorHigh = try reader.get(UInt8.self, "16550 DLM")
        restored.fifoEnabled = try reader.bool("16550 FIFO enable")
        restored.transmitEmptyPending = try reader.bool("16550 THRE pending")
        let lineHigh = try reader.bool("16550 interrupt line")
        restored.receive.push(contentsOf: try reader.bytes("16550 receive FIFO", limit: Self.receiveCapacity))
        // The in-kernel irqchip was restored with the line's last level; asserting it
        // again here keeps this side's view and KVM's the same.
        state.withLock { state in
            state = restored
            state.lineHigh = lineHigh
        }
        if lineHigh { interrupt.setLevel(true) }
    }
}
