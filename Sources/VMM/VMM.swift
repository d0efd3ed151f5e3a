// The library's public face: one import for the layers a VMM user needs.
@_exported import ACPI
@_exported import Arch
@_exported import Boot
@_exported import Devices
@_exported import KVM
@_exported import Memory
@_exported import Runtime
@_exported import X86
