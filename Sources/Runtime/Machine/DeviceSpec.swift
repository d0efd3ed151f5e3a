import Devices

/// One device of a machine, as the guest sees it; what backs it on the host is the
/// session's (`Session`). Each kind is built and bound in one place (`MachineBuilder`'s
/// `attach…` for it), which also says what its threads may call and what it adds to the
/// kernel's command line.
public enum DeviceSpec: Equatable, Sendable {
    /// The command's standard streams on two virtio-consoles (hvc0 and hvc1), for a
    /// container runtime (`CommandStreams`).
    case commandStreams
    /// A virtio-console that carries the guest's console (`console=hvc0`).
    case console
    /// The console a template's waiting /init reads its work order from (`WorkOrder`).
    case workOrder
    /// A virtio-blk disk, /dev/vd(a+N) for the Nth; its file is the session's Nth disk.
    case disk(readOnly: Bool)
    /// A virtio-blk disk whose file the session binds after the build, or after a restore
    /// (a template's disks): the guest learns its size from a configuration change. A slot
    /// the session gives no disk stays empty (no sectors).
    case diskSlot
    /// A virtio-9p device with the mount tag `tag`, serving the session's share of that tag.
    case share(tag: String, readOnly: Bool)
    /// A virtio-9p device with the mount tag `tag` serving every share of the session, each
    /// chosen by its tag as the attach's name (`mount -t 9p -o aname=NAME TAG`): a
    /// template's, whose runs each bring their own directories.
    case exports(tag: String)
    /// A virtio-net device with this MAC; whether its backend carries the virtio-net
    /// header (a tap) is fixed when the driver negotiates features.
    case network(mac: [UInt8], offloads: Bool)
    /// A virtio-vsock device (guest CID 3).
    case vsock
    /// A virtio-rng device with this rate limit.
    case entropy(VirtioEntropy.RateLimit)

    var slotCount: Int { self == .commandStreams ? 2 : 1 }

    /// The kind's name in snapshots and messages.
    var kind: String {
        switch self {
        case .commandStreams: "streams"
        case .console: "console"
        case .workOrder: "work-order"
        case .disk: "disk"
        case .diskSlot: "disk-slot"
        case .share: "share"
        case .exports: "exports"
        case .network: "network"
        case .vsock: "vsock"
        case .entropy: "entropy"
        }
    }

    func save(into writer: inout StateWriter) {
        writer.put(kind)
        switch self {
        case .commandStreams, .console, .workOrder, .vsock, .diskSlot: break
        case .exports(let tag): writer.put(tag)
        case .disk(let readOnly): writer.put(readOnly)
        case .share(let tag, let readOnly):
            writer.put(tag)
            writer.put(readOnly)
        case .network(let mac, let offloads):
            writer.put(bytes: mac)
            writer.put(offloads)
        case .entropy(let limit):
            writer.put(limit.bytesPerSecond)
            writer.put(limit.burst)
        }
    }

    init(from reader: inout StateReader) throws(StateError) {
        let kind = try reader.string("device kind", limit: 32)
        switch kind {
        case "streams": self = .commandStreams
        case "console": self = .console
        case "work-order": self = .workOrder
        case "vsock": self = .vsock
        case "disk": self = .disk(readOnly: try reader.bool("disk read-only"))
        case "disk-slot": self = .diskSlot
        case "exports":
            let tag = try reader.string("exports tag", limit: Virtio9P.maximumTagLength)
            guard !tag.isEmpty else { throw .invalid(what: "exports tag") }
            self = .exports(tag: tag)
        case "share":
            let tag = try reader.string("share tag", limit: Virtio9P.maximumTagLength)
            guard !tag.isEmpty else { throw .invalid(what: "share tag") }
            self = .share(tag: tag, readOnly: try reader.bool("share read-only"))
        case "network":
            let mac = try reader.bytes("MAC address", limit: 6)
            guard mac.count == 6 else { throw .invalid(what: "MAC address") }
            self = .network(mac: mac, offloads: try reader.bool("network offloads"))
        case "entropy":
            self = .entropy(VirtioEntropy.RateLimit(bytesPerSecond: try reader.get(UInt64.self, "virtio-rng rate"),
                                                    burst: try reader.get(UInt64.self, "virtio-rng burst")))
        default: throw .invalid(what: "device kind \(kind.prefix(32))")
        }
    }
}
