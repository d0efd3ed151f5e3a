import Devices
import KVM
import X86

/// What a snapshot holds besides guest RAM: the machine the VM was built as, a fingerprint
/// of the host's CPU, the KVM state of the VM and of each vCPU, and each device's state
/// under its key. It names no host path: the files a restored VM opens come from the
/// restore's session (`session(disks:shares:)`), the memory file is the state file's
/// path with `.mem` added. `file` and `init(_:)` map it to and from sections.
struct VMSnapshot: Equatable {
    /// What a disk was when the snapshot was taken, by its place (the Nth is /dev/vd(a+N)):
    /// the guest's page cache holds its blocks as they were then.
    struct Disk: Equatable {
        var size: UInt64
        var modified: Int64
        var modifiedNanoseconds: Int64
    }

    /// A device's saved state and whose it is: the device's kind and its slot among the
    /// devices of that kind, so that a state only ever goes back into a device like the one
    /// that saved it.
    struct DeviceState: Equatable {
        var kind: String
        var slot: UInt32
        var state: [UInt8]
    }

    var machine: MachineSpec
    /// One for each of the machine's disks.
    var disks: [Disk]
    var hostCPU: UInt64
    var vm: VMSavedState
    var cpus: [VCPUSavedState]
    /// Each device's state, in the order the VM builds them.
    var devices: [DeviceState]
    var exitStatus: Int32?

    static let maximumBlob = 1 << 20

    var file: SnapshotFile {
        var file = SnapshotFile()
        var configuration = StateWriter()
        machine.save(into: &configuration)
        configuration.put(UInt32(disks.count))
        for disk in disks {
            configuration.put(disk.size)
            configuration.put(disk.modified)
            configuration.put(disk.modifiedNanoseconds)
        }
        file.append("CONF", configuration.bytes)
        var host = StateWriter()
        host.put(hostCPU)
        file.append("HOST", host.bytes)
        var kvm = StateWriter()
        for chip in vm.interruptControllers { kvm.put(bytes: chip) }
        kvm.put(bytes: vm.timer)
        kvm.put(bytes: vm.clock)
        file.append("VMST", kvm.bytes)
        for cpu in cpus {
            var writer = StateWriter()
            for part in [cpu.registers, cpu.specialRegisters, cpu.extendedState, cpu.extendedControlRegisters, cpu.debugRegisters,
                         cpu.localAPIC, cpu.events, cpu.multiprocessingState, cpu.cpuid] {
                writer.put(bytes: part)
            }
            writer.put(UInt32(cpu.msrs.count))
            for msr in cpu.msrs {
                writer.put(msr.index)
                writer.put(msr.value)
            }
            file.append("VCPU", writer.bytes)
        }
        for device in devices {
            var writer = StateWriter()
            writer.put(device.kind)
            writer.put(device.slot)
            writer.put(bytes: device.state)
            file.append("DEVS", writer.bytes)
        }
        if let exitStatus {
            var writer = StateWriter()
            writer.put(exitStatus)
            file.append("EXIT", writer.bytes)
        }
        return file
    }

    init(machine: MachineSpec, disks: [Disk], hostCPU: UInt64, vm: VMSavedState, cpus: [VCPUSavedState],
         devices: [DeviceState], exitStatus: Int32?) {
        self.machine = machine
        self.disks = disks
        self.hostCPU = hostCPU
        self.vm = vm
        self.cpus = cpus
        self.devices = devices
        self.exitStatus = exitStatus
    }

