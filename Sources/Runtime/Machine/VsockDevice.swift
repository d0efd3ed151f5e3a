import Devices

extension MachineBuilder {
    /// virtio-vsock with Firecracker's host side: host programs connect to the session's
    /// socket; a guest connecting to the host's port P reaches the socket PATH_P. Connections
    /// are served on the event loop.
    func attachVsock() throws {
        guard let path = session.vsock, let listener = resources.vsockListener else { throw ConfigurationError.missingVsock }
        let deviceIO = self.deviceIO
        let device = VirtioVsock(listener: listener, connect: { port in VsockHostSocket.connect(path, port: port) },
                                 wake: { deviceIO.wakeUp() })
        try slots.add(device)
        deviceIO.add(device)
        needs.insert(.vsock)
    }
}
