import Devices

extension MachineBuilder {
    /// A 9p device serving the session's directory of this tag. The 9p server opens files
    /// on the vCPU threads.
    func attachShare(tag: String) throws {
        guard let directory = resources.shares[tag] else { throw ConfigurationError.missingShare(tag) }
        try slots.add(Virtio9P(directory: directory, tag: tag))
        needs.insert(.sharing)
    }

    /// One 9p device serving every share of the session by its tag, each through an attach
    /// of that name or under the top an attach with no name reaches (the guest mounts it
    /// once and binds each share from there). Bound at the build, before a restore puts
    /// back any fid (each goes back to its export by name).
    func attachExports(tag: String) throws {
        try slots.add(try Virtio9P(tag: tag, exports: resources.shares, top: try SharedDirectory.empty()))
        // Even with no share: the top answers a mount's attach and reads from a directory.
        needs.insert(.sharing)
    }
}
