/*
 * The microvm test guest: a freestanding x86_64 program that reports how it was
 * booted on COM1 and then resets the machine through the i8042.
 *
 * One image serves two boot paths:
 *   offset 0x000  pvh_start      PVH entry (32-bit protected mode, paging off, EBX = hvm_start_info)
 *   offset 0x200  linux64_start  Linux 64-bit boot protocol entry (long mode, RSI = boot_params)
 * Everything after the entries is position independent (RIP-relative), so the bzImage
 * form may be loaded at any address; the PVH entry runs at its link address.
 *
 * Kept small on purpose: on a host whose KVM emulates guest kernel code, every
 * instruction costs about a microsecond and every port write an exit.
 *
 * Command-line words that change what it does after the report:
 *   tg.int3  execute int3 with no IDT (an instruction KVM's emulator lacks; a triple fault elsewhere)
 *   tg.storm  a hostile guest: pseudo-random values (seed from the TSC, printed) to
 *            every I/O port but the i8042's command port (the ACPI sleep control and
 *            reset registers get values that neither power off nor reset) and to every register of
 *            the first four virtio-mmio slots, each then set up with rings of random bytes
 *   tg.seed=HEX  the storm's seed instead of the TSC (the printed one replays a storm)
 *   tg.txflood  after tg.virtio: one transmit chain of 16 buffers of 96 MiB each (an
 *            indirect table over the same memory at 16 MiB; the guest needs 128 MiB)
 *   tg.loop  print a line on COM1 forever
 *   tg.triple  load an empty IDT and execute ud2: a triple fault
 *   tg.halt  halt with interrupts off instead of resetting, so the VMM has to stop it
 *   tg.smp   start the other CPUs (INIT, SIPI, SIPI to all but itself) and report
 *            how many are alive
 *   tg.virtio  drive the virtio-console at 0xd0000000 with a minimal driver of its own:
 *            check the registers, negotiate VERSION_1, set up the transmit queue and
 *            send a line through it
 */

        .set COM1, 0x3f8
        .set ACPI_SLEEP_CONTROL, 0x600          /* microvm's ACPI power registers */
        .set ACPI_RESET, 0x602
        .set BOOT_PVH, 1
        .set BOOT_LINUX64, 2
        .set PVH_MAGIC, 0x336ec578
        .set PTE_PRESENT_RW, 0x3
        .set PDE_2M, 0x83
        .set MSR_EFER, 0xc0000080

        .section .head, "ax"
        .code32
        .globl pvh_start
pvh_start:
        cli
        cld
        mov     %ebx, %esi
        /* Just enough paging to reach long mode: the first 2 MiB, which hold this image. */
        mov     $boot_tables, %edi
        mov     $(3 * 4096 / 4), %ecx
        xor     %eax, %eax
        rep stosl
        movl    $(boot_tables + 0x1000 + PTE_PRESENT_RW), boot_tables
        movl    $(boot_tables + 0x2000 + PTE_PRESENT_RW), boot_tables + 0x1000
        movl    $PDE_2M, boot_tables + 0x2000
        mov     $boot_tables, %eax
        mov     %eax, %cr3
        mov     %cr4, %eax
        or      $0x20, %eax                     /* PAE */
        mov     %eax, %cr4
        mov     $MSR_EFER, %ecx
        rdmsr
        or      $0x100, %eax                    /* LME */
        wrmsr
        mov     %cr0, %eax
        or      $0x80000001, %eax               /* PG | PE */
        mov     %eax, %cr0
        lgdt    gdt_descriptor
        ljmp    $0x08, $pvh_long_mode

        .code64
pvh_long_mode:
        mov     $0x10, %eax
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %ss
        mov     $BOOT_PVH, %r15d
        jmp     common

        .balign 8
gdt:
        .quad   0
        .quad   0x00af9a000000ffff              /* 0x08: 64-bit code */
        .quad   0x00cf92000000ffff              /* 0x10: data */
gdt_descriptor:
        .word   gdt_descriptor - gdt - 1
        .long   gdt

        .org    0x200
        .globl linux64_start
linux64_start:
        cli
        cld
        mov     $BOOT_LINUX64, %r15d
        jmp     common

        .text
