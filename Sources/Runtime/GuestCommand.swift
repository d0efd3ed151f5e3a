/// A command for the guest's /init, carried on the kernel command line with every
/// argument intact: `microvm.argv=A,B,…`, each argument base64-encoded with a `.` appended
/// before encoding (so that an empty argument, or one ending in newlines, survives the
/// shell's command substitution that decodes it). Base64 has neither spaces, quotes nor
/// commas, so the kernel's own word splitting cannot touch it.
enum GuestCommand {
    static let parameterName = "microvm.argv"

    static func kernelParameter(_ arguments: [String]) -> String {
        parameterName + "=" + arguments.map { base64(Array($0.utf8) + [UInt8(ascii: ".")]) }.joined(separator: ",")
    }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func base64(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            let value = chunk.enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (16 - 8 * $1.offset) }
            for position in 0..<4 {
                output.append(position <= chunk.count ? alphabet[Int((value >> (18 - 6 * position)) & 0x3f)] : UInt8(ascii: "="))
            }
            index += 3
        }
        return String(decoding: output, as: UTF8.self)
    }
}
