import ACPI
import CLinux
import Devices
import Glibc
import Memory

/// The VM generation ID of an ACPI guest (docs/acpi.md): 16 random bytes at
/// `MemoryMap.generationID` that the DSDT's VMGenID device points at. A restored VM gets new
/// ones and an edge on the Generic Event Device's line, so that each clone's kernel reseeds
/// its RNG instead of going on from the state every clone of the snapshot shares.
enum VMGenerationID {
    static let size = 16

    /// Why the ID could not be written; one line each.
    enum Error: Swift.Error, Equatable, CustomStringConvertible {
        /// getrandom failed with this errno.
        case random(Int32)
        /// The guest's memory has no room at the ID's address.
        case memory(GuestMemoryError)

        var description: String {
            switch self {
            case .random(let code): "cannot make a VM generation ID: getrandom: \(String(cString: strerror(code)))"
            case .memory(let error): "cannot write the VM generation ID: \(error)"
            }
        }
    }

    /// What the DSDT says of it.
    static let acpiDevice = ACPIPlatform.GenerationID(address: MemoryMap.generationID.rawValue, gsi: MemoryMap.generationIDInterrupt)

    /// Writes a fresh ID: at build, before the guest first runs.
    static func write(into memory: GuestMemory) throws(Error) {
        var id = [UInt8](repeating: 0, count: size)
        var filled = 0
        while filled < size {
            let count = id.withUnsafeMutableBytes { getrandom($0.baseAddress! + filled, size - filled, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw .random(count < 0 ? errno : EIO) }
            filled += count
        }
        do {
            try memory.write(id, at: MemoryMap.generationID)
        } catch {
            throw .memory(error)
        }
    }

    /// After a restore, before the vCPUs run: a fresh ID, and a pulse on the GED's line
    /// (edge-triggered), which the guest takes when it resumes. It comes after the vCPUs'
    /// state is put back: restoring a local APIC would drop the interrupt KVM queued there.
    static func renew(memory: GuestMemory, interrupt: InterruptLine) throws(Error) {
        try write(into: memory)
        interrupt.setLevel(true)
        interrupt.setLevel(false)
    }
}