common:
        lea     stack_top(%rip), %rsp
        mov     %rsi, %r14                      /* hvm_start_info or boot_params */
        call    map_low_4g

        lea     msg_banner(%rip), %rsi
        call    puts
        lea     msg_boot_linux64(%rip), %rsi
        cmp     $BOOT_PVH, %r15d
        jne     1f
        lea     msg_boot_pvh(%rip), %rsi
1:      call    puts

        cmp     $BOOT_PVH, %r15d
        je      read_pvh
        call    read_boot_params
        jmp     report
read_pvh:
        call    read_start_info

report:
        lea     msg_cmdline(%rip), %rsi
        call    puts
        mov     cmdline(%rip), %rsi
        test    %rsi, %rsi
        jz      1f
        call    puts
1:      call    newline

        mov     initrd_size(%rip), %rax
        test    %rax, %rax
        jnz     2f
        lea     msg_no_initrd(%rip), %rsi
        call    puts
        jmp     3f
2:      lea     msg_initrd_size(%rip), %rsi
        call    puts
        mov     initrd_size(%rip), %rax
        call    put_decimal
        lea     msg_initrd_crc(%rip), %rsi
        call    puts
        mov     initrd_addr(%rip), %rsi
        mov     initrd_size(%rip), %rcx
        call    crc32
        mov     $8, %ecx
        call    put_hex
        call    newline

3:      mov     e820_table(%rip), %rbx
        mov     e820_count(%rip), %r12
        mov     e820_stride(%rip), %r13
4:      test    %r12, %r12
        jz      5f
        lea     msg_e820_start(%rip), %rsi
        call    puts
        mov     (%rbx), %rax
        mov     $16, %ecx
        call    put_hex
        lea     msg_e820_size(%rip), %rsi
        call    puts
        mov     8(%rbx), %rax
        mov     $16, %ecx
        call    put_hex
        lea     msg_e820_type(%rip), %rsi
        call    puts
        mov     16(%rbx), %eax
        call    put_decimal
        call    newline
        add     %r13, %rbx
        dec     %r12
        jmp     4b

5:      lea     word_smp(%rip), %rdi
        call    cmdline_has
        jz      5f
        call    start_application_processors
5:      lea     word_storm(%rip), %rdi
        call    cmdline_has
        jz      5f
        call    storm
5:      lea     word_virtio(%rip), %rdi
        call    cmdline_has
        jz      5f
        call    virtio_console
5:      lea     word_txflood(%rip), %rdi
        call    cmdline_has
        jz      5f
        call    txflood
5:      lea     word_loop(%rip), %rdi
        call    cmdline_has
        jz      5f
7:      lea     msg_loop(%rip), %rsi
        call    puts
        jmp     7b
5:      lea     word_int3(%rip), %rdi
        call    cmdline_has
        jz      6f
        lea     msg_int3(%rip), %rsi
        call    puts
        int3
6:      lea     word_triple(%rip), %rdi
        call    cmdline_has
        jz      6f
        lea     msg_triple(%rip), %rsi
        call    puts
        lidt    empty_idt(%rip)
        ud2
6:      lea     word_halt(%rip), %rdi
        call    cmdline_has
        jz      reset
        lea     msg_halt(%rip), %rsi
        call    puts
        jmp     stop

reset:
        lea     msg_reset(%rip), %rsi
        call    puts
        mov     $0xfe, %al
        out     %al, $0x64
stop:
        cli
        hlt
        jmp     stop

/* Wakes the other CPUs through the local APIC: each runs the real-mode trampoline
   at 0x10000, counts itself in, and halts. */
        .set LAPIC_BASE, 0xfee00000
        .set TRAMPOLINE, 0x10000
        .set ICR_INIT_ALL_BUT_SELF, 0x000c4500
        .set ICR_SIPI_ALL_BUT_SELF, 0x000c4600 | (TRAMPOLINE >> 12)
