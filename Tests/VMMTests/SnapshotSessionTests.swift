@testable import Devices
import Boot
import Glibc
@testable import KVM
import Memory
@testable import Runtime
import Testing

/// What a snapshot keeps of the host (nothing by path), how a restore binds its disks and
/// shares by name, and the files a snapshot reads and writes.
@Suite struct SnapshotSessionTests {
    func snapshot(disks: [Bool], shares: [(tag: String, readOnly: Bool)], stamps: [VMSnapshot.Disk]? = nil) -> VMSnapshot {
        let devices = disks.map { DeviceSpec.disk(readOnly: $0) } + shares.map { DeviceSpec.share(tag: $0.tag, readOnly: $0.readOnly) }
        return VMSnapshot(machine: MachineSpec(kernel: "", commandLine: KernelCommandLine("console=ttyS0"), memorySize: 16 << 20, vcpuCount: 1,
                                               acpi: false, console: .serial, devices: devices),
                   disks: stamps ?? disks.map { _ in VMSnapshot.Disk(size: 0, modified: 0, modifiedNanoseconds: 0) }, hostCPU: 1,
                   vm: VMSavedState(interruptControllers: [[1], [2], [3]], timer: [4], clock: [5]),
                   cpus: [VCPUSavedState(registers: [1], specialRegisters: [2], extendedState: [3], extendedControlRegisters: [4],
                                         debugRegisters: [5], localAPIC: [6], events: [7], multiprocessingState: [8], cpuid: [9], msrs: [])],
                   devices: [], exitStatus: nil)
    }

    @Test func theStateFileNamesNoHostPath() throws {
        let directory = TemporaryDirectory()
        directory.write("root-disk.img", String(repeating: "d", count: 4096))
        let configuration = VMConfiguration(kernel: directory.path + "/kernel-image",
                                            disks: [.init(path: directory.path + "/root-disk.img", readOnly: true)],
                                            shares: [.init(path: "/etc", tag: "config", readOnly: false)])
        var diskStatus = stat()
        #expect(stat(directory.path + "/root-disk.img", &diskStatus) == 0)
        let stamps = VMSnapshot.stamps([diskStatus])
        #expect(stamps == [.init(size: 4096, modified: stamps[0].modified, modifiedNanoseconds: stamps[0].modifiedNanoseconds)])
        var machine = configuration.machine
        machine.kernel = ""
        machine.initrds = []
        var saved = snapshot(disks: [true], shares: [("config", false)], stamps: stamps)
        saved.machine = machine
        let bytes = saved.file.encoded()
        let text = String(decoding: bytes, as: UTF8.self)
        for path in [directory.path, "root-disk.img", "/etc", "kernel-image"] {
            #expect(!text.contains(path), "the state file holds \(path)")
        }
        // The restore's command line says where each device is now.
        let restored = try VMSnapshot(SnapshotFile.decode(bytes))
        let session = try restored.session(disks: [.init(path: "/elsewhere/disk.img", readOnly: true)],
                                           shares: [.init(path: "/srv/config", tag: "config")])
        #expect(session.disks == [.init(path: "/elsewhere/disk.img", readOnly: true)])
        #expect(session.shares == [.init(path: "/srv/config", tag: "config")])
    }

    @Test func sharesAreMatchedByTagAndKeepTheirSlots() throws {
        let saved = snapshot(disks: [], shares: [("a", false), ("b", true)])
        let session = try saved.session(disks: [], shares: [.init(path: "/b", tag: "b", readOnly: true), .init(path: "/a", tag: "a")])
        #expect(session.shares.map(\.path) == ["/a", "/b"])
    }

    @Test(arguments: [
        ([], [], "the snapshot has 2 disks and the restore gives 0: give each with --disk PATH[,ro], in the order they were attached"),
        (["/x", "/y,ro", "/z"], [], "the snapshot has 2 disks and the restore gives 3: give each with --disk PATH[,ro], in the order they were attached"),
        (["/x,ro", "/y,ro"], [], "disk 0 (/x) was attached read-write; leave out ,ro"),
        (["/x", "/y"], [], "disk 1 (/y) was attached read-only; add ,ro"),
        (["/x", "/y,ro"], ["/d:data", "/e:extra"], "the snapshot has no share tagged extra"),
        (["/x", "/y,ro"], [], "the snapshot has a share tagged data; give it with --share DIR:data"),
        (["/x", "/y,ro"], ["/d:data,ro"], "the share data was shared read-write; leave out ,ro"),
        (["/x", "/y,ro"], ["/d:data", "/e:data"], "the share tag data is given 2 times"),
    ])
    func devicesThatDoNotMatchAreRefused(disks: [String], shares: [String], reason: String) {
        let saved = snapshot(disks: [false, true], shares: [("data", false)])
        let givenDisks = disks.map { VMConfiguration.Disk(path: $0.replacingSuffix(",ro"), readOnly: $0.hasSuffix(",ro")) }
        let givenShares = shares.map { share in
            let parts = share.replacingSuffix(",ro").split(separator: ":")
            return VMConfiguration.Share(path: String(parts[0]), tag: String(parts[1]), readOnly: share.hasSuffix(",ro"))
        }
        #expect(throws: SnapshotError.devicesDiffer(reason)) { try saved.session(disks: givenDisks, shares: givenShares) }
        #expect(SnapshotError.devicesDiffer(reason).description == "the restore's devices do not match the snapshot's: \(reason)")
    }

