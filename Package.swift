// swift-tools-version:6.0
import PackageDescription

// One target per layer, so that a wrong-way dependency does not compile: devices
// and loaders see guest memory, never KVM; only the runtime wires them together.
let package = Package(
    name: "microvm",
    products: [
        .library(name: "VMM", targets: ["VMM"]),
        .executable(name: "microvm", targets: ["microvm"]),
        .executable(name: "microvm-oci", targets: ["microvm-oci"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        .target(name: "CKVM"),
        .target(name: "CLinux"),
        .systemLibrary(name: "CSeccomp", providers: [.apt(["libseccomp-dev"])]),
        .target(name: "Memory", dependencies: ["CLinux"]),
        .target(name: "X86"),
        .target(
            name: "KVM",
            dependencies: ["CKVM", "CLinux", "Memory", "X86", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(name: "Boot", dependencies: ["Memory"]),
        .target(name: "Arch", dependencies: ["Memory", "Boot", "X86"]),
        .target(name: "Devices", dependencies: ["Memory", "CLinux"]),
        .target(name: "ACPI", dependencies: ["Memory"]),
        .target(
            name: "Runtime",
            dependencies: ["KVM", "Memory", "X86", "Boot", "Arch", "ACPI", "Devices", "CLinux", "CSeccomp",
                           .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(name: "VMM", dependencies: ["Runtime", "KVM", "Memory", "X86", "Boot", "Arch", "ACPI", "Devices"]),
        .executableTarget(
            name: "microvm",
            dependencies: [
                "VMM",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The OCI runtime: config.json and the runtime's state, then its command line.
        .target(name: "OCI", dependencies: ["VMM", "Runtime"]),
        .executableTarget(name: "microvm-oci", dependencies: ["OCI", "VMM", "CLinux"]),
        // Runs VM cycles alone in a process of its own, so that the leak and stop tests
        // measure nothing but the VMs they start.
        .executableTarget(name: "vmm-probe", dependencies: ["VMM"], path: "Tests/Probe"),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "Runtime", "KVM", "Memory", "X86", "Boot", "Arch", "ACPI", "Devices", "CLinux"]),
        .testTarget(name: "OCITests", dependencies: ["OCI", "VMM"]),
        .testTarget(name: "IntegrationTests", dependencies: ["VMM", "Runtime", "CLinux", "OCI"]),
    ]
)
