/*
 * Wraps the test guest's flat image (PAYLOAD) in a Linux bzImage: a boot sector and
 * one setup sector carrying the setup header of the x86 boot protocol
 * (Documentation/arch/x86/boot.rst), then the protected-mode image whose 64-bit
 * entry point is at offset 0x200, as Linux's is. INIT_SIZE (image plus zeroed
 * memory it uses) comes from the link.
 *
 * A loader that runs the 16-bit setup code instead of using the 64-bit entry gets
 * a message on COM1 and a halted CPU.
 */
        .code16
        .section .setup, "ax"
start:
        .org    0x1f1
setup_sects:            .byte   1
root_flags:             .word   0
syssize:                .long   (payload_end - payload + 15) / 16
ram_size:               .word   0
vid_mode:               .word   0xffff
root_dev:               .word   0
boot_flag:              .word   0xaa55
        /* 0x200: the jump into the setup code, then the header proper. */
                        .byte   0xeb, real_mode_entry - 1f
1:
header:                 .ascii  "HdrS"
version:                .word   0x020f
realmode_swtch:         .long   0
start_sys_seg:          .word   0x1000
kernel_version:         .word   version_string - start - 0x200
type_of_loader:         .byte   0
loadflags:              .byte   0x01            /* LOADED_HIGH */
setup_move_size:        .word   0x8000
code32_start:           .long   0x100000
ramdisk_image:          .long   0
ramdisk_size:           .long   0
bootsect_kludge:        .long   0
heap_end_ptr:           .word   0
ext_loader_ver:         .byte   0
ext_loader_type:        .byte   0
cmd_line_ptr:           .long   0
initrd_addr_max:        .long   0x7fffffff
kernel_alignment:       .long   0x200000
relocatable_kernel:     .byte   1
min_alignment:          .byte   12
xloadflags:             .word   0x0003          /* XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G */
cmdline_size:           .long   2047
hardware_subarch:       .long   0
hardware_subarch_data:  .quad   0
payload_offset:         .long   0
payload_length:         .long   0
setup_data:             .quad   0
pref_address:           .quad   0x100000
init_size:              .long   INIT_SIZE
handover_offset:        .long   0
kernel_info_offset:     .long   0

real_mode_entry:
        mov     $(message - start), %si
        mov     $0x3f8, %dx
2:      lodsb
        test    %al, %al
        jz      3f
        out     %al, %dx
        jmp     2b
3:      cli
        hlt
        jmp     3b

message:
        .asciz  "microvm-test-guest: 16-bit entry is not supported; boot with the 64-bit protocol or PVH\n"
version_string:
        .asciz  "microvm-test-guest"

        .org    0x400
payload:
        .incbin PAYLOAD
payload_end:
