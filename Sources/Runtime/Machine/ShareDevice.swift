import Devices

extension MachineBuilder {
    /// A 9p device serving the session's directory of this tag. The 9p server opens files
    /// on the vCPU threads.
    func attachShare(tag: String) throws {
        guard let directory = resources.shares[tag] else { throw ConfigurationError.missingShare(tag) }
        try slots.add(Virtio9P(directory: directory, tag: tag))
        needs.insert(.sharing)
    }
}
