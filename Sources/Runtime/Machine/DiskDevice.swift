import Devices

extension MachineBuilder {
    /// The next disk: /dev/vd(a+N), backed by the session's Nth disk file.
    func attachDisk() throws {
        let index = slots.slots.count { $0.transport.device is VirtioBlock }
        try slots.add(VirtioBlock(backend: resources.disks[index], identifier: "microvm-disk\(index)"))
    }
}
