import Devices
import KVM

extension MachineBuilder {
    /// virtio-net, given the session's backend once built (a template's was snapshotted
    /// with none: its link comes up when the backend is attached). Receive and the backend's
    /// readiness are served on the event loop; so are the guest's transmit notifications,
    /// which KVM signals on an eventfd without an exit to userspace (docs/networking.md).
    func attachNetwork(mac: [UInt8], offloads: Bool) throws {
        let deviceIO = self.deviceIO
        let device = VirtioNet(carriesHeader: offloads, mac: mac,
                               backendClosed: { MicroVM.report("the network backend closed its connection; the guest's network is down") },
                               wake: { deviceIO.wakeUp() })
        let slot = try slots.add(device)
        deviceIO.add(device)
        let transmitNotifier = try EventFD(nonBlocking: true)
        try vm.registerIOEventFD(transmitNotifier, address: slot.address.rawValue + VirtioMMIOTransport.queueNotifyOffset,
                                 length: 4, datamatch: UInt64(VirtioNet.transmitQueue))
        deviceIO.add(notifier: transmitNotifier) { device.queueNotified(VirtioNet.transmitQueue) }
        guard let backend = resources.network else { return }
        bindings.append { try device.attach(backend) }
        needs.insert(.networking)
    }
}
