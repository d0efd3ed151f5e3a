// libFuzzer target: microvm-oci's JSON parser and its reading of a bundle's config.json.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let value = try? JSONValue.parse(bytes) else { return 0 }
    // What is encoded parses back to the same value.
    precondition((try? JSONValue.parse(Array(value.encoded.utf8))) == value)
    if let spec = try? ContainerSpec(value, bundle: "/bundle") {
        precondition(!spec.process.args.isEmpty && spec.root.path.hasPrefix("/") && spec.ociVersion.hasPrefix("1."))
    }
    return 0
}
