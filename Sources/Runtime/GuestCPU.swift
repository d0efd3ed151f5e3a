import KVM
import Memory
import X86

/// What a vCPU's run loop needs of a vCPU: `VirtualCPU` is one, and tests script another.
package protocol GuestCPU: AnyObject, Sendable {
    var id: UInt32 { get }
    /// Enters the guest and hands the exit to `handle`; the exit's buffers are valid only inside it.
    func run<Result>(_ handle: (VCPUExit) -> Result) throws(KVMError) -> Result
    /// Makes the current or next `run` return `.interrupted`; safe from any thread.
    func requestImmediateExit()
    func registers() throws(KVMError) -> Registers
    func specialRegisters() throws(KVMError) -> SpecialRegisters
    /// Translates a guest virtual address through the guest's page tables.
    func translate(_ linearAddress: UInt64) throws(KVMError) -> GuestAddress?
}

extension VirtualCPU: GuestCPU {}