    @Test func deviceStatesGoOnlyToADeviceOfTheirKindAndSlot() throws {
        let serial = Serial16550(interrupt: RecordingLine()) { _ in }
        let saved = MicroVM.savedStates([serial, I8042 {}])
        #expect(saved.map(\.kind) == ["serial", "i8042"])
        try MicroVM.restoreStates(saved, into: [Serial16550(interrupt: RecordingLine()) { _ in }, I8042 {}])
        #expect(throws: SnapshotError.malformed("its devices are serial#0, i8042#0, this VM's are i8042#0, serial#0")) {
            try MicroVM.restoreStates(saved, into: [I8042 {}, Serial16550(interrupt: RecordingLine()) { _ in }])
        }
        let disks = [VirtioBlock(backend: MemoryDisk(sectors: 8), identifier: "a"), VirtioBlock(backend: MemoryDisk(sectors: 8), identifier: "b")]
        let memory = try GuestMemory(size: 1 << 20)
        let transports = disks.map { VirtioMMIOTransport(device: $0, memory: memory, interrupt: RecordingLine()) { _ in } }
        #expect(MicroVM.savedStates(transports).map { "\($0.kind)#\($0.slot)" } == ["virtio-2#0", "virtio-2#1"])
    }

    @Test func aNinePStateGoesBackOnlyToTheShareOfItsTag() throws {
        let directory = TemporaryDirectory()
        let share = { (tag: String) in Virtio9P(directory: try SharedDirectory(path: directory.path, readOnly: true), tag: tag) }
        let saved = savedBytes(try share("data"))
        var reader = StateReader(saved)
        try share("data").restoreState(from: &reader)
        var other = StateReader(saved)
        #expect(throws: StateError.invalid(what: "9p share tag")) { try share("logs").restoreState(from: &other) }
    }

    @Test func aSymbolicLinkAtTheTemporaryNameIsNotFollowed() throws {
        let directory = TemporaryDirectory()
        directory.write("victim", "kept")
        let path = directory.path + "/vm.snap.mem"
        #expect(symlink(directory.path + "/victim", path + ".partial") == 0)
        #expect(throws: SnapshotError.leftover(path: path + ".partial")) { try SnapshotOutput(path) }
        #expect(directory.read("victim") == "kept")
        var status = stat()
        #expect(lstat(path + ".partial", &status) == 0 && status.st_mode & S_IFMT == S_IFLNK)
        // A dangling one is not created through either.
        #expect(unlink(directory.path + "/victim") == 0)
        #expect(throws: SnapshotError.leftover(path: path + ".partial")) { try SnapshotOutput(path) }
        #expect(access(directory.path + "/victim", F_OK) != 0)
    }

    @Test func anOutputIsWrittenThenRenamedAndRemovedIfNotCommitted() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/vm.snap"
        do {
            let output = try SnapshotOutput(path)
            try output.write(Array("abandoned".utf8))
        }
        #expect(access(path + ".partial", F_OK) != 0 && access(path, F_OK) != 0)
        let output = try SnapshotOutput(path)
        try output.write(Array("state".utf8))
        try output.commit()
        #expect(directory.read("vm.snap") == "state")
        #expect(access(path + ".partial", F_OK) != 0)
    }

    /// (A FIFO is refused too: SnapshotSafetyTests, whose child processes can time out.)
    @Test func aMemoryFileMustBeOfTheGuestsSizeAndNotOpenForWriting() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/vm.snap.mem"
        directory.write("vm.snap.mem", String(repeating: "m", count: 8192))
        #expect(throws: SnapshotError.memoryFile(path: path, reason: "it holds 8192 bytes, and the snapshot's guest has 1048576")) {
            try MemoryFile(path: path, size: 1 << 20)
        }
        do {
            let memory = try MemoryFile(path: path, size: 8192)
            #expect(try memory.map().read(at: GuestAddress(0), count: 2) == [0x6d, 0x6d])
        }
        // A writer already there could change the guest's memory under it.
        let writer = open(path, O_WRONLY)
        defer { close(writer) }
        #expect(throws: SnapshotError.memoryFile(path: path, reason: "another process has it open for writing")) {
            try MemoryFile(path: path, size: 8192)
        }
    }
}

/// The guard's SIGBUS handler, in a child forked after the mapping was made and the file
/// truncated: the child's first read of a page past the end must end it with the line and
/// status 1, not a crash. The child runs only a load, dup2 and what the handler does.
@Suite struct MemoryFileGuardTests {
    @Test func aReadOfGuestMemoryPastTheShrunkFileEndsWithOneLine() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/vm.snap.mem"
        directory.write("vm.snap.mem", String(repeating: "m", count: 2 << 20))
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        let memory = try GuestMemory(size: 2 << 20, privatelyMapping: fd)
        let watch = try #require(MemoryFileGuard.watch(fd: fd, path: path, memory: memory))
        defer { MemoryFileGuard.release(watch) }
        #expect(MemoryFileGuard.shrunkMessage(for: memory) == MemoryFileGuard.shrunk(path))
        #expect(truncate(path, 0) == 0)
        var pipe: [Int32] = [0, 0]
        #expect(Glibc.pipe(&pipe) == 0)
        let page = UnsafeRawPointer(memory.regions[0].host + (1 << 20))
        let child = fork()
        if child == 0 {
            dup2(pipe[1], STDERR_FILENO)
            _ = page.load(as: UInt8.self)
            _exit(3)
        }
        close(pipe[1])
        var status: Int32 = 0
        #expect(waitpid(child, &status, 0) == child)
        var buffer = [UInt8](repeating: 0, count: 8192)
        let count = read(pipe[0], &buffer, buffer.count)
        close(pipe[0])
        #expect(status & 0x7f == 0 && (status >> 8) & 0xff == 1, "wait status \(status)")
        #expect(String(decoding: buffer.prefix(max(0, count)), as: UTF8.self) == "microvm: \(MemoryFileGuard.shrunk(path))\n")
    }
}

private extension String {
    func replacingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
