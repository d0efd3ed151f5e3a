// libFuzzer target: the path of a guest's connection to the host, driven by a well-formed
// driver so that the fuzzer's bytes are the guest's packets and the order of events, not
// ring layouts. Each step takes an action byte and its operands: a packet (operation,
// guest port, host port, flags, buffer allocation, forward count, payload length), an
// event-loop turn, receive buffers, or a device reset. Host port 0 is a listener that
// never accepts and whose backlog is full, 1 one that never accepts with room left, 2 no
// socket at all, all reached through VsockHostSocket as microvm's are. Every step must
// return: a connect that waits hangs the input, and libFuzzer's -timeout reports it (its
// alarm, every timeout/2 + 1 s, ends a waiting connect with EINTR, so the seed
// full-backlog-thrice has three REQUESTs: waiting connects add up past the timeout). The
// connections stay within the device's limit, and every host socket is closed with its
// connection.
import Glibc

final class QuietInterrupt: VirtioInterrupt {
    func usedBuffers() {}
    func configurationChanged() {}
    func deviceNeedsReset(_ error: VirtqueueError) {}
}

/// One split ring at `rings` (descriptors, available ring 4 KiB above, used ring 8 KiB above).
struct Ring {
    static let size: UInt16 = 256
    let memory: GuestMemory
    let rings: UInt64
    var next: UInt16 = 0
    var availableIndex: UInt16 = 0

    func queue() -> Virtqueue {
        try! Virtqueue(memory: memory, size: Self.size, descriptorTable: GuestAddress(rings),
                       availableRing: GuestAddress(rings + 0x1000), usedRing: GuestAddress(rings + 0x2000), eventIndex: false)
    }

    mutating func post(address: UInt64, length: UInt32, writable: Bool) {
        let entry = GuestAddress(rings + UInt64(next) * 16)
        try! memory.store(address, at: entry)
        try! memory.store(length, at: GuestAddress(entry.rawValue + 8))
        try! memory.store(UInt16(writable ? 2 : 0), at: GuestAddress(entry.rawValue + 12))
        try! memory.store(next, at: GuestAddress(rings + 0x1000 + 4 + UInt64(availableIndex % Self.size) * 2))
        availableIndex &+= 1
        try! memory.store(availableIndex, at: GuestAddress(rings + 0x1000 + 2))
        next = (next + 1) % Self.size
    }

    var used: UInt16 { try! memory.load(UInt16.self, at: GuestAddress(rings + 0x2000 + 2)) }
}

let memory = try! GuestMemory(size: 1 << 20)
let base = "\0microvm-fuzz-vsock-connect-\(getpid())"

/// A non-blocking Unix socket bound to `name` (abstract, the whole address as
/// VsockHostSocket fills it) and listening with `backlog`.
func listener(_ name: String, backlog: Int32) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(name.utf8)) }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    precondition(bound == 0 && listen(fd, backlog) == 0, "the fuzz target's listener \(name.dropFirst())")
    return fd
}

/// Host port 0: a backlog of one, taken by a client nobody accepts.
let full: (listener: Int32, client: Int32) = {
    let fd = listener(base + "_0", backlog: 0)
    let client = VsockHostSocket.connect(base, port: 0)
    precondition(client != nil && VsockHostSocket.connect(base, port: 0) == nil, "the backlog of port 0 is full")
    return (fd, client!)
}()
/// Host port 1: room for every connection of an input; emptied after each.
let roomy = listener(base + "_1", backlog: 128)
let devicePath = base + "-device"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = (full, roomy)
    let before = open("/dev/null", O_RDONLY)
    close(before)
    var position = 0
    func byte() -> UInt8? {
        guard position < size else { return nil }
        defer { position += 1 }
        return data[position]
    }
    try! memory.zero(at: 0, count: 1 << 20)
    var receive = Ring(memory: memory, rings: 0x10000)
    var transmit = Ring(memory: memory, rings: 0x20000)
    var posted = 0
    do {
        let interrupt = QuietInterrupt()
        let device = VirtioVsock(listener: listener(devicePath, backlog: 4), connect: { port in
            VsockHostSocket.connect(base, port: port)
        }, wake: {})
        device.activate(queues: [receive.queue(), transmit.queue(), nil], features: 0, interrupt: interrupt)
        while let action = byte() {
            switch action % 8 {
            case 0...4:
                guard let guestPort = byte(), let hostPort = byte(), let flags = byte(), let allocation = byte(),
                      let forward = byte(), let length = byte() else { break }
                let header = VsockHeader(sourceCID: VirtioVsock.guestCID, destinationCID: VirtioVsock.hostCID,
                                         sourcePort: 1000 + UInt32(guestPort % 4), destinationPort: UInt32(hostPort % 3),
                                         operation: .request, length: UInt32(length), flags: UInt32(flags % 4),
                                         bufferAllocation: UInt32(allocation) << 10, forwardCount: UInt32(forward) << 8)
                var bytes = header.bytes
                // Operations 0 to 7: the seven the protocol has and one it has not.
                bytes[30] = action >> 5
                let address = 0x40000 + UInt64(transmit.next % 64) * 0x1000
                try! memory.write(bytes + [UInt8](repeating: action, count: Int(length)), at: GuestAddress(address))
                transmit.post(address: address, length: UInt32(VsockHeader.size) + UInt32(length), writable: false)
                device.queueNotified(VirtioVsock.transmitQueue)
            case 5:
                var requests = device.pollRequests()
                precondition(requests.count <= VirtioVsock.maximumConnections + 1, "more connections than the limit")
                _ = poll(&requests, nfds_t(requests.count), 0)
                var ready: [Int32: Int16] = [:]
                for request in requests where request.revents != 0 { ready[request.fd] = request.revents }
                device.serveReady(ready, woken: true)
            case 6:
                // Never more outstanding than the ring holds.
                let count = min(Int(action >> 3) + 1, Int(Ring.size) - (posted - Int(receive.used)))
                for _ in 0..<max(count, 0) {
                    let address = 0x80000 + UInt64(receive.next % 64) * 0x1000
                    receive.post(address: address, length: UInt32(VsockHeader.size) + 256, writable: true)
                    posted += 1
                }
                device.queueNotified(VirtioVsock.receiveQueue)
            default:
                device.reset()
                receive = Ring(memory: memory, rings: 0x10000)
                transmit = Ring(memory: memory, rings: 0x20000)
                posted = 0
                try! memory.zero(at: 0x10000, count: 0x20000)
                device.activate(queues: [receive.queue(), transmit.queue(), nil], features: 0, interrupt: interrupt)
            }
        }
    }
    // What reached the listener with room is the host's to take: it takes it now.
    while true {
        let accepted = accept(roomy, nil, nil)
        guard accepted >= 0 else { break }
        close(accepted)
    }
    let after = open("/dev/null", O_RDONLY)
    close(after)
    precondition(after == before, "a host socket outlived its device")
    return 0
}
