/// Constants and small types of 9P2000.L, the dialect Linux's v9fs speaks
/// (https://github.com/chaos/diod/blob/master/protocol.md).
public enum NineP {
    public static let version = "9P2000.L"
    /// The tag of a Tversion, which has no other request to answer to.
    public static let noTag: UInt16 = 0xffff
    public static let noFid: UInt32 = 0xffff_ffff
    /// size[4] type[1] tag[2]
    public static let headerSize = 7
    /// Names one Twalk may carry.
    public static let maximumWalkNames = 16

    /// A file's identity as the client caches it: its kind, a version and its inode.
    public struct Qid: Equatable, Sendable {
        public var type: UInt8
        public var version: UInt32
        public var path: UInt64

        public static let directory: UInt8 = 0x80
        public static let symlink: UInt8 = 0x02
        public static let file: UInt8 = 0x00

        public init(type: UInt8, version: UInt32, path: UInt64) {
            self.type = type
            self.version = version
            self.path = path
        }
    }

    /// Rgetattr's fields, in wire order.
    public struct Attributes: Equatable, Sendable {
        public var valid: UInt64 = 0
        public var qid = Qid(type: 0, version: 0, path: 0)
        public var mode: UInt32 = 0
        public var uid: UInt32 = 0
        public var gid: UInt32 = 0
        public var linkCount: UInt64 = 0
        public var rdev: UInt64 = 0
        public var size: UInt64 = 0
        public var blockSize: UInt64 = 0
        public var blocks: UInt64 = 0
        public var accessTime = Time()
        public var modificationTime = Time()
        public var changeTime = Time()
        public var birthTime = Time()
        public var generation: UInt64 = 0
        public var dataVersion: UInt64 = 0

        public init() {}

        /// What Rgetattr's valid mask covers when all basic fields are filled (P9_GETATTR_BASIC).
        public static let basic: UInt64 = 0x7ff
    }

    public struct Time: Equatable, Sendable {
        public var seconds: UInt64 = 0
        public var nanoseconds: UInt64 = 0

        public init(seconds: UInt64 = 0, nanoseconds: UInt64 = 0) {
            self.seconds = seconds
            self.nanoseconds = nanoseconds
        }
    }

    /// Tsetattr's fields; `valid` says which apply.
    public struct SetAttributes: Equatable, Sendable {
        public var valid: UInt32
        public var mode: UInt32 = 0
        public var uid: UInt32 = 0
        public var gid: UInt32 = 0
        public var size: UInt64 = 0
        public var accessTime = Time()
        public var modificationTime = Time()

        public init(valid: UInt32, mode: UInt32 = 0, uid: UInt32 = 0, gid: UInt32 = 0, size: UInt64 = 0,
                    accessTime: Time = Time(), modificationTime: Time = Time()) {
            self.valid = valid
            self.mode = mode
            self.uid = uid
            self.gid = gid
            self.size = size
            self.accessTime = accessTime
            self.modificationTime = modificationTime
        }

        public static let mode: UInt32 = 0x1
        public static let uid: UInt32 = 0x2
        public static let gid: UInt32 = 0x4
        public static let size: UInt32 = 0x8
        public static let accessTime: UInt32 = 0x10
        public static let modificationTime: UInt32 = 0x20
        public static let changeTime: UInt32 = 0x40
        public static let accessTimeSet: UInt32 = 0x80
        public static let modificationTimeSet: UInt32 = 0x100
    }

    /// Rstatfs's fields, in wire order.
    public struct FileSystemStatistics: Equatable, Sendable {
        public var type: UInt32
        public var blockSize: UInt32
        public var blocks: UInt64
        public var freeBlocks: UInt64
        public var availableBlocks: UInt64
        public var files: UInt64
        public var freeFiles: UInt64
        public var fileSystemID: UInt64
        public var nameLength: UInt32
    }

    /// A byte-range lock as Tlock and Tgetlock describe it.
    public struct Lock: Equatable, Sendable {
        public var type: UInt8
        public var start: UInt64
        public var length: UInt64
        public var processID: UInt32
        public var clientID: String

        public static let readLock: UInt8 = 0
        public static let writeLock: UInt8 = 1
        public static let unlock: UInt8 = 2
    }

    public enum LockStatus {
        public static let success: UInt8 = 0
        public static let blocked: UInt8 = 1
        public static let error: UInt8 = 2
    }

    /// The Linux errno values the server answers with (Rlerror carries Linux's numbers).
    public enum Errno {
        public static let permission: UInt32 = 1
        public static let noEntry: UInt32 = 2
        public static let badFile: UInt32 = 9
        public static let exists: UInt32 = 17
        public static let notDirectory: UInt32 = 20
        public static let invalid: UInt32 = 22
        public static let tooManyFiles: UInt32 = 24
        public static let readOnly: UInt32 = 30
        public static let nameTooLong: UInt32 = 36
        public static let noData: UInt32 = 61
        public static let illegalSequence: UInt32 = 84
        public static let messageTooLong: UInt32 = 90
        public static let notSupported: UInt32 = 95
    }
}