start_application_processors:
        lea     ap_trampoline(%rip), %rsi
        mov     $TRAMPOLINE, %edi
        mov     $(ap_trampoline_end - ap_trampoline), %ecx
        rep movsb
        mov     $LAPIC_BASE, %rbx
        movl    $0, 0x310(%rbx)
        movl    $ICR_INIT_ALL_BUT_SELF, 0x300(%rbx)
        mov     $1000, %ecx
        call    delay
        movl    $ICR_SIPI_ALL_BUT_SELF, 0x300(%rbx)
        mov     $1000, %ecx
        call    delay
        movl    $ICR_SIPI_ALL_BUT_SELF, 0x300(%rbx)
        mov     $200000, %ecx
        call    delay
        lea     msg_smp(%rip), %rsi
        call    puts
        movzwl  TRAMPOLINE + (ap_count - ap_trampoline), %eax
        inc     %eax                            /* and this CPU */
        call    put_decimal
        lea     msg_smp_alive(%rip), %rsi
        jmp     puts

delay:
1:      pause
        dec     %ecx
        jnz     1b
        ret

/* xorshift64 over `seed`, into RAX. */
random:
        mov     seed(%rip), %rax
        mov     %rax, %rdx
        shl     $13, %rdx
        xor     %rdx, %rax
        mov     %rax, %rdx
        shr     $7, %rdx
        xor     %rdx, %rax
        mov     %rax, %rdx
        shl     $17, %rdx
        xor     %rdx, %rax
        mov     %rax, seed(%rip)
        ret

storm:
        call    cmdline_seed
        jnz     9f
        rdtsc
        shl     $32, %rdx
        or      %rdx, %rax
9:      or      $1, %rax
        mov     %rax, seed(%rip)
        lea     msg_storm_seed(%rip), %rsi
        call    puts
        mov     seed(%rip), %rax
        mov     $16, %ecx
        call    put_hex
        call    newline
        xor     %r12d, %r12d                    /* every port, reads and writes */
1:      cmp     $0x64, %r12d                    /* not the i8042 command port: 0xfe resets */
        je      2f
        call    random
        mov     %r12d, %edx
        cmp     $ACPI_SLEEP_CONTROL, %r12d
        jne     3f
        and     $0xdf, %al                      /* no SLP_EN: a sleep request ends the VM */
3:      cmp     $ACPI_RESET, %r12d
        jne     4f
        or      $0x80, %al                      /* never the reset value (1) */
4:      out     %al, (%dx)
        in      (%dx), %al
2:      inc     %r12d
        cmp     $0x10000, %r12d
        jne     1b
        mov     $COM1 + 3, %dx                  /* put the UART back: no divisor latch, no loopback */
        mov     $3, %al
        out     %al, (%dx)
        mov     $COM1 + 4, %dx
        xor     %al, %al
        out     %al, (%dx)
        mov     $VIRTIO_BASE, %ebx              /* the first virtio-mmio slots, whatever device they hold */
9:      call    storm_slot
        add     $0x1000, %ebx
        cmp     $VIRTIO_BASE + VIRTIO_STORM_SLOTS * 0x1000, %ebx
        jne     9b
        lea     msg_storm_done(%rip), %rsi
        jmp     puts

/* With "tg.seed=HEX" (an optional 0x, lower-case digits) on the command line: its
   value in RAX and ZF clear; otherwise ZF set. */
cmdline_seed:
        lea     word_seed(%rip), %rdi
        call    cmdline_has
        jz      3f
        lea     (%rsi, %rcx), %rsi
        cmpw    $0x7830, (%rsi)                 /* "0x" */
        jne     1f
        add     $2, %rsi
1:      xor     %eax, %eax
2:      movzbl  (%rsi), %edx
        sub     $'0', %edx
        cmp     $9, %edx
        jbe     4f
        sub     $('a' - '0'), %edx
        cmp     $5, %edx
        ja      5f
        add     $10, %edx
4:      shl     $4, %rax
        or      %rdx, %rax
        inc     %rsi
        jmp     2b
5:      or      $1, %ecx                        /* clears ZF: found */
3:      ret

/* After virtio_console: descriptor 1 points to an indirect table of 16 chained
   device-readable buffers, each 96 MiB at 16 MiB, made available as one chain. */
        .set FLOOD_ADDRESS, 0x1000000
        .set FLOOD_LENGTH, 0x6000000
txflood:
        mov     $VIRTIO_BASE, %ebx
        lea     flood_table(%rip), %rsi
        xor     %ecx, %ecx
