import Glibc

extension VMSnapshot {
    /// What each disk is now, from the open files (a jailed VM cannot reach their paths).
    static func stamps(_ diskStatus: [stat]) -> [Disk] {
        diskStatus.map { status in
            Disk(size: UInt64(clamping: status.st_size), modified: Int64(status.st_mtim.tv_sec), modifiedNanoseconds: Int64(status.st_mtim.tv_nsec))
        }
    }

    /// The host files behind the saved machine's disks and shares, from the restore's command
    /// line: the disks in order (the Nth is /dev/vd(a+N)), the shares by tag, put in the
    /// machine's order. A disk or share missing or extra, or read-only where the saved one
    /// was not (or the other way round), is refused: the guest's view of it would change.
    /// A template's machine takes up to one disk per slot and any shares, as exports.
    func session(disks given: [VMConfiguration.Disk], shares givenShares: [VMConfiguration.Share]) throws(SnapshotError)
        -> (disks: [VMConfiguration.Disk], shares: [VMConfiguration.Share]) {
        let savedDisks = machine.devices.compactMap { device -> Bool? in
            if case .disk(let readOnly) = device { return readOnly }
            return nil
        }
        let savedShares = machine.devices.compactMap { device -> (tag: String, readOnly: Bool)? in
            if case .share(let tag, let readOnly) = device { return (tag, readOnly) }
            return nil
        }
        let slots = machine.devices.count { $0 == .diskSlot }
        guard given.count == savedDisks.count || slots > 0 && (savedDisks.count...savedDisks.count + slots).contains(given.count) else {
            throw .devicesDiffer("the snapshot has \(Self.count(savedDisks.count, "disk")) and the restore gives \(given.count): "
                + "give each with --disk PATH[,ro], in the order they were attached")
        }
        for (index, (readOnly, disk)) in zip(savedDisks, given).enumerated() where readOnly != disk.readOnly {
            throw .devicesDiffer("disk \(index) (\(disk.path)) was attached " + (readOnly ? "read-only; add ,ro" : "read-write; leave out ,ro"))
        }
        if machine.devices.contains(where: { $0.kind == "exports" }) { return (given, givenShares) }
        for share in givenShares where !savedShares.contains(where: { $0.tag == share.tag }) {
            throw .devicesDiffer("the snapshot has no share tagged \(share.tag)")
        }
        let ordered = try savedShares.map { saved throws(SnapshotError) in
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
