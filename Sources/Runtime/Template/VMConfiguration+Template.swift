/// How a run's configuration starts from a template: the machine the template is of (the
/// guest-visible part, with a work-order port, and nothing that binds a host file at
/// build time) and the work order that gives the guest the rest.
extension VMConfiguration {
    /// Why this run boots rather than restoring a template; nil when a template serves it.
    public var templateObstacle: String? {
        if profiling != nil { return "a profile samples the boot" }
        if commandStreams || !appendedInitrds.isEmpty { return "a container's streams and configuration are bound at boot" }
        if !disks.isEmpty { return "disks are bound at boot" }
        if !shares.isEmpty { return "shares are bound at boot" }
        if network != nil { return "the network is bound at boot" }
        if vsock != nil { return "vsock is bound at boot" }
        guard let initrd, InitrdListing.contains("usr/bin/work-order", in: initrd) else {
            return "the initrd has no usr/bin/work-order for a template's /init"
        }
        return nil
    }

    /// The template's machine: the console, the work-order port, virtio-rng; the command
    /// line says where the order comes.
    public var templateMachine: MachineSpec {
        var devices: [DeviceSpec] = []
        if console == .virtio { devices.append(.console) }
        let port = devices.count
        devices.append(.workOrder)
        if let entropy { devices.append(.entropy(entropy)) }
        var commandLine = commandLine
        commandLine.insertKernelParameters(["microvm.order=/dev/hvc\(port)"])
        return MachineSpec(kernel: kernel, initrds: initrd.map { [$0] } ?? [], commandLine: commandLine, memorySize: memorySize,
                           vcpuCount: vcpuCount, acpi: acpi, console: console, devices: devices)
    }

    /// What /init does in a VM restored from the template.
    public var workOrder: WorkOrder {
        WorkOrder(command: command ?? [])
    }
}