1:      mov     %ecx, %eax
        shl     $4, %eax
        movq    $FLOOD_ADDRESS, (%rsi, %rax)
        movl    $FLOOD_LENGTH, 8(%rsi, %rax)
        movw    $1, 12(%rsi, %rax)              /* NEXT */
        lea     1(%rcx), %edx
        movw    %dx, 14(%rsi, %rax)
        inc     %ecx
        cmp     $16, %ecx
        jne     1b
        movw    $0, 12 + 15 * 16(%rsi)          /* the last one ends the chain */
        lea     virtq(%rip), %rdi
        mov     %rsi, 16(%rdi)                  /* descriptor 1: the indirect table */
        movl    $(16 * 16), 24(%rdi)
        movw    $4, 28(%rdi)                    /* INDIRECT */
        movw    $1, 0x40 + 6(%rdi)              /* available ring[1] = descriptor 1 */
        movw    $2, 0x40 + 2(%rdi)              /* available idx = 2 */
        movl    $1, 0x050(%rbx)                 /* QueueNotify: transmitq */
        lea     msg_txflood_failed(%rip), %rsi
        cmpw    $2, 0x100 + 2(%rdi)             /* used idx */
        jne     puts
        lea     msg_txflood_done(%rip), %rsi
        jmp     puts

/* Every register of the virtio-mmio slot at RBX (twice over; every slot, empty or not), then the device set up
   with rings of random bytes and notified. */
        .set VIRTIO_STORM_SLOTS, 9
storm_slot:
        xor     %r12d, %r12d
3:      call    random
        mov     %eax, (%rbx, %r12)
        mov     (%rbx, %r12), %eax
        add     $4, %r12d
        cmp     $0x400, %r12d
        jne     3b
        movl    $0, 0x070(%rbx)
        movl    $3, 0x070(%rbx)
        movl    $1, 0x024(%rbx)
        movl    $1, 0x020(%rbx)
        movl    $11, 0x070(%rbx)
        lea     virtq(%rip), %rdi
        mov     $(4096 / 8), %r12d
4:      call    random
        stosq
        dec     %r12d
        jnz     4b
        movl    $0, 0x030(%rbx)
        movl    $VIRTIO_QUEUE_SIZE, 0x038(%rbx)
        lea     virtq_rx(%rip), %rax
        call    virtio_queue_addresses
        movl    $1, 0x044(%rbx)
        movl    $1, 0x030(%rbx)
        movl    $VIRTIO_QUEUE_SIZE, 0x038(%rbx)
        lea     virtq(%rip), %rax
        call    virtio_queue_addresses
        movl    $1, 0x044(%rbx)
        movl    $15, 0x070(%rbx)
        movl    $0, 0x050(%rbx)
        movl    $1, 0x050(%rbx)
        ret

/* A virtio-mmio (version 2) console driver, transmit queue only. */
        .set VIRTIO_BASE, 0xd0000000
        .set VIRTIO_QUEUE_SIZE, 4
