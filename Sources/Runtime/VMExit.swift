/// How a VM run ended, and what the process should report and return.
public enum VMExit: Equatable, Sendable {
    /// The guest reset the machine (reboot through the ACPI reset register or the i8042).
    case reset
    /// The guest powered the machine off (ACPI S5, Linux's `poweroff`).
    case powerOff
    /// The guest's command ended with this status (0–255, 128+N for signal N), reported
    /// through the exit-status register before the guest rebooted.
    case commandExited(Int32)
    /// The user quit from the console (Ctrl-A x).
    case userQuit
    /// The library user called `MicroVM.requestStop()`.
    case stopRequested
    /// A signal asked microvm to stop.
    case signal(Int32)
    /// The guest triple-faulted (KVM_EXIT_SHUTDOWN).
    case tripleFault(rip: UInt64)
    /// KVM could not run the guest on; the diagnosis names the instruction.
    case internalError(String)
    /// The VMM itself failed while the guest ran.
    case vmmError(String)

    /// The guest command's status when it reported one; otherwise 0 for a guest reboot,
    /// power-off or a
    /// user quit, 128+N for signal N, 2 for a guest that crashed or could not be run, 1 for
    /// a VMM failure.
    public var status: Int32 {
        switch self {
        case .commandExited(let status): return status
        case .reset, .powerOff, .userQuit, .stopRequested: return 0
        case .signal(let number): return 128 + number
        case .tripleFault, .internalError: return 2
        case .vmmError: return 1
        }
    }

    /// The one line to show the user, if the exit is worth a word.
    public var message: String? {
        switch self {
        case .reset, .powerOff, .userQuit, .stopRequested, .commandExited: return nil
        case .signal(let number): return "stopped by signal \(number)"
        case .tripleFault(let rip): return "guest stopped: triple fault (KVM_EXIT_SHUTDOWN) at RIP 0x\(String(rip, radix: 16))"
        case .internalError(let diagnosis): return diagnosis
        case .vmmError(let message): return message
        }
    }
}
