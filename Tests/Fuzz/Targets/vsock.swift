// libFuzzer target: virtio-vsock's transmit and receive queues over chains the fuzzer
// shapes in guest memory (see fuzzedQueue; both queues share that layout), so that the
// packets the guest sends are the fuzzer's. Byte 5 chooses whether the host accepts the
// guest's connections (bit 0), how many event-loop turns follow (bits 1-2), whether the
// device starts without its host side (bit 3) and before which turn that is attached
// (bits 4-5). Whatever the packets say, the connections stay within the device's limit,
// there are none while the device has no host side, a second host side is refused, and
// every host socket is closed with its connection.
import Glibc

final class QuietInterrupt: VirtioInterrupt {
    func usedBuffers() {}
    func configurationChanged() {}
    func deviceNeedsReset(_ error: VirtqueueError) {}
}

let memory = try! GuestMemory(size: 64 << 10)
let listener: Int32 = {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    // An abstract address: nothing to clean up on disk.
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: [0] + Array("microvm-fuzz-vsock-\(getpid())".utf8)) }
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    listen(fd, 4)
    return fd
}()
nonisolated(unsafe) var hostEnds: [Int32] = []

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let receiveQueue = fuzzedQueue(data, size, in: memory), let transmitQueue = fuzzedQueue(data, size, in: memory) else { return 0 }
    let choice = data[5]
    let interrupt = QuietInterrupt()
    // The listener is a lazy global: made before the descriptors are counted.
    let template = listener
    let before = open("/dev/null", O_RDONLY)
    close(before)
    do {
        let connect: @Sendable (UInt32) -> Int32? = { _ in
            guard choice & 1 != 0 else { return nil }
            var pair: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { return nil }
            _ = fcntl(pair[0], F_SETFL, O_NONBLOCK)
            hostEnds.append(pair[1])
            return pair[0]
        }
        let hostLater = choice & 8 != 0
        let attachBefore = Int(choice >> 4 & 3)
        let device = hostLater ? VirtioVsock(wake: {}) : VirtioVsock(listener: dup(template), connect: connect, wake: {})
        device.activate(queues: [receiveQueue, transmitQueue, nil], features: 0, interrupt: interrupt)
        for turn in 0..<Int(choice >> 1 & 3 + 1) {
            if hostLater && turn <= attachBefore {
                precondition(device.pollRequests().isEmpty && device.isIdle, "connections without a host side")
            }
            if hostLater && turn == attachBefore {
                precondition((try? device.attach(listener: dup(template), connect: connect)) != nil, "a host side was refused")
            }
            if !hostLater || turn >= attachBefore {
                // Refused, the listener stays the caller's.
                let spare = dup(template)
                precondition((try? device.attach(listener: spare, connect: connect)) == nil, "a second host side was taken")
                close(spare)
            }
            device.queueNotified(1)
            var ready: [Int32: Int16] = [:]
            for request in device.pollRequests() { ready[request.fd] = request.events }
            precondition(ready.count <= VirtioVsock.maximumConnections + 1, "more connections than the limit")
            device.serveReady(ready, woken: true)
            device.queueNotified(0)
        }
    }
    for fd in hostEnds { close(fd) }
    hostEnds = []
    let after = open("/dev/null", O_RDONLY)
    close(after)
    precondition(after == before, "a host socket outlived its device")
    return 0
}