virtio_console:
        mov     $VIRTIO_BASE, %rbx
        lea     msg_virtio_regs(%rip), %rsi
        call    puts
        mov     0x000(%rbx), %eax               /* magic */
        mov     $8, %ecx
        call    put_hex
        lea     msg_virtio_version(%rip), %rsi
        call    puts
        mov     0x004(%rbx), %eax
        call    put_decimal
        lea     msg_virtio_device(%rip), %rsi
        call    puts
        mov     0x008(%rbx), %eax
        call    put_decimal
        call    newline
        cmpl    $0x74726976, 0x000(%rbx)
        jne     9f
        cmpl    $3, 0x008(%rbx)
        jne     9f
        movl    $0, 0x070(%rbx)                 /* reset */
        movl    $1, 0x070(%rbx)                 /* ACKNOWLEDGE */
        movl    $3, 0x070(%rbx)                 /* DRIVER */
        movl    $1, 0x014(%rbx)                 /* device features, bits 32..63 */
        testl   $1, 0x010(%rbx)                 /* VERSION_1 */
        jz      9f
        movl    $0, 0x024(%rbx)
        movl    $(1 << 28), 0x020(%rbx)         /* INDIRECT_DESC (for tg.txflood) */
        movl    $1, 0x024(%rbx)
        movl    $1, 0x020(%rbx)                 /* and VERSION_1 */
        movl    $11, 0x070(%rbx)                /* FEATURES_OK */
        testl   $8, 0x070(%rbx)
        jz      9f
        lea     virtq(%rip), %rdi               /* descriptors, then available ring, then used ring */
        mov     $(4096 / 8), %ecx
        xor     %eax, %eax
        rep stosq
        movl    $0, 0x030(%rbx)                 /* receiveq: unused here, but every queue needs rings */
        movl    $VIRTIO_QUEUE_SIZE, 0x038(%rbx)
        lea     virtq_rx(%rip), %rax
        call    virtio_queue_addresses
        movl    $1, 0x030(%rbx)                 /* transmitq */
        movl    $VIRTIO_QUEUE_SIZE, 0x038(%rbx)
        lea     virtq(%rip), %rax
        call    virtio_queue_addresses
        movl    $1, 0x044(%rbx)                 /* QueueReady */
        movl    $15, 0x070(%rbx)                /* DRIVER_OK */
        testl   $0x40, 0x070(%rbx)              /* DEVICE_NEEDS_RESET */
        jnz     9f
        lea     virtq(%rip), %rdi
        lea     msg_virtio_line(%rip), %rax
        mov     %rax, (%rdi)                    /* descriptor 0: address */
        movl    $(msg_virtio_line_end - msg_virtio_line), 8(%rdi)
        movw    $0, 12(%rdi)                    /* device-readable, last */
        movw    $0, 0x40 + 4(%rdi)              /* available ring[0] = descriptor 0 */
        movw    $1, 0x40 + 2(%rdi)              /* available idx = 1 */
        movl    $1, 0x050(%rbx)                 /* QueueNotify: transmitq */
        cmpw    $1, 0x100 + 2(%rdi)             /* used idx */
        jne     9f
        lea     msg_virtio_ok(%rip), %rsi
        jmp     puts
9:      lea     msg_virtio_failed(%rip), %rsi
        jmp     puts

/* Queue at RAX: descriptors +0 (4 x 16), available ring +0x40, used ring +0x100. */
virtio_queue_addresses:
        mov     %eax, 0x080(%rbx)               /* the registers are write-only: keep RAX */
        add     $0x40, %eax
        mov     %eax, 0x090(%rbx)
        add     $0xc0, %eax
        mov     %eax, 0x0a0(%rbx)
        movl    $0, 0x084(%rbx)                 /* the image lies below 4 GiB */
        movl    $0, 0x094(%rbx)
        movl    $0, 0x0a4(%rbx)
        ret

/* Identity-maps the first 4 GiB with 2 MiB pages (where the command line, initrd
   and tables may lie) in page tables of our own, whatever the loader gave us. */
map_low_4g:
        lea     tables(%rip), %rdi
        mov     $(6 * 4096 / 8), %ecx
        xor     %eax, %eax
        rep stosq
        lea     tables(%rip), %rbx
        lea     0x1000 + PTE_PRESENT_RW(%rbx), %rax
        mov     %rax, (%rbx)
        lea     0x2000 + PTE_PRESENT_RW(%rbx), %rax
        xor     %ecx, %ecx
1:      mov     %rax, 0x1000(%rbx, %rcx, 8)
        add     $0x1000, %rax
        inc     %ecx
        cmp     $4, %ecx
        jne     1b
        lea     0x2000(%rbx), %rdi
        mov     $PDE_2M, %eax
        mov     $2048, %ecx
2:      mov     %rax, (%rdi)
        add     $0x200000, %rax
        add     $8, %rdi
        dec     %ecx
        jnz     2b
        mov     %rbx, %cr3
        ret

