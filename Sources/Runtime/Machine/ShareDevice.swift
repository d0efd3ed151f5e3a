import Devices

extension MachineBuilder {
    /// A 9p device serving the session's directory of this tag. The 9p server opens files
    /// on the vCPU threads.
    func attachShare(tag: String) throws {
        guard let directory = resources.shares[tag] else { throw ConfigurationError.missingShare(tag) }
        try slots.add(Virtio9P(directory: directory, tag: tag))
        needs.insert(.sharing)
    }

    /// One 9p device serving every share of the session by its tag. Bound at the build,
    /// before a restore puts back any fid (each goes back to its export by name).
    func attachExports(tag: String) throws {
        try slots.add(try Virtio9P(tag: tag, exports: resources.shares))
        if !resources.shares.isEmpty { needs.insert(.sharing) }
    }
}
