import Glibc
import OCI

/// microvm-oci: an OCI runtime (runc's command line) that runs each container in a
/// microVM. docs/oci.md says how to use it with Podman, CRI-O and containerd.
let usage = """
    usage: microvm-oci [--root DIR] [--allowed-images DIR]... [--log FILE] [--log-format text|json] COMMAND [OPTIONS] ID
    commands:
      create --bundle DIR [--pid-file FILE] [--console-socket PATH] ID   build the container's VM, not yet running
      start ID                          let it run
      state ID                          print its OCI state as JSON
      kill [--all] ID [SIGNAL]          send a signal (default TERM); KILL stops the VM at once
      delete [--force] ID               remove a stopped container (--force kills it first)
      pause ID                          pause the VM (its vCPUs stop; status paused)
      resume ID                         let a paused VM run again
      features                          print what this runtime supports, as JSON
    """

var log = RuntimeLog()
do throws(OCIError) {
    let arguments = try RuntimeArguments(Array(CommandLine.arguments.dropFirst()))
    log = arguments.log
    if arguments.flags.contains("version") {
        print("microvm-oci version \(RuntimeCommands.version)\nspec: \(ContainerRecord.ociVersion)")
        exit(0)
    }
    if arguments.flags.contains("help") {
        print(usage)
        exit(0)
    }
    guard arguments.command != nil else { throw .usage("no command given; microvm-oci --help lists them") }
    exit(try RuntimeCommands(arguments).run())
} catch {
    log.error(error.description)
    exit(error.exitStatus)
}

extension OCIError {
    var exitStatus: Int32 {
        if case .usage = self { return 64 }
        return 1
    }
}
