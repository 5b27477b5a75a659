// Files as durability needs them: written in full and fsynced (`OutputFile`), replaced so that a
// reader or a crash sees the old file or the whole new one (`AtomicFile`), read at offsets
// (`ReadOnlyFile`). The one place Tessera's file formats (Parquet, checkpoints, training sets)
// talk to POSIX.

import TesseraCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file operation that failed, with the path and the system's reason (disk full, no such
/// directory, permission denied, …).
public struct FileError: Error, CustomStringConvertible, Sendable {
    public var action: String
    public var path: String
    public var code: Int32
    public var description: String { "cannot \(action) \(path): \(String(cString: strerror(code)))" }

    public init(_ action: String, _ path: String, code: Int32 = errno) {
        self.action = action
        self.path = path
        self.code = code
    }
}

/// A file created (or truncated) for writing: every write is written in full (interrupted writes
/// resumed), and `close()` fsyncs before it closes. Dropped without `close()`, the descriptor is
/// closed and the file left as it is.
public final class OutputFile {
    public let path: String
    private var fd: Int32

    public init(creating path: String) throws(FileError) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError("create", path) }
    }

    deinit {
        if fd >= 0 { _ = closeDescriptor(fd) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(FileError) {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let r = writeDescriptor(fd, base + done, bytes.count - done)
            if r < 0 {
                if errno == EINTR { continue }
                throw FileError("write", path)
            }
            done += r
        }
    }

    public func write(_ bytes: [UInt8]) throws(FileError) {
        let failed: FileError? = bytes.withUnsafeBytes { b in
            do throws(FileError) { try write(b); return nil } catch { return error }
        }
        if let failed { throw failed }
    }

    /// Cuts the file back to `size` bytes; the next write goes there.
    public func truncate(to size: Int64) throws(FileError) {
        guard fd >= 0 else { throw FileError("truncate", path, code: EBADF) }
        guard ftruncate(fd, off_t(size)) == 0 else { throw FileError("truncate", path) }
        guard lseek(fd, off_t(size), SEEK_SET) == off_t(size) else { throw FileError("seek in", path) }
    }

    /// Makes everything written durable (fsync) and closes the file. Closing twice is a no-op.
    public func close() throws(FileError) {
        guard fd >= 0 else { return }
        guard fsync(fd) == 0 else { throw FileError("sync", path) }
        let r = closeDescriptor(fd)
        fd = -1
        guard r == 0 else { throw FileError("close", path) }
    }
}

extension OutputFile {
    /// Creates `path` holding `parts` one after the other, fsynced. Written with direct I/O where
    /// the file system takes it, through one 4 MiB buffer aligned for it: a large file (a
    /// checkpoint image of hundreds of MiB) then costs the disk's time and one copy at memory speed,
    /// not its way through the page cache (640 MiB on this project's VM: 0.26 s of system CPU
    /// against 1.56 s buffered). Where the file system does not take direct I/O, or refuses a
    /// direct write, the file is written again the ordinary way.
    public static func write(_ path: String, parts: [UnsafeRawBufferPointer]) throws(FileError) {
        try write(path, parts: parts, directWritesTaken: .max)
    }

    /// `write(_:parts:)` on a file system that takes `directWritesTaken` direct writes and then
    /// refuses one (as some do for a buffer or offset they cannot serve): how tests reach the
    /// fallback after part of the file went out direct.
    static func write(_ path: String, parts: [UnsafeRawBufferPointer], directWritesTaken: Int) throws(FileError) {
        if try writeDirect(path, parts: parts, taken: directWritesTaken) { return }
        let file = try OutputFile(creating: path)
        for part in parts { try file.write(part) }
        try file.close()
    }

    static let directChunk = 4 << 20
    static let directAlignment = 4096

