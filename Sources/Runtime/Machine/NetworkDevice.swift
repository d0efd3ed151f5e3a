import Devices
import KVM

extension MachineBuilder {
    /// virtio-net on the session's backend. Receive and the backend's readiness are served
    /// on the event loop; so are the guest's transmit notifications, which KVM signals on
    /// an eventfd without an exit to userspace (docs/networking.md has the measurements).
    func attachNetwork(mac: [UInt8]) throws {
        guard let backend = resources.network else { throw ConfigurationError.missingNetwork }
        let deviceIO = self.deviceIO
        let device = VirtioNet(backend: backend, mac: mac,
                               backendClosed: { MicroVM.report("the network backend closed its connection; the guest's network is down") },
                               wake: { deviceIO.wakeUp() })
        let slot = try slots.add(device)
        deviceIO.add(device)
        let transmitNotifier = try EventFD(nonBlocking: true)
        try vm.registerIOEventFD(transmitNotifier, address: slot.address.rawValue + VirtioMMIOTransport.queueNotifyOffset,
                                 length: 4, datamatch: UInt64(VirtioNet.transmitQueue))
        deviceIO.add(notifier: transmitNotifier) { device.queueNotified(VirtioNet.transmitQueue) }
        needs.insert(.networking)
    }
}
