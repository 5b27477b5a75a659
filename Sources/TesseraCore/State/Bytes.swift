/// Where a streaming `ByteWriter` hands its bytes: a checkpoint file being written, a counter.
/// A sink that fails keeps its first error for whoever finishes it; later bytes are ignored.
public protocol ByteSink: AnyObject {
    func take(_ bytes: UnsafeRawBufferPointer)
}

/// Counts the bytes it is handed (the size of an image, before it is written).
public final class ByteCounter: ByteSink {
    public private(set) var count = 0
    public init() {}
    public func take(_ bytes: UnsafeRawBufferPointer) { count += bytes.count }
}

/// Little-endian binary encoding for checkpointed state. Pure: bytes in, bytes out, no I/O.
///
/// A writer either keeps its bytes (`bytes`) or streams them to a `ByteSink`: small values gather
/// in a 64 KiB buffer that goes to the sink when full, and raw memory of 4 KiB or more (a slab's
/// items, a large array) goes to the sink from where it lies. A state of hundreds of MiB is then
/// written to its file without an image of it in memory.
public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []
    private let sink: (any ByteSink)?
    /// Bytes handed to the sink so far.
    private var streamed = 0

    static let gathered = 1 << 16
    static let direct = 1 << 12

    public init() { sink = nil }

    /// A writer that hands its bytes to `sink` (`finish()` hands over the last ones).
    public init(streamingTo sink: any ByteSink) {
        self.sink = sink
        bytes.reserveCapacity(Self.gathered + Self.direct)
    }

    /// Bytes written so far.
    public var count: Int { streamed + bytes.count }

    /// Hands the bytes still gathered to the sink.
    public mutating func finish() {
        guard let sink, !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { sink.take($0) }
        streamed += bytes.count
        bytes.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    private mutating func gathered() {
        if sink != nil && bytes.count >= Self.gathered { finish() }
    }

    public mutating func write<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        gathered()
    }

    public mutating func write(_ value: Double) { write(value.bitPattern) }

    public mutating func write(_ value: Bool) { write(UInt8(value ? 1 : 0)) }

    public mutating func write(_ value: String) {
        let utf8 = Array(value.utf8)
        write(UInt64(utf8.count))
        utf8.withUnsafeBytes { write(raw: $0) }
    }

    /// Arrays of plain values are written as their raw memory (this format is little-endian only).
    public mutating func write<T: BitwiseCopyable>(array: [T]) {
        write(UInt64(array.count))
        array.withUnsafeBytes { write(raw: $0) }
    }

    /// Raw bytes, as they are (the caller frames them).
    public mutating func write(raw: UnsafeRawBufferPointer) {
        if let sink, raw.count >= Self.direct {
            finish()
            sink.take(raw)
            streamed += raw.count
            return
        }
        bytes.append(contentsOf: raw)
        gathered()
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

    /// Reads a section's length (a count of the bytes that follow) and returns its byte range.
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
