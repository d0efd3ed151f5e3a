import ArgumentParser

@main
struct MicroVMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "microvm",
        abstract: "A minimal KVM virtual machine monitor.",
        version: "0.1.0",
        subcommands: [RunCommand.self, AttachCommand.self, ControlCommand.self, RestoreCommand.self, TemplateCommand.self, HostCommand.self]
    )
}
