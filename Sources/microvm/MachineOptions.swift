import ArgumentParser
import VMM

/// What `run` and `template create` share: the machine the guest sees.
struct MachineOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Kernel to boot: a bzImage or an ELF vmlinux.", valueName: "path"))
    var kernel: String?

    @Option(help: ArgumentHelp("Initial ramdisk.", valueName: "path"))
    var initrd: String?

    @Option(help: ArgumentHelp("Kernel command line (default: \"\(VMConfiguration.defaultCommandLine())\", with hvc0 for a virtio console); what this host needs is added.", valueName: "text"))
    var cmdline: String?

    @Option(help: ArgumentHelp("Guest memory, with a K, M or G suffix; a plain number is MiB.", valueName: "size"))
    var memory: String = "256M"

    @Option(help: ArgumentHelp("Number of vCPUs.", valueName: "n"))
    var cpus: Int = 1

    @Option(help: ArgumentHelp("Console device: serial (ttyS0) or virtio (hvc0).", valueName: "serial|virtio"))
    var console: VMConfiguration.ConsoleDevice = .serial

    @Flag(help: ArgumentHelp("No virtio-rng device (by default the guest draws entropy from the host's getrandom, up to 1 MiB/s)."))
    var noRNG = false

    @Flag(help: ArgumentHelp("No ACPI tables: the kernel finds its CPUs in the MP table and the virtio devices on its command line (virtio_mmio.device=). For kernels built without CONFIG_ACPI."))
    var noACPI = false


    /// The kernel and initrd: the given ones, or the default guest's (said on standard error unless `quiet`).
    func images(quiet: Bool) throws -> (kernel: String, initrd: String?) {
        if let kernel { return (kernel, initrd) }
        let guest = try DefaultGuest.locate()
        if !quiet { report("booting the default guest: \(guest.kernel) with \(guest.initrd)") }
        return (guest.kernel, initrd ?? guest.initrd)
    }
}
