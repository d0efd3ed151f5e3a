import Boot
import Glibc
@testable import Runtime
import Testing

/// What a template's guest is told (the work order's bytes, as guest/initrd/work-order.c
/// reads them), what a template's key covers, and how the store treats its directory.
@Suite struct WorkOrderTests {
    let clock = timespec(tv_sec: 1_700_000_000, tv_nsec: 5)

    func text(_ order: WorkOrder) throws -> String {
        String(decoding: try order.encoded(clock: clock, entropy: [0x00, 0xff, 0x10]), as: UTF8.self)
    }

    @Test func theOrderIsAHeaderThenLinesThenAScript() throws {
        let order = WorkOrder(command: ["sh", "-c", "echo 'quoted' \"$x\"\nnext", ""], environment: ["A=1", "B=two words"],
                              workingDirectory: "/srv/it's", hostname: "box", root: .disk(readOnly: true), shares: ["data", "logs"],
                              disks: 2, network: true, files: [("/oci/config", [0x61, 0x00, 0x62])])
        let text = try text(order)
        let body = text.split(separator: "\n", maxSplits: 1)[1]
        #expect(text.hasPrefix("microvm-order " + format8(body.utf8.count) + "\n"))
        #expect(text.contains("clock 1700000000 5\nentropy 00ff10\nhostname 626f78\nfile 2f6f63692f636f6e666967 610062\nscript\n"))
        #expect(text.contains("root=/dev/vda\nrootro=1\nshares='data,logs'\ndisks=2\nnet=${net:-dhcp}\nworkdir='/srv/it'\\''s'\n"))
        #expect(text.contains("set -- 'sh' '-c' 'echo '\\''quoted'\\'' \"$x\"\nnext' ''\n"))
        #expect(text.contains("order_environment() {\n    export 'A=1'\n    export 'B=two words'\n    :\n}\n"))
    }

    /// Quoting works on bytes: a quote with a combining mark is one character to Swift, but
    /// the shell sees the quote, which must be escaped like any other.
    @Test func aQuoteFollowedByACombiningMarkIsEscaped() {
        #expect(WorkOrder.quoted("x'\u{301}; reboot -f; #") == "'x'\\''\u{301}; reboot -f; #'")
        #expect(WorkOrder.quoted("it's") == "'it'\\''s'")
    }

    @Test func aHostNameLongerThanLinuxTakesIsRefused() {
        let name = String(repeating: "h", count: 65)
        #expect(throws: WorkOrder.Error.hostname(name)) { try text(WorkOrder(hostname: name)) }
    }

    @Test(arguments: ["NOEQUALS", "=value", "1A=x", "A-B=x", "A B=x"])
    func anEnvironmentWordThatIsNotAnAssignmentIsRefused(word: String) {
        #expect(throws: WorkOrder.Error.environment(word)) { try text(WorkOrder(environment: [word])) }
    }

    @Test func whatNoGuestCanTakeIsRefused() {
        #expect(throws: WorkOrder.Error.nulByte("the word 'a\u{0}b'")) { try text(WorkOrder(command: ["a\u{0}b"])) }
        #expect(throws: WorkOrder.Error.self) { try text(WorkOrder(command: [String(repeating: "x", count: WorkOrder.maximumLength)])) }
    }

    private func format8(_ value: Int) -> String {
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }
}

@Suite struct TemplateStoreTests {
    func machine(_ devices: [DeviceSpec], memory: UInt64 = 64 << 20) -> MachineSpec {
        MachineSpec(kernel: "/nonexistent/kernel", commandLine: KernelCommandLine("console=ttyS0"), memorySize: memory, vcpuCount: 1,
                    acpi: true, console: .serial, devices: devices)
    }

    @Test func theKeyChangesWithTheMachineAndTheKernelFile() throws {
        let directory = TemporaryDirectory()
        directory.write("kernel", "one")
        var first = machine([.workOrder])
        first.kernel = directory.path + "/kernel"
        let key = TemplateStore.key(for: first)
        #expect(key.count == 32 && TemplateStore.key(for: first) == key)
        #expect(TemplateStore.key(for: machine([.workOrder, .diskSlot])) != TemplateStore.key(for: machine([.workOrder])))
        var larger = first
        larger.memorySize *= 2
        #expect(TemplateStore.key(for: larger) != key)
        directory.write("kernel", "changed")
        #expect(TemplateStore.key(for: first) != key)
    }

    @Test func aDirectoryOfAnotherUserOrOpenToOthersIsRefused() throws {
        let directory = TemporaryDirectory()
        let store = TemplateStore(directory: directory.path + "/templates")
        try store.prepare()
        #expect(try store.list().isEmpty)
        #expect(chmod(store.directory, 0o777) == 0)
        #expect(throws: TemplateStore.Error.openToOthers(path: store.directory)) { try store.prepare() }
        #expect(chmod(store.directory, 0o700) == 0)
        if geteuid() == 0 {
            #expect(chown(store.directory, 4321, 4321) == 0)
            #expect(throws: TemplateStore.Error.notOwned(path: store.directory, owner: 4321)) { try store.prepare() }
        }
        #expect(throws: TemplateStore.Error.unknown("../etc")) { try store.remove("../etc") }
    }

    @Test func anInitrdWithoutTheWorkOrderProgramBoots() throws {
        let directory = TemporaryDirectory()
        directory.write("not-cpio", "just text")
        #expect(!InitrdListing.contains("usr/bin/work-order", in: directory.path + "/not-cpio"))
        var archive = [UInt8]()
        for (name, data) in [("usr/bin/work-order", [UInt8](repeating: 1, count: 5)), ("TRAILER!!!", [])] {
            let fields = [1, 0o100755, 0, 0, 1, 0, data.count, 0, 0, 0, 0, name.utf8.count + 1, 0]
            archive += Array("070701".utf8) + fields.flatMap { field in
                let hex = String(field, radix: 16, uppercase: true)
                return Array((String(repeating: "0", count: 8 - hex.count) + hex).utf8)
            }
            archive += Array(name.utf8) + [0]
            archive += [UInt8](repeating: 0, count: (4 - archive.count % 4) % 4) + data
            archive += [UInt8](repeating: 0, count: (4 - archive.count % 4) % 4)
        }
        directory.write("initrd", String(decoding: archive, as: UTF8.self))
        #expect(InitrdListing.contains("usr/bin/work-order", in: directory.path + "/initrd"))
        #expect(!InitrdListing.contains("usr/bin/other", in: directory.path + "/initrd"))
    }
}
