import VMM

/// The files `--profile FILE` writes: the flat profile, and FILE.folded. Both are opened
/// once the VM is built, so that a run that cannot start leaves them as they were, and
/// before it runs, so that a path that cannot be written fails the run at once.
struct ProfileFiles {
    let flat: OutputFile
    let folded: OutputFile

    /// Refuses either file when it is one of `others`, the run's inputs and other outputs.
    init(path: String, others: [(role: String, identity: InputFile.Identity)]) throws(OutputFile.Error) {
        flat = try OutputFile(path, role: "the profile", others: others)
        folded = try OutputFile(path + ".folded", role: "the profile", others: others + [("the profile \(path)", flat.identity)])
        try flat.truncate(to: 0)
        try folded.truncate(to: 0)
    }

    func write(_ profile: GuestProfile) throws(OutputFile.Error) {
        for (file, text) in [(flat, profile.flat()), (folded, profile.folded)] {
            try file.write(Array(text.utf8)[...])
        }
    }
}