/* Linux boot protocol: the zero page at R14. */
read_boot_params:
        mov     0x228(%r14), %eax               /* hdr.cmd_line_ptr */
        mov     0x0c8(%r14), %edx               /* ext_cmd_line_ptr */
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, cmdline(%rip)
        mov     0x218(%r14), %eax               /* hdr.ramdisk_image */
        mov     0x0c0(%r14), %edx               /* ext_ramdisk_image */
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, initrd_addr(%rip)
        mov     0x21c(%r14), %eax               /* hdr.ramdisk_size */
        mov     0x0c4(%r14), %edx               /* ext_ramdisk_size */
        shl     $32, %rdx
        or      %rdx, %rax
        mov     %rax, initrd_size(%rip)
        movzbl  0x1e8(%r14), %eax               /* e820_entries */
        mov     %rax, e820_count(%rip)
        lea     0x2d0(%r14), %rax               /* e820_table */
        mov     %rax, e820_table(%rip)
        movq    $20, e820_stride(%rip)
        ret

/* PVH: struct hvm_start_info at R14. */
read_start_info:
        cmpl    $PVH_MAGIC, (%r14)
        je      1f
        lea     msg_bad_magic(%rip), %rsi
        call    puts
        jmp     stop
1:      mov     24(%r14), %rax                  /* cmdline_paddr */
        mov     %rax, cmdline(%rip)
        cmpl    $0, 12(%r14)                    /* nr_modules */
        je      2f
        mov     16(%r14), %rdx                  /* modlist_paddr */
        mov     (%rdx), %rax
        mov     %rax, initrd_addr(%rip)
        mov     8(%rdx), %rax
        mov     %rax, initrd_size(%rip)
2:      cmpl    $1, 4(%r14)                     /* the memory map came with version 1 */
        jb      3f
        mov     40(%r14), %rax                  /* memmap_paddr */
        mov     %rax, e820_table(%rip)
        mov     48(%r14), %eax                  /* memmap_entries */
        mov     %rax, e820_count(%rip)
        movq    $24, e820_stride(%rip)
3:      ret

/* ZF clear when the NUL-terminated word at RDI occurs in the command line. */
cmdline_has:
        mov     cmdline(%rip), %rsi
        test    %rsi, %rsi
        jz      3f
1:      cmpb    $0, (%rsi)
        je      3f
        xor     %ecx, %ecx
2:      mov     (%rdi, %rcx), %al
        test    %al, %al
        jz      4f
        cmp     (%rsi, %rcx), %al
        jne     5f
        inc     %rcx
        jmp     2b
5:      inc     %rsi
        jmp     1b
3:      xor     %eax, %eax                      /* sets ZF: not found */
        ret
4:      or      $1, %eax                        /* clears ZF: found */
        ret

/* CRC-32 (IEEE 802.3) of RCX bytes at RSI, into EAX. Table-driven: eight times
   fewer emulated instructions than bit by bit. */
crc32:
        push    %rsi
        push    %rcx
        lea     crc_table(%rip), %rdi
        xor     %edx, %edx
1:      mov     %edx, %eax
        mov     $8, %ecx
2:      shr     $1, %eax
        jnc     3f
        xor     $0xedb88320, %eax
3:      dec     %ecx
        jnz     2b
        mov     %eax, (%rdi, %rdx, 4)
        inc     %edx
        cmp     $256, %edx
        jne     1b
        pop     %rcx
        pop     %rsi
        mov     $0xffffffff, %eax
        test    %rcx, %rcx
        jz      5f
4:      movzbl  (%rsi), %edx
        xor     %al, %dl
        shr     $8, %eax
        xor     (%rdi, %rdx, 4), %eax
        inc     %rsi
        dec     %rcx
        jnz     4b
5:      not     %eax
        ret

/* Output, one port write per byte. */
putc:
        push    %rdx
        mov     $COM1, %dx
        out     %al, %dx
        pop     %rdx
        ret

puts:
1:      lodsb
        test    %al, %al
        jz      2f
        call    putc
        jmp     1b
2:      ret

newline:
        mov     $'\n', %al
        jmp     putc

/* RAX as ECX hex digits, most significant first. */
put_hex:
        mov     %rax, %rdx
        mov     %ecx, %esi
        shl     $2, %esi
1:      sub     $4, %esi
        mov     %rdx, %rax
        push    %rcx
        mov     %esi, %ecx
        shr     %cl, %rax
        pop     %rcx
        and     $0xf, %eax
        lea     hex_digits(%rip), %rdi
        mov     (%rdi, %rax), %al
        call    putc
        test    %esi, %esi
        jnz     1b
        ret

