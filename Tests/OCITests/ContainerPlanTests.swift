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
        // Only the bound files: the directory may hold what the container was not given (Podman's holds config.json).
        #expect(plan.configuration.shares[1].visibleEntries == ["hosts", "hostname"])
        #expect(plan.configuration.shares[0].visibleEntries == nil)
        #expect(records(plan).filter { $0.hasPrefix("source=") } == ["source=/run/oci/oci0/hosts", "source=/run/oci/oci0/hostname"])
        #expect(plan.configuration.network == .passt(socket: nil))
    }

    @Test func aDirectoryAndAFileFromItGetSharesOfTheirOwn() throws {
        let bundle = try Bundle(config: "{}")
        try bundle.write("data/hosts", "127.0.0.1 localhost\n")
        try bundle.write("data/secret", "not for the guest\n")
        try bundle.write("config.json", Bundle.config(extra: """
            , "mounts": [
              {"destination": "/etc/hosts", "type": "bind", "source": "\(bundle.path)/data/hosts", "options": ["bind"]},
              {"destination": "/data", "type": "bind", "source": "\(bundle.path)/data", "options": ["bind"]},
              {"destination": "/ro/hosts", "type": "bind", "source": "\(bundle.path)/data/hosts", "options": ["bind", "ro"]}
            ]
            """))
        let plan = try ContainerPlan(spec: try bundle.spec, guest: Self.guest)
        let shares = plan.configuration.shares
        #expect(shares.map(\.tag) == [VMConfiguration.Share.rootTag, "oci0", "oci1", "oci2"])
        #expect(shares.dropFirst().allSatisfy { $0.path == bundle.path + "/data" })
        #expect(shares.map(\.visibleEntries) == [nil, ["hosts"], nil, ["hosts"]])
        #expect(shares.map(\.readOnly) == [true, false, false, true])
        #expect(records(plan).filter { $0.hasPrefix("source=") } == ["source=/run/oci/oci0/hosts", "source=/run/oci/oci1", "source=/run/oci/oci2/hosts"])
    }

    @Test func aRelativeBindSourceIsSharedFromTheBundle() throws {
        let bundle = try Bundle(config: "{}")
        try bundle.write("data/hosts", "127.0.0.1 localhost\n")
        try bundle.write("config.json", Bundle.config(extra: #", "mounts": [{"destination": "/etc/hosts", "type": "bind", "source": "data/hosts"}]"#))
        let plan = try ContainerPlan(spec: try bundle.spec, guest: Self.guest)
        #expect(plan.configuration.shares[1].path == Self.real(bundle.path + "/data"))
        #expect(plan.configuration.shares[1].visibleEntries == ["hosts"])
    }

    @Test func idMappingsGoOnEveryShare() throws {
        let bundle = try Bundle(config: Bundle.config(extra: """
            , "mounts": [{"destination": "/data", "type": "bind", "source": "\(try Bundle.dataPath())"}],
              "linux": {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                        "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 100}]}
            """))
        let plan = try ContainerPlan(spec: try bundle.spec, guest: Self.guest)
        #expect(plan.configuration.shares.count == 2)
        for share in plan.configuration.shares {
            #expect(share.userIDs == [IDMapping(containerID: 0, hostID: 100_000, size: 65536)], "\(share.tag)")
            #expect(share.groupIDs == [IDMapping(containerID: 0, hostID: 200_000, size: 100)], "\(share.tag)")
        }
    }

    /// A bundle whose annotations name `kernel` and `initrd` (paths relative to the bundle's directory).
    private func imageBundle(kernel: String, initrd: String) throws -> Bundle {
        let bundle = try Bundle(config: "{}")
        mkdir(bundle.path + "/images", 0o755)
        mkdir(bundle.path + "/elsewhere", 0o755)
        try bundle.write("images/bzImage", "kernel")
        try bundle.write("images/initrd", "initrd")
        try bundle.write("elsewhere/secret", "host secret")
        symlink(bundle.path + "/elsewhere/secret", bundle.path + "/images/escape")
        symlink(bundle.path + "/images/bzImage", bundle.path + "/elsewhere/link-in")
        try bundle.write("config.json", Bundle.config(extra: """
            , "annotations": {"org.microvm.kernel": "\(bundle.path)/\(kernel)", "org.microvm.initrd": "\(bundle.path)/\(initrd)"}
            """))
        return bundle
    }

    @Test func imagesFromAnAllowedDirectoryAreBootedByTheirRealPath() throws {
        let bundle = try imageBundle(kernel: "images/bzImage", initrd: "elsewhere/link-in")
        let plan = try ContainerPlan(spec: try bundle.spec, guest: Self.guest, allowedImages: ["/nonexistent", bundle.path + "/images/"])
        #expect(plan.configuration.kernel == Self.real(bundle.path + "/images/bzImage"))
        #expect(plan.configuration.initrd == Self.real(bundle.path + "/images/bzImage"))
    }

    @Test(arguments: [
        ("images/bzImage", [String](), "is refused; microvm-oci boots an annotation's image only from a directory named with --allowed-images"),
        ("elsewhere/secret", ["images"], "is not inside a directory named with --allowed-images"),
        ("images/escape", ["images"], "is not inside a directory named with --allowed-images"),
        ("images/../elsewhere/secret", ["images"], "is not inside a directory named with --allowed-images"),
        ("images/missing", ["images"], "cannot resolve"),
    ])
    func imagesOutsideTheAllowedDirectoriesAreRefused(kernel: String, allowed: [String], message: String) throws {
        let bundle = try imageBundle(kernel: kernel, initrd: "images/initrd")
        let directories = allowed.map { bundle.path + "/" + $0 }
        do {
            let plan = try ContainerPlan(spec: try bundle.spec, guest: Self.guest, allowedImages: directories)
            Issue.record("accepted \(kernel): \(plan.configuration.kernel)")
        } catch let error as OCIError {
            #expect(error.description.hasPrefix("config.json: annotation org.microvm.kernel: "), "\(error)")
            #expect(error.description.contains(message), "\(error)")
        }
    }

    /// A directory whose name starts with the allowed one's is outside it.
    @Test func aSiblingDirectoryWithTheSamePrefixIsNotAllowed() throws {
        let bundle = try imageBundle(kernel: "imagesX/bzImage", initrd: "images/initrd")
        mkdir(bundle.path + "/imagesX", 0o755)
        try bundle.write("imagesX/bzImage", "kernel")
        #expect(throws: OCIError.self) {
            try ContainerPlan(spec: try bundle.spec, guest: Self.guest, allowedImages: [bundle.path + "/images"])
        }
    }

    static func real(_ path: String) -> String {
        ContainerPlan.canonical(path)
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
