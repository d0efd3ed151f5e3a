import Devices

extension MachineBuilder {
    /// virtio-rng, refilled at `limit`'s rate by a timer on the event loop.
    func attachEntropy(_ limit: VirtioEntropy.RateLimit) throws {
        let deviceIO = self.deviceIO
        try slots.add(VirtioEntropy(limit: limit) { delay, refill in deviceIO.schedule(after: delay, refill) })
    }
}
