import Glibc

/// Where a loader reads an image: an array in memory, or the file itself.
protocol ImageSource {
    var count: Int { get }
    /// `count` bytes from `offset`; the range lies within the image.
    func bytes(at offset: Int, count: Int) throws(BootError) -> [UInt8]
    /// Fills `destination` from `offset` on; the range lies within the image.
    func copy(from offset: Int, to destination: UnsafeMutableRawBufferPointer) throws(BootError)
}

struct ImageBytes: ImageSource {
    let image: [UInt8]

    init(_ image: [UInt8]) {
        self.image = image
    }

    var count: Int { image.count }

    func bytes(at offset: Int, count: Int) -> [UInt8] {
        Array(image[offset..<(offset + count)])
    }

    func copy(from offset: Int, to destination: UnsafeMutableRawBufferPointer) {
        image[offset..<(offset + destination.count)].withUnsafeBytes { destination.copyMemory(from: $0) }
    }
}

/// An open image file read on demand; valid while the `ImageFile` it came from is.
struct ImageFileSource: ImageSource {
    let fd: Int32
    let path: String
    let count: Int

    func bytes(at offset: Int, count: Int) throws(BootError) -> [UInt8] {
        var failure: BootError?
        let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            do throws(BootError) {
                try copy(from: offset, to: UnsafeMutableRawBufferPointer(buffer))
                initialized = count
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return bytes
    }

    func copy(from offset: Int, to destination: UnsafeMutableRawBufferPointer) throws(BootError) {
        var done = 0
        while done < destination.count {
            let result = pread(fd, destination.baseAddress! + done, destination.count - done, off_t(offset + done))
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                throw .unreadable(file: path, reason: result == 0 ? "the file shrank while being read" : String(cString: strerror(errno)))
            }
            done += result
        }
    }
}
