import Devices
import Glibc

/// A session's host files and sockets, opened for a machine before KVM is: a path that
/// cannot be used fails the run before anything else is built.
struct SessionResources {
    /// The machine's disks' files, in order.
    var disks: [DiskFile] = []
    /// The shares' directories, by tag.
    var shares: [String: SharedDirectory] = [:]
    var network: NetworkBackend?
    /// passt, when microvm started it for the network device.
    var passt: PasstProcess?
    var vsockListener: ListeningSocket?

    /// Opens what `session` gives for `machine`'s devices. The session's disks are the
    /// machine's in number and mode (up to as many more as it has disk slots), its shares
    /// the machine's by tag (any, for a machine that serves exports).
    init(_ session: Session, for machine: MachineSpec) throws {
        let disks = machine.devices.compactMap { device -> Bool? in
            if case .disk(let readOnly) = device { return readOnly }
            return nil
        }
        let slots = machine.devices.count { $0 == .diskSlot }
        guard (disks.count...disks.count + slots).contains(session.disks.count),
              zip(session.disks, disks).allSatisfy({ $0.readOnly == $1 }) else {
            throw ConfigurationError.disksDiffer(machine: disks.count + slots, session: session.disks.count)
        }
        let tags = machine.devices.compactMap { device -> String? in
            if case .share(let tag, _) = device { return tag }
            return nil
        }
        try Self.checkTags(session.shares)
        let exports = machine.devices.contains { $0.kind == "exports" }
        if !exports, let extra = session.shares.first(where: { !tags.contains($0.tag) }) { throw ConfigurationError.missingShare(extra.tag) }
        self.disks = try session.disks.map { disk throws(DiskFile.Error) in try DiskFile(path: disk.path, readOnly: disk.readOnly) }
        for share in session.shares {
            shares[share.tag] = try SharedDirectory(path: share.path, readOnly: share.readOnly, keepsSetID: share.keepsSetID,
                                                    visibleEntries: share.visibleEntries, userIDs: share.userIDs, groupIDs: share.groupIDs)
        }
        if machine.devices.contains(where: { $0.kind == "vsock" }), let path = session.vsock {
            vsockListener = ListeningSocket(try UnixSocket.listen(at: path))
        }
        if machine.devices.contains(where: { $0.kind == "network" }), let backend = session.network {
            switch backend {
            case .tap(let name):
                network = try TapNetwork(name: name)
            case .passt(let path):
                if let path {
                    network = StreamNetwork(socket: try PasstProcess.connect(to: path))
                } else {
                    let process = try PasstProcess()
                    network = StreamNetwork(socket: process.socket)
                    passt = process
                }
            }
        }
    }

    /// Tags name shares on the kernel command line and in /mnt: one word each, unique, and
    /// short enough for the device's config space.
    static func checkTags(_ shares: [VMConfiguration.Share]) throws(ConfigurationError) {
        var seen: Set<String> = []
        for share in shares {
            let allowed = share.tag.utf8.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte) || byte == 0x2d || byte == 0x5f || byte == 0x2e
            }
            guard !share.tag.isEmpty, allowed, share.tag != ".", share.tag != ".." else { throw .badShareTag(share.tag) }
            guard share.tag.utf8.count <= Virtio9P.maximumTagLength else {
                throw .shareTagTooLong(share.tag, maximum: Virtio9P.maximumTagLength)
            }
            guard seen.insert(share.tag).inserted else { throw .duplicateShareTag(share.tag) }
        }
    }
}

/// A listening socket's descriptor, closed with this value unless a device took it: a
/// build that fails after opening it (a template found damaged, then made again) frees
/// the path for the next try.
final class ListeningSocket {
    private var fd: Int32

    init(_ fd: Int32) {
        self.fd = fd
    }

    /// Hands the descriptor on; whoever takes it closes it.
    func take() -> Int32 {
        defer { fd = -1 }
        return fd
    }

    deinit {
        if fd >= 0 { close(fd) }
    }
}
