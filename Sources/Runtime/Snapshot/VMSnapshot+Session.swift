import Glibc

extension VMSnapshot {
    /// How a snapshot keeps `configuration`'s disks and shares: by place and by tag, with
    /// their modes and each disk's size and modification time (`diskStatus`, one per disk,
    /// from the open files: a jailed VM cannot reach their paths), never their host paths.
    static func savedDevices(_ configuration: VMConfiguration, diskStatus: [stat]) -> (disks: [Disk], shares: [Share]) {
        let disks = zip(configuration.disks, diskStatus).map { disk, status in
            Disk(readOnly: disk.readOnly, size: UInt64(clamping: status.st_size), modified: Int64(status.st_mtim.tv_sec),
                 modifiedNanoseconds: Int64(status.st_mtim.tv_nsec))
        }
        return (disks, configuration.shares.map { Share(tag: $0.tag, readOnly: $0.readOnly) })
    }

    /// The host files behind the saved devices, from the restore's command line: the disks
    /// in order (the Nth is /dev/vd(a+N)), the shares by tag, put in the saved order so that
    /// each lands in its slot. A disk or share missing or extra, or read-only where the saved
    /// one was not (or the other way round), is refused: the guest's view of it would change.
    func session(disks given: [VMConfiguration.Disk], shares givenShares: [VMConfiguration.Share]) throws(SnapshotError)
        -> (disks: [VMConfiguration.Disk], shares: [VMConfiguration.Share]) {
        guard given.count == disks.count else {
            throw .devicesDiffer("the snapshot has \(Self.count(disks.count, "disk")) and the restore gives \(given.count): "
                + "give each with --disk PATH[,ro], in the order they were attached")
        }
        for (index, (saved, disk)) in zip(disks, given).enumerated() where saved.readOnly != disk.readOnly {
            throw .devicesDiffer("disk \(index) (\(disk.path)) was attached " + (saved.readOnly ? "read-only; add ,ro" : "read-write; leave out ,ro"))
        }
        for share in givenShares where !shares.contains(where: { $0.tag == share.tag }) {
            throw .devicesDiffer("the snapshot has no share tagged \(share.tag)")
        }
        let ordered = try shares.map { saved throws(SnapshotError) in
            let matching = givenShares.filter { $0.tag == saved.tag }
            guard let share = matching.first else {
                throw .devicesDiffer("the snapshot has a share tagged \(saved.tag); give it with --share DIR:\(saved.tag)\(saved.readOnly ? ",ro" : "")")
            }
            guard matching.count == 1 else { throw .devicesDiffer("the share tag \(saved.tag) is given \(matching.count) times") }
            guard share.readOnly == saved.readOnly else {
                throw .devicesDiffer("the share \(saved.tag) was shared " + (saved.readOnly ? "read-only; add ,ro" : "read-write; leave out ,ro"))
            }
            return share
        }
        return (given, ordered)
    }

    private static func count(_ number: Int, _ noun: String) -> String {
        "\(number) \(noun)\(number == 1 ? "" : "s")"
    }
}
