import Glibc
import Memory
import Synchronization

/// Ends the process with one line when a restored VM's memory file changes under it, in
/// the ways the host tells of it: a lease break (SIGIO with the file's descriptor, sent
/// when another process opens the file to write or truncates it, before it may), and
/// SIGBUS at an address of guest RAM mapped from the file (the VMM read a page past the
/// file's end after it shrank; the guest's own access makes KVM_RUN fail with EFAULT,
/// which `VCPURunner` turns into the same line). The handlers only read slots filled
/// before they were published, write a line prepared in advance and call `_exit(1)`:
/// nothing but async-signal-safe calls.
enum MemoryFileGuard {
    private struct Slot {
        var fd: Int32 = -1
        var start0: UInt = 0, end0: UInt = 0, start1: UInt = 0, end1: UInt = 0
        var shrunkLength = 0
        var leaseLength = 0
    }

    static let capacity = 8
    private static let messageCapacity = 4608
    /// Guest RAM has at most two regions (below and above the 32-bit MMIO gap).
    private static let maximumRegions = 2
    nonisolated(unsafe) private static let slots = UnsafeMutablePointer<Slot>.allocate(capacity: capacity)
    /// Two lines per slot: the memory shrank; the lease was broken. Slots and lines are
    /// written under `registration` before their bit in `active` is set, and read after.
    nonisolated(unsafe) private static let messages = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2 * messageCapacity)
    /// Bit N set: slot N is filled and watched. Published with release, read with acquire.
    private static let active = Atomic<UInt32>(0)
    private struct Registry {
        var installed = false
        /// The memory file's path by the host address of the first region it backs.
        var paths: [UInt: String] = [:]
    }

    private static let registration = Mutex(Registry())

    /// Watches `memory`, mapped from the memory file `path` open at `fd`; returns the slot
    /// to give `release`, or nil when every slot is taken.
    static func watch(fd: Int32, path: String, memory: GuestMemory) -> Int? {
        guard memory.regions.count <= maximumRegions else { return nil }
        return registration.withLock { registry -> Int? in
            let taken = active.load(ordering: .acquiring)
            guard let index = (0..<capacity).first(where: { taken & (1 << $0) == 0 }) else { return nil }
            var slot = Slot(fd: fd)
            for (number, region) in memory.regions.enumerated() {
                let start = UInt(bitPattern: region.host)
                if number == 0 { (slot.start0, slot.end0) = (start, start + UInt(region.size)) }
                else { (slot.start1, slot.end1) = (start, start + UInt(region.size)) }
            }
            slot.shrunkLength = store("microvm: \(shrunk(path))\n", at: index * 2)
            slot.leaseLength = store("microvm: \(leaseBroken(path))\n", at: index * 2 + 1)
            slots[index] = slot
            registry.paths[slot.start0] = path
            if !registry.installed {
                // SA_RESETHAND: a SIGBUS elsewhere gets the default action when its access is retried.
                install(SIGBUS, busHandler, flags: SA_SIGINFO | Int32(bitPattern: UInt32(SA_RESETHAND)))
                install(SIGIO, leaseHandler, flags: SA_SIGINFO)
                registry.installed = true
            }
            // A mask inherited from whoever started microvm must not hold the lease break back;
            // the VM's threads, started later, inherit this one.
            var signals = sigset_t()
            sigemptyset(&signals)
            sigaddset(&signals, SIGIO)
            sigaddset(&signals, SIGBUS)
            pthread_sigmask(SIG_UNBLOCK, &signals, nil)
            _ = active.bitwiseOr(1 << UInt32(index), ordering: .releasing)
            return index
        }
    }

    static func release(_ index: Int) {
        registration.withLock { registry in
            _ = active.bitwiseAnd(~(1 << UInt32(index)), ordering: .releasing)
            registry.paths[slots[index].start0] = nil
        }
    }

    /// What to stop a guest with that found its memory gone (KVM_RUN's EFAULT), when
    /// `memory` is watched; nil otherwise, where EFAULT means something else.
    static func shrunkMessage(for memory: GuestMemory) -> String? {
        guard let first = memory.regions.first else { return nil }
        return registration.withLock { $0.paths[UInt(bitPattern: first.host)] }.map(shrunk)
    }

    static func shrunk(_ path: String) -> String {
        "the snapshot's memory file \(path) shrank under the running VM: guest memory is gone, so the VM ends"
    }

    static func leaseBroken(_ path: String) -> String {
        "another process opened the snapshot's memory file \(path) to write or truncate it: the VM ends before its memory changes"
    }

    /// Copies `line` into message `number`, cut to fit; returns its length.
    private static func store(_ line: String, at number: Int) -> Int {
        var bytes = Array(line.utf8)
        if bytes.count > messageCapacity { bytes = Array(bytes.prefix(messageCapacity - 1)) + [0x0a] }
        bytes.withUnsafeBufferPointer { (messages + number * messageCapacity).update(from: $0.baseAddress!, count: $0.count) }
        return bytes.count
    }

    private static func install(_ signal: Int32,
                                _ handler: @escaping @convention(c) (Int32, UnsafeMutablePointer<siginfo_t>?, UnsafeMutableRawPointer?) -> Void,
                                flags: Int32) {
        var action = sigaction()
        action.__sigaction_handler.sa_sigaction = handler
        sigemptyset(&action.sa_mask)
        action.sa_flags = flags
        sigaction(signal, &action, nil)
    }

    private static func end(message number: Int, length: Int) -> Never {
        _ = write(STDERR_FILENO, messages + number * messageCapacity, length)
        _exit(1)
    }

    private static let busHandler: @convention(c) (Int32, UnsafeMutablePointer<siginfo_t>?, UnsafeMutableRawPointer?) -> Void = { _, info, _ in
        guard let info else { return }
        let address = UInt(bitPattern: info.pointee._sifields._sigfault.si_addr)
        let watched = active.load(ordering: .acquiring)
        for index in 0..<capacity where watched & (1 << UInt32(index)) != 0 {
            let slot = slots[index]
            if (address >= slot.start0 && address < slot.end0) || (address >= slot.start1 && address < slot.end1) {
                end(message: index * 2, length: slot.shrunkLength)
            }
        }
    }

    private static let leaseHandler: @convention(c) (Int32, UnsafeMutablePointer<siginfo_t>?, UnsafeMutableRawPointer?) -> Void = { _, info, _ in
        guard let info else { return }
        let fd = info.pointee._sifields._sigpoll.si_fd
        let watched = active.load(ordering: .acquiring)
        for index in 0..<capacity where watched & (1 << UInt32(index)) != 0 && slots[index].fd == fd {
            end(message: index * 2 + 1, length: slots[index].leaseLength)
        }
    }
}
