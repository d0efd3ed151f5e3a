import Devices
import Glibc

extension MachineBuilder {
    /// virtio-vsock with Firecracker's host side, bound to the session's socket once built:
    /// host programs connect to it; a guest connecting to the host's port P reaches the
    /// socket PATH_P. Connections are served on the event loop.
    func attachVsock() throws {
        let deviceIO = self.deviceIO
        let device = VirtioVsock(wake: { deviceIO.wakeUp() })
        try slots.add(device)
        deviceIO.add(device)
        guard let path = session.vsock, let listener = resources.vsockListener else { return }
        bindings.append {
            let fd = listener.take()
            do {
                try device.attach(listener: fd, connect: { port in VsockHostSocket.connect(path, port: port) })
            } catch {
                close(fd)
                throw error
            }
        }
        needs.insert(.vsock)
    }
}
