// Thin wrappers over the POSIX file calls used by the writer and the reader.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func posixOpen(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
    open(path, flags, mode)
}

func posixClose(_ fd: Int32) -> Int32 {
    close(fd)
}

func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}

func posixPread(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int, _ offset: Int64) -> Int {
    pread(fd, buffer, count, off_t(offset))
}

func posixFsync(_ fd: Int32) -> Int32 {
    fsync(fd)
}

func posixErrno() -> Int32 { errno }

func posixErrorMessage(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

func posixFileSize(_ fd: Int32) -> Int64? {
    var st = stat()
    guard fstat(fd, &st) == 0 else { return nil }
    return Int64(st.st_size)
}

let posixEINTR = EINTR

/// A file opened read-only for the lifetime of the object.
final class ReadOnlyFile {
    let path: String
    let fd: Int32
    let size: Int64

    init(path: String) throws {
        self.path = path
        fd = posixOpen(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ParquetError("cannot open \(path): \(posixErrorMessage())") }
        guard let size = posixFileSize(fd) else {
            let message = posixErrorMessage()
            _ = posixClose(fd)
            throw ParquetError("cannot stat \(path): \(message)")
        }
        self.size = size
    }

    deinit {
        _ = posixClose(fd)
    }

    /// Exactly `count` bytes at `offset`; throws when the file is shorter.
    func read(at offset: Int64, count: Int) throws -> [UInt8] {
        guard count >= 0, offset >= 0, offset <= size, Int64(count) <= size - offset else {
            throw ParquetError("corrupt file \(path): a read of \(count) bytes at \(offset) is outside the file")
        }
        return try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var done = 0
            while done < count {
                let r = posixPread(fd, buffer.baseAddress! + done, count - done, offset + Int64(done))
                if r < 0 {
                    if posixErrno() == posixEINTR { continue }
                    throw ParquetError("cannot read \(path): \(posixErrorMessage())")
                }
                if r == 0 { throw ParquetError("corrupt file \(path): unexpected end of file") }
                done += r
            }
            initialized = count
        }
    }
}
