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
}