/* RAX in decimal. */
put_decimal:
        mov     $10, %r8
        xor     %ecx, %ecx
1:      xor     %edx, %edx
        div     %r8
        add     $'0', %dl
        push    %rdx
        inc     %ecx
        test    %rax, %rax
        jnz     1b
2:      pop     %rax
        call    putc
        dec     %ecx
        jnz     2b
        ret

        .section .rodata
/* Copied to 0x10000; an application processor starts here in real mode, CS = 0x1000. */
        .code16
ap_trampoline:
        cli
        mov     $(TRAMPOLINE >> 4), %ax
        mov     %ax, %ds
        lock incw (ap_count - ap_trampoline)
1:      hlt
        jmp     1b
        .balign 2
ap_count:
        .word   0
ap_trampoline_end:
        .code64
hex_digits:        .ascii "0123456789abcdef"
msg_banner:        .asciz "microvm-test-guest: hello\n"
msg_boot_pvh:      .asciz "boot: pvh\n"
msg_boot_linux64:  .asciz "boot: linux64\n"
msg_bad_magic:     .asciz "error: hvm_start_info has a wrong magic\n"
msg_cmdline:       .asciz "cmdline: "
msg_no_initrd:     .asciz "initrd: none\n"
msg_initrd_size:   .asciz "initrd: size="
msg_initrd_crc:    .asciz " crc32="
msg_e820_start:    .asciz "e820: start=0x"
msg_e820_size:     .asciz " size=0x"
msg_e820_type:     .asciz " type="
msg_int3:          .asciz "microvm-test-guest: executing int3\n"
msg_halt:          .asciz "microvm-test-guest: halting\n"
msg_reset:         .asciz "microvm-test-guest: reset\n"
word_int3:         .asciz "tg.int3"
word_triple:       .asciz "tg.triple"
word_storm:        .asciz "tg.storm"
msg_storm_seed:    .asciz "storm: seed=0x"
msg_storm_done:    .asciz "\nstorm: done\n"
msg_triple:        .asciz "microvm-test-guest: triple fault\n"
word_virtio:       .asciz "tg.virtio"
word_smp:          .asciz "tg.smp"
msg_smp:           .asciz "smp: "
msg_smp_alive:     .asciz " cpus alive\n"
msg_virtio_regs:   .asciz "virtio: magic=0x"
msg_virtio_version: .asciz " version="
msg_virtio_device: .asciz " device="
msg_virtio_ok:     .asciz "virtio: transmitq used 1\n"
msg_virtio_failed: .asciz "virtio: driver setup failed\n"
msg_virtio_line:   .ascii "microvm-test-guest: hello over virtio-console\n"
msg_virtio_line_end:
word_halt:         .asciz "tg.halt"
word_seed:         .asciz "tg.seed="
word_txflood:      .asciz "tg.txflood"
msg_txflood_done:  .asciz "txflood: done\n"
msg_txflood_failed: .asciz "txflood: the device did not complete the chain\n"
word_loop:         .asciz "tg.loop"
msg_loop:          .asciz "microvm-test-guest: loop\n"

        .section .data
        .balign 8
empty_idt:      .word 0
                .quad 0
        .balign 8
seed:           .quad 1
cmdline:        .quad 0
initrd_addr:    .quad 0
initrd_size:    .quad 0
e820_table:     .quad 0
e820_count:     .quad 0
e820_stride:    .quad 0

        .section .note.pvh, "a", @note
        .balign 4
        .long   2f - 1f                         /* namesz */
        .long   4f - 3f                         /* descsz */
        .long   18                              /* XEN_ELFNOTE_PHYS32_ENTRY */
1:      .asciz  "Xen"
2:      .balign 4
3:      .quad   pvh_start
4:      .balign 4

        .section .bss, "aw", @nobits
        .balign 4096
boot_tables:    .skip 3 * 4096
tables:         .skip 6 * 4096
crc_table:      .skip 1024
        .balign 4096
virtq:          .skip 2048
virtq_rx:       .skip 2048
flood_table:    .skip 16 * 16
        .balign 16
                .skip 4096
stack_top:
