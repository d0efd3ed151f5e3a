import Devices

extension MachineBuilder {
    /// The next disk: /dev/vd(a+N), backed by the session's Nth disk file.
    func attachDisk() throws {
        let index = nextDisk()
        // A machine read from a snapshot may put its disks after its slots: refused, not indexed past the files.
        guard index < resources.disks.count else { throw ConfigurationError.disksDiffer(machine: index + 1, session: resources.disks.count) }
        try slots.add(VirtioBlock(backend: resources.disks[index], identifier: "microvm-disk\(index)"))
    }

    /// The next disk, empty until the session's Nth disk file is bound to it.
    func attachDiskSlot() throws {
        let index = nextDisk()
        let device = VirtioBlock(identifier: "microvm-disk\(index)")
        try slots.add(device)
        guard index < resources.disks.count else { return }
        let disk = resources.disks[index]
        bindings.append { try device.attach(disk) }
    }

    private func nextDisk() -> Int {
        slots.slots.count { $0.transport.device is VirtioBlock }
    }
}