    /// False when direct I/O is not to be had (the file is then left for an ordinary write).
    private static func writeDirect(_ path: String, parts: [UnsafeRawBufferPointer], taken: Int) throws(FileError) -> Bool {
        let fd = createForDirectWrites(path)
        if fd < 0 {
            if errno == EINVAL { return false }
            throw FileError("create", path)
        }
        var open = true
        defer { if open { _ = closeDescriptor(fd) } }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: directChunk, alignment: directAlignment)
        defer { buffer.deallocate() }
        var filled = 0, total = 0, writes = 0
        // Writes the buffer's first `count` bytes (a multiple of the alignment); false when the
        // file system refused direct I/O.
        func emit(_ count: Int) throws(FileError) -> Bool {
            guard writes < taken else { return false }
            writes += 1
            var done = 0
            while done < count {
                let r = writeDescriptor(fd, buffer + done, count - done)
                if r < 0 {
                    if errno == EINTR { continue }
                    if errno == EINVAL { return false }
                    throw FileError("write", path)
                }
                // A short direct write leaves the rest unaligned: the ordinary write reports why.
                if r % directAlignment != 0 || r == 0 { return false }
                done += r
            }
            return true
        }
        for part in parts {
            guard let base = part.baseAddress else { continue }
            var taken = 0
            while taken < part.count {
                let n = min(directChunk - filled, part.count - taken)
                (buffer + filled).copyMemory(from: base + taken, byteCount: n)
                filled += n
                taken += n
                total += n
                if filled == directChunk {
                    guard try emit(filled) else { return false }
                    filled = 0
                }
            }
        }
        if filled > 0 {
            let padded = (filled + directAlignment - 1) & ~(directAlignment - 1)
            (buffer + filled).initializeMemory(as: UInt8.self, repeating: 0, count: padded - filled)
            guard try emit(padded) else { return false }
        }
        guard ftruncate(fd, off_t(total)) == 0 else { throw FileError("truncate", path) }
        guard fsync(fd) == 0 else { throw FileError("sync", path) }
        open = false
        guard closeDescriptor(fd) == 0 else { throw FileError("close", path) }
        return true
    }
}

/// Replacing a file atomically: the new content goes to a temporary file in the same directory,
/// which is fsynced, renamed over the target and the directory fsynced. Readers see the old file
/// or the whole new one; after a crash the temporary file may be left behind, never a part of
/// the new file under the target's name. Durability (offline log files, checkpoints, compacted
/// files, training sets) rests on this one protocol.
public enum AtomicFile {
    /// The temporary file `replace` writes by default: `.NAME.tmp` beside `path`.
    public static func temporaryPath(for path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        return "\(dir).\(name).tmp"
    }

    /// Replaces `path` with what `write` puts in the temporary file it is given: `write` creates
    /// the file, fills it and fsyncs it (an `OutputFile` closed, or a `ParquetFileWriter` closed).
    /// On any failure the temporary file is removed and `path` is left as it was.
    public static func replace(_ path: String, temporary: String? = nil, _ write: (String) throws -> Void) throws {
        let temporary = temporary ?? temporaryPath(for: path)
        do {
            try write(temporary)
            try moveIntoPlace(temporary, path)
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// The end of `replace` for a temporary file written and fsynced by other means: renames it
    /// over `path` and fsyncs the directory. On failure both files are left as they are.
    public static func moveIntoPlace(_ temporary: String, _ path: String) throws(FileError) {
        guard rename(temporary, path) == 0 else { throw FileError("rename into place", temporary) }
        syncDirectory(of: path)
    }

    /// Replaces `path` with bytes written through an `OutputFile`.
    public static func replace(_ path: String, writing body: (OutputFile) throws -> Void) throws {
        try replace(path) { temporary in
            let file = try OutputFile(creating: temporary)
            try body(file)
            try file.close()
        }
    }

    /// Fsyncs the directory holding `path`, so that a rename or unlink in it is durable.
    public static func syncDirectory(of path: String) {
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        syncDirectory(dir.isEmpty ? "/" : dir)
    }

    /// Fsyncs a directory (renames and removals in it become durable).
    public static func syncDirectory(_ dir: String) {
        let fd = open(dir, O_RDONLY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            _ = closeDescriptor(fd)
        }
    }
}

private func closeDescriptor(_ fd: Int32) -> Int32 { close(fd) }
private func writeDescriptor(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int { write(fd, buffer, count) }

func posixErrorMessage(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// A file opened read-only for the lifetime of the object.
final class ReadOnlyFile {
    let path: String
    let fd: Int32
    let size: Int64

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ParquetError("cannot open \(path): \(posixErrorMessage())") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let message = posixErrorMessage()
            _ = closeDescriptor(fd)
            throw ParquetError("cannot stat \(path): \(message)")
        }
        size = Int64(st.st_size)
    }

    deinit {
        _ = closeDescriptor(fd)
    }

    /// Exactly `count` bytes at `offset`; throws when the file is shorter.
    func read(at offset: Int64, count: Int) throws -> [UInt8] {
        guard count >= 0, offset >= 0, offset <= size, Int64(count) <= size - offset else {
            throw ParquetError("corrupt file \(path): a read of \(count) bytes at \(offset) is outside the file")
        }
        return try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var done = 0
            while done < count {
                let r = pread(fd, buffer.baseAddress! + done, count - done, off_t(offset + Int64(done)))
                if r < 0 {
                    if errno == EINTR { continue }
                    throw ParquetError("cannot read \(path): \(posixErrorMessage())")
                }
                if r == 0 { throw ParquetError("corrupt file \(path): unexpected end of file") }
                done += r
            }
            initialized = count
        }
    }
}
