import CKVM
import X86

// Conversions between the plain x86 values the rest of the VMM uses and the
// <linux/kvm.h> structs, which stay inside this module.

extension Registers {
    init(_ r: kvm_regs) {
        self.init()
        (rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp) = (r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp)
        (r8, r9, r10, r11, r12, r13, r14, r15) = (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15)
        (rip, rflags) = (r.rip, r.rflags)
    }

    var kvm: kvm_regs {
        kvm_regs(rax: rax, rbx: rbx, rcx: rcx, rdx: rdx, rsi: rsi, rdi: rdi, rsp: rsp, rbp: rbp,
                 r8: r8, r9: r9, r10: r10, r11: r11, r12: r12, r13: r13, r14: r14, r15: r15, rip: rip, rflags: rflags)
    }
}

extension Segment {
    init(_ s: kvm_segment) {
        self.init()
        base = s.base
        limit = s.limit
        selector = s.selector
        type = s.type
        present = s.present != 0
        privilegeLevel = s.dpl
        defaultSize32 = s.db != 0
        codeOrData = s.s != 0
        longMode = s.l != 0
        granularity = s.g != 0
        available = s.avl != 0
        unusable = s.unusable != 0
    }

    var kvm: kvm_segment {
        kvm_segment(base: base, limit: limit, selector: selector, type: type, present: present ? 1 : 0,
                    dpl: privilegeLevel, db: defaultSize32 ? 1 : 0, s: codeOrData ? 1 : 0, l: longMode ? 1 : 0,
                    g: granularity ? 1 : 0, avl: available ? 1 : 0, unusable: unusable ? 1 : 0, padding: 0)
    }
}

extension SpecialRegisters {
    init(_ s: kvm_sregs) {
        self.init()
        (cs, ds, es, fs, gs, ss) = (Segment(s.cs), Segment(s.ds), Segment(s.es), Segment(s.fs), Segment(s.gs), Segment(s.ss))
        (tr, ldt) = (Segment(s.tr), Segment(s.ldt))
        gdt = DescriptorTable(base: s.gdt.base, limit: s.gdt.limit)
        idt = DescriptorTable(base: s.idt.base, limit: s.idt.limit)
        (cr0, cr2, cr3, cr4, cr8, efer, apicBase) = (s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer, s.apic_base)
        interruptBitmap = withUnsafeBytes(of: s.interrupt_bitmap) { Array($0.bindMemory(to: UInt64.self)) }
    }

    var kvm: kvm_sregs {
        var s = kvm_sregs()
        (s.cs, s.ds, s.es, s.fs, s.gs, s.ss) = (cs.kvm, ds.kvm, es.kvm, fs.kvm, gs.kvm, ss.kvm)
        (s.tr, s.ldt) = (tr.kvm, ldt.kvm)
        s.gdt = kvm_dtable(base: gdt.base, limit: gdt.limit, padding: (0, 0, 0))
        s.idt = kvm_dtable(base: idt.base, limit: idt.limit, padding: (0, 0, 0))
        (s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer, s.apic_base) = (cr0, cr2, cr3, cr4, cr8, efer, apicBase)
        withUnsafeMutableBytes(of: &s.interrupt_bitmap) { bitmap in
            for (index, word) in interruptBitmap.prefix(bitmap.count / 8).enumerated() {
                bitmap.storeBytes(of: word, toByteOffset: index * 8, as: UInt64.self)
            }
        }
        return s
    }
}

extension FPUState {
    init(_ f: kvm_fpu) {
        self.init()
        registers = withUnsafeBytes(of: f.fpr) { Array($0) }
        xmm = withUnsafeBytes(of: f.xmm) { Array($0) }
        (controlWord, statusWord, tagWord, lastOpcode) = (f.fcw, f.fsw, f.ftwx, f.last_opcode)
        (lastInstructionPointer, lastDataPointer, mxcsr) = (f.last_ip, f.last_dp, f.mxcsr)
    }

    var kvm: kvm_fpu {
        var f = kvm_fpu()
        withUnsafeMutableBytes(of: &f.fpr) { $0.copyBytes(from: registers.prefix($0.count)) }
        withUnsafeMutableBytes(of: &f.xmm) { $0.copyBytes(from: xmm.prefix($0.count)) }
        (f.fcw, f.fsw, f.ftwx, f.last_opcode) = (controlWord, statusWord, tagWord, lastOpcode)
        (f.last_ip, f.last_dp, f.mxcsr) = (lastInstructionPointer, lastDataPointer, mxcsr)
        return f
    }
}

extension CPUIDEntry {
    init(_ e: kvm_cpuid_entry2) {
        self.init(function: e.function, index: e.index, flags: e.flags, eax: e.eax, ebx: e.ebx, ecx: e.ecx, edx: e.edx)
    }

    var kvm: kvm_cpuid_entry2 {
        var e = kvm_cpuid_entry2()
        (e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx) = (function, index, flags, eax, ebx, ecx, edx)
        return e
    }
}

extension LocalAPICState {
    init(_ l: kvm_lapic_state) {
        self.init(bytes: withUnsafeBytes(of: l.regs) { Array($0) })
    }

    var kvm: kvm_lapic_state {
        var l = kvm_lapic_state()
        withUnsafeMutableBytes(of: &l.regs) { $0.copyBytes(from: bytes.prefix($0.count)) }
        return l
    }
}
