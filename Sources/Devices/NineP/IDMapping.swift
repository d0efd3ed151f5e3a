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
