import ArgumentParser
import VMM

/// `microvm host`: whether this machine can run guests, and how.
struct HostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host",
        abstract: "Check /dev/kvm and report what KVM on this host offers."
    )

    @Option(help: "The KVM device to open.")
    var device: String = "/dev/kvm"

    func run() throws {
        let hypervisor: Hypervisor
        do {
            hypervisor = try Hypervisor(path: device)
        } catch {
            throw ValidationFailure(error.description)
        }
        let cpuid = try hypervisor.supportedCPUID()
        print("\(device): KVM API version \(Hypervisor.apiVersion)")
        print("vCPU shared area: \(hypervisor.vcpuMmapSize) bytes")
        print("supported CPUID leaves: \(cpuid.count)")
    }
}

/// An error whose description is the whole one-line message shown to the user.
struct ValidationFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
