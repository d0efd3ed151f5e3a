import Glibc
@testable import OCI
import Testing
import VMM

struct ContainerPlanTests {
    static let guest = (kernel: "/k/bzImage", initrd: "/k/initrd.cpio")

    private func records(_ plan: ContainerPlan) -> [String] {
        plan.records.map { "\($0.key)=\($0.value)" }
    }

    @Test func makesTheVMAndTheGuestsRecords() throws {
        let bundle = try Bundle(config: Bundle.config(extra: """
            , "mounts": [
              {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec"]},
              {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
              {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
              {"destination": "/dev/shm", "type": "bind", "source": "/nonexistent/shm", "options": ["bind", "nodev"]},
              {"destination": "/data", "type": "bind", "source": "\(try Bundle.dataPath())", "options": ["rbind", "ro", "rprivate"]}
            ], "annotations": {"org.microvm.memory": "512M", "org.microvm.cpus": "2", "org.microvm.network": "none"}
            """))
        let plan = try ContainerPlan(spec: try bundle.spec, guest: Self.guest)
        let configuration = plan.configuration
        #expect(configuration.kernel == "/k/bzImage" && configuration.initrd == "/k/initrd.cpio")
        #expect(configuration.appendedInitrds.isEmpty)
        #expect(configuration.memorySize == 512 << 20 && configuration.vcpuCount == 2)
        #expect(configuration.network == nil && configuration.commandStreams && configuration.seccomp)
        #expect(configuration.shares == [
            VMConfiguration.Share(path: bundle.path + "/rootfs", tag: VMConfiguration.Share.rootTag, readOnly: true),
            VMConfiguration.Share(path: try Bundle.dataPath(), tag: "oci0", readOnly: true),
        ])
        let nosuid = Int(MS_NOSUID), noexec = Int(MS_NOEXEC), strict = Int(MS_STRICTATIME), nodev = Int(MS_NODEV)
        let bind = Int(MS_BIND | MS_REC), readOnly = Int(MS_RDONLY)
        #expect(records(plan) == [
            "share=oci0 1",
            "mount=proc", "source=proc", "target=/proc", "flags=\(nosuid | noexec)", "data=",
            "mount=tmpfs", "source=tmpfs", "target=/dev", "flags=\(nosuid | strict)", "data=mode=755,size=65536k",
            "mount=tmpfs", "source=shm", "target=/dev/shm", "flags=\(nodev)", "data=mode=1777",
            "mount=bind", "source=/run/oci/oci0", "target=/data", "flags=\(bind | readOnly)", "data=",
            "devices=1", "hostname=box", "cwd=/work", "uid=1000", "gid=100", "group=5", "group=6", "umask=18",
            "rlimit=7 512 1024", "arg=sh", "arg=-c", "arg=echo hi; exit 7", "env=PATH=/bin", "env=A=b c",
        ])
    }

    @Test func filesAreSharedThroughTheirDirectoryOnce() throws {
        let bundle = try Bundle(config: "{}")
        try bundle.write("data/hosts", "127.0.0.1 localhost\n")
        try bundle.write("data/hostname", "box\n")
        try bundle.write("config.json", Bundle.config(extra: """
            , "mounts": [
              {"destination": "/etc/hosts", "type": "bind", "source": "\(bundle.path)/data/hosts", "options": ["bind"]},
              {"destination": "/etc/hostname", "type": "bind", "source": "\(bundle.path)/data/hostname", "options": ["bind"]}
            ]
            """))
        let plan = try ContainerPlan(spec: try bundle.spec, guest: Self.guest)
        #expect(plan.configuration.shares.map(\.tag) == [VMConfiguration.Share.rootTag, "oci0"])
        #expect(plan.configuration.shares[1].path == bundle.path + "/data" && !plan.configuration.shares[1].readOnly)
        #expect(records(plan).filter { $0.hasPrefix("source=") } == ["source=/run/oci/oci0/hosts", "source=/run/oci/oci0/hostname"])
        #expect(plan.configuration.network == .passt(socket: nil))
    }

    @Test func theArchiveHoldsTheRecords() throws {
        let bundle = try Bundle(config: Bundle.config())
        let plan = try ContainerPlan(spec: try bundle.spec, guest: Self.guest)
        let archive = plan.configArchive
        #expect(archive.count % 4 == 0)
        #expect(Array(archive.prefix(6)) == Array("070701".utf8))
        let text = String(decoding: archive, as: UTF8.self)
        #expect(text.contains("oci/config\0"))
        #expect(text.contains("arg=echo hi; exit 7\0env=PATH=/bin\0"))
        #expect(text.contains("TRAILER!!!"))
    }

    @Test(arguments: [
        (#", "annotations": {"org.microvm.memory": "lots"}"#, "org.microvm.memory"),
        (#", "annotations": {"org.microvm.cpus": "0"}"#, "org.microvm.cpus"),
        (#", "annotations": {"org.microvm.network": "tap"}"#, "give passt or none"),
        (#", "mounts": [{"destination": "/x", "type": "nfs", "source": "server:/"}]"#, "has type \"nfs\""),
        (#", "mounts": [{"destination": "/x", "type": "bind", "source": "/nonexistent/dir"}]"#, "does not exist"),
        (#", "process": {"args": ["a\u0000b"]}, "root": {"path": "rootfs"}"#, "NUL byte"),
    ])
    func refusesWhatTheVMCannotDo(extra: String, message: String) throws {
        let bundle = try Bundle(config: Bundle.config(extra: extra))
        do {
            _ = try ContainerPlan(spec: try bundle.spec, guest: Self.guest)
            Issue.record("accepted: \(extra)")
        } catch let error as OCIError {
            #expect(error.description.contains(message), "\(error)")
        }
    }

    @Test func aMissingRootIsRefused() throws {
        let bundle = try Bundle(config: Bundle.config(root: "nowhere"))
        #expect(throws: OCIError.bundle("the root file system \(bundle.path)/nowhere is not a directory")) {
            try ContainerPlan(spec: try bundle.spec, guest: Self.guest)
        }
    }

    @Test func tooManyDirectoriesAreRefused() throws {
        let bundle = try Bundle(config: "{}")
        var mounts: [String] = []
        for index in 0..<VMConfiguration.virtioSlotCount {
            mkdir(bundle.path + "/d\(index)", 0o755)
            mounts.append(#"{"destination": "/d\#(index)", "type": "bind", "source": "\#(bundle.path)/d\#(index)"}"#)
        }
        try bundle.write("config.json", Bundle.config(extra: #", "mounts": ["# + mounts.joined(separator: ",") + "]"))
        #expect(throws: OCIError.self) { try ContainerPlan(spec: try bundle.spec, guest: Self.guest) }
    }
}

extension Bundle {
    /// A directory that exists on every host, for bind mounts.
    static func dataPath() throws -> String { "/tmp" }
}
