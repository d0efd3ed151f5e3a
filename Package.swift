// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "microvm",
    products: [
        .library(name: "VMM", targets: ["VMM"]),
        .executable(name: "microvm", targets: ["microvm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        .target(name: "CKVM"),
        .systemLibrary(name: "CSeccomp", providers: [.apt(["libseccomp-dev"])]),
        .target(
            name: "VMM",
            dependencies: [
                "CKVM",
                "CSeccomp",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "microvm",
            dependencies: [
                "VMM",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "VMMTests", dependencies: ["VMM", "CKVM"]),
        .testTarget(name: "IntegrationTests", dependencies: ["VMM", "CKVM"]),
    ]
)
