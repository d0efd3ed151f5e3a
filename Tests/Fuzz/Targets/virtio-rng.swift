// libFuzzer target: virtio-rng's request queue over chains the fuzzer shapes in guest
// memory (see fuzzedQueue). Byte 5 chooses how often the driver notifies and the clock
// moves between notifications. The device never hands out more than its bucket holds.
import Synchronization

final class QuietInterrupt: VirtioInterrupt {
    func usedBuffers() {}
    func configurationChanged() {}
    func deviceNeedsReset(_ error: VirtqueueError) {}
}

let memory = try! GuestMemory(size: 64 << 10)
let now = Mutex<UInt64>(0)
let drawn = Mutex(0)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let queue = fuzzedQueue(data, size, in: memory) else { return 0 }
    drawn.withLock { $0 = 0 }
    now.withLock { $0 = 1_000_000_000 }
    let limit = VirtioEntropy.RateLimit(bytesPerSecond: 4096, burst: 1024)
    let interrupt = QuietInterrupt()
    let device = VirtioEntropy(limit: limit, clock: { now.withLock { $0 } }, source: { buffer in
        drawn.withLock { $0 += buffer.count }
        buffer.initializeMemory(as: UInt8.self, repeating: 0x42)
        return true
    }, retry: { _, _ in })
    device.activate(queues: [queue], features: 0, interrupt: interrupt)
    let rounds = Int(data[5] % 8 + 1)
    let step = UInt64(data[5] >> 3) * 10_000_000
    for _ in 0..<rounds {
        device.queueNotified(0)
        now.withLock { $0 += step }
    }
    let allowed = Int(limit.burst) + Int(UInt64(rounds) * step * limit.bytesPerSecond / 1_000_000_000)
    precondition(drawn.withLock { $0 } <= allowed, "more entropy than the rate limit allows")
    return 0
}