    init(_ file: SnapshotFile) throws(SnapshotError) {
        do throws(StateError) {
            var configuration = try Self.single(file, "CONF")
            machine = try MachineSpec(from: &configuration)
            let diskCount = Int(try configuration.get(UInt32.self, "disk count"))
            guard diskCount == machine.devices.count(where: { $0.kind == "disk" }) else { throw StateError.invalid(what: "disk count") }
            disks = []
            for _ in 0..<diskCount {
                disks.append(Disk(size: try configuration.get(UInt64.self, "disk size"), modified: try configuration.get(Int64.self, "disk time"),
                                  modifiedNanoseconds: try configuration.get(Int64.self, "disk time")))
            }
            var tags: Set<String> = []
            for case .share(let tag, _) in machine.devices where !tags.insert(tag).inserted {
                throw StateError.invalid(what: "share tags (\(tag) twice)")
            }
            try configuration.finish("configuration")
            var host = try Self.single(file, "HOST")
            hostCPU = try host.get(UInt64.self, "host CPU")
            var kvm = try Self.single(file, "VMST")
            vm = VMSavedState(interruptControllers: try (0..<3).map { _ throws(StateError) in try kvm.bytes("irqchip", limit: Self.maximumBlob) },
                              timer: try kvm.bytes("PIT", limit: Self.maximumBlob), clock: try kvm.bytes("kvmclock", limit: Self.maximumBlob))
            try kvm.finish("VM state")
            cpus = []
            for payload in file.payloads("VCPU") {
                var reader = StateReader(payload)
                var parts: [[UInt8]] = []
                for what in ["registers", "special registers", "XSAVE", "XCRs", "debug registers", "LAPIC", "events", "MP state", "CPUID"] {
                    parts.append(try reader.bytes(what, limit: Self.maximumBlob))
                }
                let msrCount = Int(try reader.get(UInt32.self, "MSR count"))
                guard msrCount <= 4096 else { throw StateError.invalid(what: "MSR count") }
                var msrs: [ModelSpecificRegister] = []
                for _ in 0..<msrCount { msrs.append(ModelSpecificRegister(try reader.get(UInt32.self, "MSR"), try reader.get(UInt64.self, "MSR"))) }
                try reader.finish("vCPU state")
                cpus.append(VCPUSavedState(registers: parts[0], specialRegisters: parts[1], extendedState: parts[2],
                                           extendedControlRegisters: parts[3], debugRegisters: parts[4], localAPIC: parts[5],
                                           events: parts[6], multiprocessingState: parts[7], cpuid: parts[8], msrs: msrs))
            }
            guard cpus.count == machine.vcpuCount else { throw StateError.invalid(what: "vCPU states (\(cpus.count) for \(machine.vcpuCount) vCPUs)") }
            devices = try file.payloads("DEVS").map { payload throws(StateError) in
                var reader = StateReader(payload)
                let device = DeviceState(kind: try reader.string("device kind", limit: 32), slot: try reader.get(UInt32.self, "device slot"),
                                         state: try reader.bytes("device state", limit: SnapshotFile.maximumSectionLength))
                try reader.finish("device entry")
                return device
            }
            if let payload = file.payloads("EXIT").first {
                var reader = StateReader(payload)
                exitStatus = try reader.get(Int32.self, "exit status")
            } else {
                exitStatus = nil
            }
        } catch {
            throw .malformed(error.description)
        }
        let known: Set<String> = ["CONF", "HOST", "VMST", "VCPU", "DEVS", "EXIT"]
        if let unknown = file.sections.first(where: { !known.contains($0.tag) }) {
            throw .malformed("unknown section \(unknown.tag)")
        }
    }

    private static func single(_ file: SnapshotFile, _ tag: String) throws(StateError) -> StateReader {
        let payloads = file.payloads(tag)
        guard payloads.count == 1 else { throw .invalid(what: "\(tag) section (\(payloads.count) of them)") }
        return StateReader(payloads[0])
    }

    /// A fingerprint of what KVM offers guests on this host: a snapshot's vCPUs were set
    /// up from it, and one restored where it differs could meet features that are gone.
    /// The words that name the host core the ioctl ran on (APIC IDs) are left out.
    static func hostFingerprint(_ supported: [CPUIDEntry]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for entry in supported {
            var words = [entry.function, entry.index, entry.flags, entry.eax, entry.ebx, entry.ecx, entry.edx]
            switch entry.function {
            case 0x1: words[4] &= 0x00ff_ffff
            case 0xb, 0x1f: words[6] = 0
            case 0x8000_001e: words[3] = 0; words[4] &= ~0xff
            default: break
            }
            for word in words {
                for shift in stride(from: 0, to: 32, by: 8) {
                    hash = (hash ^ UInt64((word >> UInt32(shift)) & 0xff)) &* 0x100_0000_01b3
                }
            }
        }
        return hash
    }
}
