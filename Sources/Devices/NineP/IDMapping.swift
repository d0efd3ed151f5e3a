/// One range of an OCI `linux.uidMappings`/`gidMappings` list: guest ids
/// `containerID..<containerID+size` are host ids `hostID..<hostID+size`. A share with
/// mappings gives what the guest creates the mapped host owner, and shows host owners
/// to the guest mapped back; an id outside every range is the overflow id (65534).
public struct IDMapping: Equatable, Sendable {
    public var containerID: UInt32
    public var hostID: UInt32
    public var size: UInt32

    public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
        self.containerID = containerID
        self.hostID = hostID
        self.size = size
    }
}

extension [IDMapping] {
    /// The host id for a guest's id: itself where there are no mappings, nil where no range holds it.
    func hostID(forGuest id: UInt32) -> UInt32? {
        guard !isEmpty else { return id }
        for range in self where id >= range.containerID && id - range.containerID < range.size {
            return range.hostID.addingReportingOverflow(id - range.containerID).overflow ? nil : range.hostID + (id - range.containerID)
        }
        return nil
    }

    /// The id the guest sees for a host id: itself where there are no mappings, the
    /// overflow id where no range holds it.
    func guestID(forHost id: UInt32) -> UInt32 {
        guard !isEmpty else { return id }
        for range in self where id >= range.hostID && id - range.hostID < range.size {
            let (guest, overflow) = range.containerID.addingReportingOverflow(id - range.hostID)
            return overflow ? IDMapping.overflowID : guest
        }
        return IDMapping.overflowID
    }
}

extension IDMapping {
    /// What an unmapped owner shows as (Linux's overflowuid and overflowgid).
    public static let overflowID: UInt32 = 65534
}
