import Glibc

/// One stream between a guest port and a host Unix socket, with both sides' credit
/// (virtio 1.2, 5.10.6.3): the guest may have at most `VirtioVsock.bufferAllocation`
/// bytes in flight towards the host, which is all the host ever holds for it; microvm
/// sends the guest no more than the guest's own buffer allows.
struct VsockConnection {
    enum State: Equatable {
        /// A host client connected to the listener and has not yet sent `CONNECT <port>\n`.
        case awaitingConnectLine
        /// The guest sent a REQUEST; the event loop has yet to connect to the host's
        /// socket (`fd` is -1 until it has).
        case hostConnecting
        /// The guest was sent (or will be sent) a REQUEST and has not answered.
        case connecting
        case established
        /// Closing: the guest is sent a RST once what it sent has reached the host.
        case closing
    }

    /// Control packets owed to the guest, sent as soon as it posts receive buffers.
    struct Owed: OptionSet {
        let rawValue: UInt8
        static let request = Owed(rawValue: 1)
        static let response = Owed(rawValue: 2)
        static let creditUpdate = Owed(rawValue: 4)
        static let reset = Owed(rawValue: 8)
    }

    var fd: Int32
    /// The host side's port (the port the guest connected to, or one microvm chose).
    var localPort: UInt32
    /// The guest side's port.
    var peerPort: UInt32
    var state: State
    var owed: Owed = []
    /// The CONNECT line read so far.
    var line: [UInt8] = []

    /// The guest's receive buffer and what it has consumed of what we sent.
    var peerBufferAllocation: UInt32 = 0
    var peerForwardCount: UInt32 = 0
    var sentToGuest: UInt32 = 0
    /// The host socket said it is readable (or closed) and has not yet been drained.
    var hostReadable = false
    /// The host will send nothing more (it shut its write side, or closed), or the guest
    /// will receive nothing more.
    var hostFinished = false

    /// What the guest sent that the host socket has not taken yet.
    var pendingToHost: [UInt8] = []
    /// Bytes of the guest's stream written to the host (fwd_cnt), and the value last told.
    var forwarded: UInt32 = 0
    var announcedForward: UInt32 = 0
    /// The guest will send no more: shut the host socket's write side once `pendingToHost` drains.
    var guestFinishedSending = false

    /// Bytes the guest can still take from us.
    var peerCredit: UInt32 {
        let inFlight = sentToGuest &- peerForwardCount
        return inFlight >= peerBufferAllocation ? 0 : peerBufferAllocation - inFlight
    }

    /// Writes what the guest sent (first what waits) to the host socket without blocking.
    /// Returns false if the guest sent more than its credit allowed, or the host socket
    /// is gone: the connection is over.
    mutating func forward(_ parts: [UnsafeRawBufferPointer]) -> Bool {
        guard flushPending() else { return false }
        var index = 0
        var offset = 0
        if pendingToHost.isEmpty {
            while index < parts.count {
                let part = parts[index]
                let written = part.count == 0 ? 0 : send(fd, part.baseAddress, part.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
                if written < 0 {
                    guard errno == EAGAIN || errno == EINTR else { return false }
                    break
                }
                forwarded &+= UInt32(written)
                if written < part.count {
                    offset = written
                    break
                }
                index += 1
            }
        }
        var rest = 0
        for (position, part) in parts.enumerated() where position >= index { rest += part.count - (position == index ? offset : 0) }
        guard pendingToHost.count + rest <= Int(VirtioVsock.bufferAllocation) else { return false }
        for (position, part) in parts.enumerated() where position >= index {
            pendingToHost += part[(position == index ? offset : 0)...]
        }
        return true
    }

    /// Writes what waits for the host socket, as much as it takes now. False: the host
    /// socket is gone.
    @discardableResult
    mutating func flushPending() -> Bool {
        while !pendingToHost.isEmpty {
            let written = pendingToHost.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if written < 0 && errno != EAGAIN && errno != EINTR { return false }
            guard written > 0 else { return true }
            pendingToHost.removeFirst(written)
            forwarded &+= UInt32(written)
        }
        if guestFinishedSending { shutdown(fd, Int32(SHUT_WR)) }
        return true
    }

    /// Closes the host socket, if the connection has one yet.
    func closeHost() {
        if fd >= 0 { close(fd) }
    }

    /// Whether the guest should hear that its credit grew: a quarter of the buffer was
    /// forwarded since it last heard, or everything it sent has reached the host.
    var creditWorthTelling: Bool {
        let untold = forwarded &- announcedForward
        return untold >= VirtioVsock.bufferAllocation / 4 || (untold > 0 && pendingToHost.isEmpty)
    }
}
