/// How a run's configuration starts from a template: the machine the template is of (the
/// guest-visible part, with a work-order port, and nothing that binds a host file at
/// build time) and the work order that gives the guest the rest.
extension VMConfiguration {
    /// Why this run boots rather than restoring a template; nil when a template serves it.
    public var templateObstacle: String? {
        if profiling != nil { return "a profile samples the boot" }
        if !appendedInitrds.isEmpty { return "more initrds are given" }
        let words = commandLine.text.split(separator: " ")
        if words.contains("--") || words.contains(where: { $0.hasPrefix("microvm.cmd=") }) {
            return "the kernel command line carries the command"
        }
        if templateMachine.slotCount > VirtioSlots.capacity { return "a template's machine would need more than \(VirtioSlots.capacity) virtio slots" }
        guard let initrd, InitrdListing.contains("usr/bin/work-order", in: initrd) else {
            return "the initrd has no usr/bin/work-order for a template's /init"
        }
        return nil
    }

    /// The template's machine: the command's streams or the console, the work-order port, one 9p device for every
    /// share, a disk slot for each disk, the network, vsock, virtio-rng; the command line
    /// says where the order comes. The network device's MAC address is derived from the
    /// backend's kind alone: every clone of a template has the same one (give --mac for another).
    public var templateMachine: MachineSpec {
        var devices: [DeviceSpec] = []
        if commandStreams { devices.append(.commandStreams) }
        if console == .virtio { devices.append(.console) }
        let port = devices.reduce(0) { $0 + $1.slotCount }
        devices.append(.workOrder)
        devices.append(.exports(tag: Self.exportsTag))
        devices += disks.map { _ in .diskSlot }
        if let network {
            let offloads = if case .tap = network { true } else { false }
            devices.append(.network(mac: mac ?? Self.derivedMAC(offloads ? "tap" : "passt"), offloads: offloads))
        }
        if vsock != nil { devices.append(.vsock) }
        if let entropy { devices.append(.entropy(entropy)) }
        var commandLine = commandLine
        commandLine.insertKernelParameters(["microvm.order=/dev/hvc\(port)"])
        return MachineSpec(kernel: kernel, initrds: initrd.map { [$0] } ?? [], commandLine: commandLine, memorySize: memorySize,
                           vcpuCount: vcpuCount, acpi: acpi, console: console, devices: devices)
    }

    /// The mount tag of a template's 9p device.
    public static let exportsTag = "microvm"

    /// What /init does in a VM restored from the template.
    public var workOrder: WorkOrder {
        var root: WorkOrder.Root?
        if rootOnFirstDisk, let disk = disks.first { root = .disk(readOnly: disk.readOnly) }
        if let share = shares.first(where: { $0.tag == Share.rootTag }) { root = .share(readOnly: share.readOnly) }
        var order = WorkOrder(command: command ?? [], root: root, shares: shares.map(\.tag).filter { $0 != Share.rootTag }, disks: disks.count,
                              network: network != nil)
        order.readOnlyDisks = disks.indices.filter { disks[$0].readOnly }
        return order
    }
}
