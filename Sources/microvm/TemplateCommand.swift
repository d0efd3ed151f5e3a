import ArgumentParser
import Glibc
import VMM

/// `microvm template`: the templates `microvm run` restores instead of booting.
struct TemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Make, list and remove templates: machines booted once until their /init waits, restored by `microvm run`.",
        discussion: """
            A template is a snapshot of a machine (kernel, initrd, memory, vCPUs, console, devices) booted until \
            the initrd's /init waits for a work order. `microvm run` restores the template of its machine, making \
            it the first time, and hands the guest its command; --no-template boots instead. Templates live in \
            $MICROVM_CACHE/templates (~/.cache/microvm/templates), named by a hash of the machine, the kernel's \
            and initrd's files and this microvm: a change to any of them makes another.
            """,
        subcommands: [Create.self, List.self, Remove.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create", abstract: "Make the template that `microvm run` with these options restores.")

        @OptionGroup var machine: MachineOptions

        @Option(help: ArgumentHelp("Disk slots, for runs with that many --disk (and --rootfs images).", valueName: "n"))
        var disks: Int = 0

        @Option(help: ArgumentHelp("A network device for runs with --net of this kind.", valueName: "passt|tap"))
        var net: String?

        @Flag(help: "A vsock device, for runs with --vsock.")
        var vsock = false

        func run() throws {
            do {
                guard (0...VMConfiguration.virtioSlotCount).contains(disks) else {
                    throw RunCommand.BadArgument(description: "--disks \(disks): give 0 to \(VMConfiguration.virtioSlotCount)")
                }
                let network: VMConfiguration.Network? = switch net {
                case nil: nil
                case "passt": .passt(socket: nil)
                case "tap": .tap(name: "")
                default: throw RunCommand.BadArgument(description: "--net \(net ?? ""): expected passt or tap")
                }
                let (kernel, initrd) = try machine.images(quiet: false)
                let configuration = VMConfiguration(
                    kernel: kernel, initrd: initrd, commandLine: machine.cmdline.map { KernelCommandLine($0) },
                    memorySize: try MemorySize.parse(machine.memory), vcpuCount: machine.cpus, console: machine.console,
                    disks: (0..<disks).map { _ in VMConfiguration.Disk(path: "") }, acpi: !machine.noACPI, network: network,
                    entropy: machine.noRNG ? nil : .standard, vsock: vsock ? "" : nil)
                if let obstacle = configuration.templateObstacle { throw RunCommand.BadArgument(description: "no template: \(obstacle)") }
                let made = try MicroVM.template(of: configuration.templateMachine, in: .standard) { report($0) }
                print(made.template.key + (made.built ? "" : " (already there)"))
            } catch {
                report("error: \(error)")
                throw ExitCode(1)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the templates in the cache.")

        func run() throws {
            do {
                for template in try TemplateStore.standard.list() {
                    let info = Dictionary(template.info, uniquingKeysWith: { first, _ in first })
                    let fields = ["memory", "cpus", "devices", "build-seconds"].map { "\($0)=\(info[$0] ?? "?")" }
                    print(([template.key] + fields + ["kernel=\(info["kernel"] ?? "?")"]).joined(separator: " "))
                }
            } catch {
                report("error: \(error)")
                throw ExitCode(1)
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove templates (VMs running from one keep it until they end).")

        @Argument(help: ArgumentHelp("Keys as `microvm template list` shows them.", valueName: "key"))
        var keys: [String] = []

        @Flag(help: "Remove every template.")
        var all = false

        func run() throws {
            do {
                guard all != !keys.isEmpty else { throw RunCommand.BadArgument(description: "give template keys or --all") }
                let store = TemplateStore.standard
                for key in all ? try store.list().map(\.key) : keys { try store.remove(key) }
            } catch {
                report("error: \(error)")
                throw ExitCode(1)
            }
        }
    }
}
