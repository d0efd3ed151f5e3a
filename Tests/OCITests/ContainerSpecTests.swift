import Glibc
@testable import OCI
import VMM
import Testing

/// A bundle directory with a root file system (an empty tree) and optional config.json.
final class Bundle {
    let path: String

    init(config: String? = nil) throws {
        var template = Array("/tmp/microvm-oci-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw OCIError.failed("mkdtemp") }
        path = String(cString: made)
        mkdir(path + "/rootfs", 0o755)
        mkdir(path + "/data", 0o755)
        if let config { try write("config.json", config) }
    }

    deinit {
        _ = system("rm -rf '\(path)'")
    }

    func write(_ name: String, _ text: String) throws {
        try FileIO.write(path + "/" + name, Array(text.utf8))
    }

    static func config(args: String = #"["sh", "-c", "echo hi; exit 7"]"#, version: String = "1.0.2", root: String = "rootfs",
                       extra: String = "") -> String {
        """
        {"ociVersion": "\(version)", "process": {"terminal": false, "user": {"uid": 1000, "gid": 100, "additionalGids": [5, 6], "umask": 18},
         "args": \(args), "env": ["PATH=/bin", "A=b c"], "cwd": "/work",
         "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}]},
         "root": {"path": "\(root)", "readonly": true}, "hostname": "box"\(extra)}
        """
    }

    var spec: ContainerSpec {
        get throws { try ContainerSpec(try JSONValue.parse(try FileIO.read(path + "/config.json")), bundle: path) }
    }
}

struct ContainerSpecTests {
    @Test func readsTheProcessRootAndAnnotations() throws {
        let bundle = try Bundle(config: Bundle.config(extra: #", "annotations": {"org.microvm.memory": "512M", "x": "y"}"#))
        let spec = try bundle.spec
        #expect(spec.process.args == ["sh", "-c", "echo hi; exit 7"])
        #expect(spec.process.env == ["PATH=/bin", "A=b c"])
        #expect(spec.process.cwd == "/work")
        #expect(spec.process.uid == 1000 && spec.process.gid == 100 && spec.process.additionalGids == [5, 6] && spec.process.umask == 18)
        #expect(spec.process.rlimits == [ContainerSpec.Rlimit(type: "RLIMIT_NOFILE", soft: 512, hard: 1024)])
        #expect(spec.root == ContainerSpec.Root(path: bundle.path + "/rootfs", readonly: true))
        #expect(spec.hostname == "box")
        #expect(spec.annotation("org.microvm.memory") == "512M")
        #expect(spec.hasNetwork)
    }

    @Test func aNewNetworkNamespaceMeansNoNetwork() throws {
        let isolated = try Bundle(config: Bundle.config(extra: #", "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}]}"#))
        #expect(try !isolated.spec.hasNetwork)
        let joined = try Bundle(config: Bundle.config(extra: #", "linux": {"namespaces": [{"type": "network", "path": "/run/netns/x"}]}"#))
        #expect(try joined.spec.hasNetwork)
    }

    @Test(arguments: [
        (Bundle.config(version: "2.0.0"), "ociVersion 2.0.0 is not supported"),
        (Bundle.config(args: "[]"), "process.args is empty"),
        (Bundle.config(args: #""sh""#), "process.args is not an array"),
        (Bundle.config(args: "[1]"), "process.args holds something other than strings"),
        (Bundle.config(root: ""), "no root.path"),
        (#"{"ociVersion": "1.0.0", "root": {"path": "rootfs"}}"#, "no \"process\""),
        ("[]", "not a JSON object"),
        (Bundle.config(extra: #", "mounts": [{"destination": "relative"}]"#), "absolute destination"),
        (Bundle.config(extra: #", "annotations": {"a": 1}"#), "the annotation a is not a string"),
    ])
    func refusesWhatItCannotRun(config: String, message: String) throws {
        let bundle = try Bundle(config: config)
        do {
            _ = try bundle.spec
            Issue.record("accepted: \(config)")
        } catch let error as OCIError {
            #expect(error.description.contains(message), "\(error)")
        }
    }
}

struct ContainerSpecMountAndMappingTests {
    @Test func aRelativeBindSourceIsInsideTheBundle() throws {
        let bundle = try Bundle(config: Bundle.config(extra: """
            , "mounts": [
              {"destination": "/a", "type": "bind", "source": "data", "options": ["rbind"]},
              {"destination": "/b", "type": "none", "source": "data/sub", "options": ["bind"]},
              {"destination": "/c", "type": "tmpfs", "source": "tmpfs"}
            ]
            """))
        #expect(try bundle.spec.mounts.map(\.source) == [bundle.path + "/data", bundle.path + "/data/sub", "tmpfs"])
    }

    @Test func idMappingsAreRead() throws {
        let bundle = try Bundle(config: Bundle.config(extra: """
            , "linux": {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}, {"containerID": 65536, "hostID": 1000, "size": 1}],
                        "gidMappings": [{"containerID": 0, "hostID": 4294967294, "size": 1}]}
            """))
        let spec = try bundle.spec
        #expect(spec.uidMappings == [IDMapping(containerID: 0, hostID: 100_000, size: 65536), IDMapping(containerID: 65536, hostID: 1000, size: 1)])
        #expect(spec.gidMappings == [IDMapping(containerID: 0, hostID: 4_294_967_294, size: 1)])
        #expect(try Bundle(config: Bundle.config()).spec.uidMappings.isEmpty)
    }

    static let tooManyRanges = (0...ContainerSpec.maximumMappingRanges)
        .map { #"{"containerID": \#($0), "hostID": \#($0 + 1000), "size": 1}"# }.joined(separator: ",")

    @Test(arguments: [
        (#"[{"containerID": 0, "hostID": 1000, "size": 0}]"#, "linux.uidMappings[0].size is 0"),
        (#"[{"containerID": 0, "hostID": 4294967295, "size": 1}]"#, "runs past 4294967294, the highest id"),
        (#"[{"containerID": 4294967000, "hostID": 0, "size": 4294967000}]"#, "runs past 4294967294, the highest id"),
        (#"[{"containerID": 1e300, "hostID": 1e300, "size": 1e300}]"#, "runs past 4294967294, the highest id"),
        (#"[{"containerID": 0, "hostID": 1.5, "size": 1}]"#, "linux.uidMappings[0].hostID is not a whole number"),
        (#"[{"containerID": -1, "hostID": 0, "size": 1}]"#, "linux.uidMappings[0].containerID is not a whole number"),
        (#"[{"containerID": 0, "hostID": 0}]"#, "needs containerID, hostID and size"),
        (#"[{"containerID": 0, "hostID": 1000, "size": 10}, {"containerID": 5, "hostID": 5000, "size": 10}]"#, "linux.uidMappings[1] overlaps linux.uidMappings[0]"),
        (#"[{"containerID": 0, "hostID": 1000, "size": 10}, {"containerID": 10, "hostID": 1009, "size": 1}]"#, "linux.uidMappings[1] overlaps linux.uidMappings[0]"),
        ("[" + tooManyRanges + "]", "has 341 ranges; at most 340"),
        (#"{"containerID": 0}"#, "linux.uidMappings is not an array"),
    ])
    func badIDMappingsAreRefused(mappings: String, message: String) throws {
        let bundle = try Bundle(config: Bundle.config(extra: #", "linux": {"uidMappings": \#(mappings)}"#))
        do {
            _ = try bundle.spec
            Issue.record("accepted: \(mappings.prefix(200))")
        } catch let error as OCIError {
            #expect(error.description.contains(message), "\(error)")
        }
    }
}
