/// A queue a device serves whenever the driver notifies it: the checked queue, the
/// interrupt to raise, and whether the guest broke the queue's rules (then nothing more
/// is served until the driver resets the device). Kept under the device's lock.
struct ServedQueue {
    var queue: Virtqueue?
    weak var interrupt: VirtioInterrupt?
    var broken = false

    init(queue: Virtqueue? = nil, interrupt: VirtioInterrupt? = nil) {
        self.queue = queue
        self.interrupt = interrupt
    }

    /// Serves every chain the driver made available with `serve`, which answers one
    /// chain and returns the bytes it wrote into it, as long as `condition` holds before
    /// each one. Returns what to call once the device's lock is released: the used-buffer
    /// interrupt if the driver wants one, or the report of a broken queue.
    mutating func serveAvailable(while condition: () -> Bool = { true },
                                 _ serve: (DescriptorChain, Virtqueue) throws(VirtqueueError) -> UInt32)
        -> (@Sendable () -> Void)? {
        guard !broken, let queue else { return nil }
        var completed = false
        do throws(VirtqueueError) {
            while condition(), let chain = try queue.next() {
                queue.complete(chain, written: try serve(chain, queue))
                completed = true
            }
        } catch {
            broken = true
            return Self.failure(interrupt, error)
        }
        return completed && queue.shouldInterrupt() ? Self.notifier(interrupt) : nil
    }

    static func notifier(_ interrupt: VirtioInterrupt?) -> (@Sendable () -> Void)? {
        guard let interrupt else { return nil }
        return { interrupt.usedBuffers() }
    }

    static func failure(_ interrupt: VirtioInterrupt?, _ error: VirtqueueError) -> (@Sendable () -> Void)? {
        guard let interrupt else { return nil }
        return { interrupt.deviceNeedsReset(error) }
    }
}
