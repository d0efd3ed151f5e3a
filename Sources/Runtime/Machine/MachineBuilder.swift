import Devices
import Glibc
import KVM
import Memory

/// Puts a machine's devices on the VM being built, each bound to the session's host
/// resources: one `attach…` per kind (in the file named after the kind), called in the
/// spec's order, so that each device lands in the same slot on every build of the spec.
/// What a kind needs beyond its slot (a bus register, an ioeventfd, event-loop work, system
/// calls on the vCPU threads, kernel parameters) it adds here too.
final class MachineBuilder {
    let machine: MachineSpec
    let session: Session
    let resources: SessionResources
    let vm: VirtualMachine
    let mmioBus: Bus
    let slots: VirtioSlots
    let deviceIO: DeviceIO
    let control: RunControl
    /// Where the guest's console output goes (the console's and the log's).
    let consoleWrite: @Sendable (UnsafeRawBufferPointer) -> Void

    var streams: CommandStreams?
    var virtioConsole: VirtioConsole?
    var workOrder: WorkOrderPort?
    /// The system calls the vCPU threads need for these devices.
    var needs = SeccompFilter.Needs()
    /// What binds the session to devices built without it (disk slots, the network, vsock):
    /// run once the devices hold their state, after a restore's or at once for a boot, so
    /// that a guest whose driver already runs hears of the change.
    var bindings: [() throws -> Void] = []

    init(machine: MachineSpec, session: Session, resources: SessionResources, vm: VirtualMachine, mmioBus: Bus, slots: VirtioSlots,
         deviceIO: DeviceIO, control: RunControl, consoleWrite: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) {
        self.machine = machine
        self.session = session
        self.resources = resources
        self.vm = vm
        self.mmioBus = mmioBus
        self.slots = slots
        self.deviceIO = deviceIO
        self.control = control
        self.consoleWrite = consoleWrite
    }

    /// Builds every device of the machine in order.
    func attachDevices() throws {
        guard machine.slotCount <= VirtioSlots.capacity else {
            throw ConfigurationError.tooManyDevices(requested: machine.slotCount, capacity: VirtioSlots.capacity)
        }
        for device in machine.devices {
            switch device {
            case .commandStreams: try attachCommandStreams()
            case .console: try attachConsole()
            case .workOrder: try attachWorkOrder()
            case .disk: try attachDisk()
            case .diskSlot: try attachDiskSlot()
            case .share(let tag, _): try attachShare(tag: tag)
            case .exports(let tag): try attachExports(tag: tag)
            case .network(let mac, let offloads): try attachNetwork(mac: mac, offloads: offloads)
            case .vsock: try attachVsock()
            case .entropy(let limit): try attachEntropy(limit)
            }
        }
    }
}
