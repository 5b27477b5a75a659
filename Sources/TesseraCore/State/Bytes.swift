/// Little-endian binary encoding for checkpointed state. Pure: bytes in, bytes out, no I/O.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    /// A writer that starts empty in `buffer`'s memory (kept when no copy of `buffer` is held
    /// elsewhere), leaving `buffer` empty.
    public init(taking buffer: inout [UInt8]) {
        swap(&bytes, &buffer)
        bytes.removeAll(keepingCapacity: true)
    }

    /// Room for `count` bytes in all, so that a large state is written without regrowing (and
    /// recopying) the buffer; untouched room costs address space, not memory.
    public mutating func reserveCapacity(_ count: Int) { bytes.reserveCapacity(count) }

    /// Bytes the buffer holds without growing.
    public var capacity: Int { bytes.capacity }

    public mutating func write<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func write(_ value: Double) { write(value.bitPattern) }

    public mutating func write(_ value: Bool) { write(UInt8(value ? 1 : 0)) }

    public mutating func write(_ value: String) {
        let utf8 = Array(value.utf8)
        write(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// Arrays of plain values are written as their raw memory (this format is little-endian only).
    public mutating func write<T: BitwiseCopyable>(array: [T]) {
        write(UInt64(array.count))
        array.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }

    /// Writes a placeholder length; `endSection(at:)` fills in the bytes written since.
    public mutating func beginSection() -> Int {
        write(UInt64(0))
        return bytes.count
    }

    public mutating func endSection(at start: Int) {
        let length = UInt64(bytes.count - start).littleEndian
        withUnsafeBytes(of: length) { for (i, b) in $0.enumerated() { bytes[start - 8 + i] = b } }
    }

    /// Raw bytes, as they are (the caller frames them).
    public mutating func write(raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    public mutating func write<T: BitwiseCopyable>(arrays: [[T]]) {
        write(UInt64(arrays.count))
        for a in arrays { write(array: a) }
    }
}

public struct StateFormatError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

public struct ByteReader {
    private let bytes: [UInt8]
    public private(set) var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { position == bytes.count }

    /// Bytes left to read.
    public var remaining: Int { bytes.count - position }

    /// Reads a section's length (see `ByteWriter.beginSection`) and returns its byte range.
    public mutating func section() throws -> Range<Int> {
        let n = try count(limit: bytes.count - position - 8)
        return position..<(position + n)
    }

    public mutating func seek(to offset: Int) throws {
        guard offset >= 0, offset <= bytes.count else { throw StateFormatError(description: "state is truncated (seek to \(offset))") }
        position = offset
    }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - position else {
            throw StateFormatError(description: "state is truncated at byte \(position) (wanted \(n) more)")
        }
        defer { position += n }
        return bytes[position..<position + n]
    }

    public mutating func read<T: FixedWidthInteger>(_: T.Type = T.self) throws -> T {
        let slice = try take(MemoryLayout<T>.size)
        var value = T.zero
        withUnsafeMutableBytes(of: &value) { $0.copyBytes(from: slice) }
        return T(littleEndian: value)
    }

    public mutating func read(_: Double.Type = Double.self) throws -> Double {
        Double(bitPattern: try read(UInt64.self))
    }

    public mutating func read(_: Bool.Type = Bool.self) throws -> Bool {
        try read(UInt8.self) != 0
    }

    public mutating func read(_: String.Type = String.self) throws -> String {
        let n = try count(limit: bytes.count)
        return String(decoding: try take(n), as: UTF8.self)
    }

    public mutating func readArray<T: BitwiseCopyable>(of _: T.Type = T.self) throws -> [T] {
        let n = try count(limit: (bytes.count - position) / max(1, MemoryLayout<T>.stride))
        let slice = try take(n * MemoryLayout<T>.stride)
        return [T](unsafeUninitializedCapacity: n) { buffer, initialized in
            UnsafeMutableRawBufferPointer(buffer).copyBytes(from: slice)
            initialized = n
        }
    }

    /// Fills `buffer` with the next `buffer.count` bytes.
    public mutating func readRaw(into buffer: UnsafeMutableRawBufferPointer) throws {
        let slice = try take(buffer.count)
        slice.withUnsafeBytes { buffer.copyMemory(from: $0) }
    }

    public mutating func readArrays<T: BitwiseCopyable>(of _: T.Type = T.self) throws -> [[T]] {
        let n = try count(limit: bytes.count - position)
        return try (0..<n).map { _ in try readArray(of: T.self) }
    }

    /// Reads a count and checks it against what the remaining bytes could hold.
    public mutating func count(limit: Int) throws -> Int {
        let n = try read(UInt64.self)
        guard n <= UInt64(max(0, limit)) else {
            throw StateFormatError(description: "state is corrupt at byte \(position): count \(n) exceeds \(limit)")
        }
        return Int(n)
    }

    public mutating func expect(_ tag: String) throws {
        let found = try read(String.self)
        guard found == tag else {
            throw StateFormatError(description: "state is corrupt: expected section '\(tag)', found '\(found.prefix(40))'")
        }
    }
}
