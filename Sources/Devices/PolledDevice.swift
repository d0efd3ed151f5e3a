import Glibc

/// A device with host descriptors (a backend's socket, a listener) that the VMM's event
/// loop polls on its behalf, off the vCPU threads. Devices ask for a new look from any
/// thread through the wake-up they were given; the loop then calls `serveReady` with
/// `woken` set.
public protocol PolledDevice: AnyObject, Sendable {
    /// The descriptors to poll now, each with the events wanted.
    func pollRequests() -> [pollfd]
    /// After a poll: the descriptors that were ready with their events, and whether a
    /// wake-up came since the last call. Does a bounded amount of work.
    func serveReady(_ ready: [Int32: Int16], woken: Bool)
}
