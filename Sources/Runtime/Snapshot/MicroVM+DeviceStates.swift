import Devices

/// Device states in a snapshot, each under its key (design.md, Stage 3: states keyed by
/// device type and slot): the device's kind and its place among the devices of that kind,
/// so that the Nth disk's state goes to the Nth disk and to nothing else.
extension MicroVM {
    static func savedStates(_ devices: [StatefulDevice]) -> [VMSnapshot.DeviceState] {
        zip(devices, keys(devices)).map { device, key in
            var writer = StateWriter()
            device.saveState(into: &writer)
            return VMSnapshot.DeviceState(kind: key.kind, slot: key.slot, state: writer.bytes)
        }
    }

    /// Puts each saved state back into the device of its key; refuses states whose keys are
    /// not this VM's devices, in their order.
    static func restoreStates(_ states: [VMSnapshot.DeviceState], into devices: [StatefulDevice]) throws(SnapshotError) {
        let keys = keys(devices)
        guard states.map({ Key(kind: $0.kind, slot: $0.slot) }) == keys else {
            let saved = states.map { "\($0.kind)#\($0.slot)" }.joined(separator: ", ")
            let built = keys.map { "\($0.kind)#\($0.slot)" }.joined(separator: ", ")
            throw .malformed("its devices are \(saved), this VM's are \(built)")
        }
        for (device, saved) in zip(devices, states) {
            var reader = StateReader(saved.state)
            do throws(StateError) {
                try device.restoreState(from: &reader)
                try reader.finish("state of \(saved.kind) #\(saved.slot)")
            } catch {
                throw .malformed(error.description)
            }
        }
    }

    struct Key: Equatable {
        var kind: String
        var slot: UInt32
    }

    static func keys(_ devices: [StatefulDevice]) -> [Key] {
        var counts: [String: UInt32] = [:]
        return devices.map { device in
            let kind = switch device {
            case is Serial16550: "serial"
            case is I8042: "i8042"
            case let transport as VirtioMMIOTransport: "virtio-\(transport.device.deviceType)"
            default: String(describing: type(of: device))
            }
            defer { counts[kind, default: 0] += 1 }
            return Key(kind: kind, slot: counts[kind, default: 0])
        }
    }
}
