import Foundation
import TesseraCore

/// One scanning thread's records, by bucket; past `limit` records everything buffered is appended
/// to the thread's spill file (unlinked at once, so that nothing is left behind) and the buffers
/// start again.
struct BucketWriter {
    typealias Record = ViewJoin.Record

    fileprivate var buffers: [[Record]]
    fileprivate var segments: [[(offset: Int64, count: Int)]]
    fileprivate var fd: Int32 = -1
    private var buffered = 0
    private var size: Int64 = 0
    private let limit: Int
    private let directory: String

    init(buckets: Int, reserve: Int, limit: Int, directory: String) {
        buffers = (0..<buckets).map { _ in
            var a: [Record] = []
            a.reserveCapacity(reserve)
            return a
        }
        segments = Array(repeating: [], count: buckets)
        self.limit = limit
        self.directory = directory
    }

    @inline(__always)
    mutating func append(_ record: Record, bucket: Int) throws {
        buffers[bucket].append(record)
        buffered += 1
        if buffered >= limit { try spill() }
    }

    private mutating func spill() throws {
        if fd < 0 {
            let path = (directory as NSString).appendingPathComponent("tessera-historical-\(UUID().uuidString).spill")
            fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw HistoricalError("cannot create a spill file in \(directory): \(String(cString: strerror(errno)))") }
            unlink(path)
        }
        for b in buffers.indices where !buffers[b].isEmpty {
            let bytes = buffers[b].count * MemoryLayout<Record>.stride
            try buffers[b].withUnsafeBytes { raw in
                var done = 0
                while done < bytes {
                    let r = pwrite(fd, raw.baseAddress! + done, bytes - done, off_t(size) + off_t(done))
                    if r < 0 {
                        if errno == EINTR { continue }
                        throw HistoricalError("cannot write a spill file in \(directory): \(String(cString: strerror(errno)))")
                    }
                    done += r
                }
            }
            segments[b].append((size, buffers[b].count))
            size += Int64(bytes)
            buffers[b].removeAll(keepingCapacity: true)
        }
        buffered = 0
    }
}

/// A scanning thread's records once the scan is over: read-only, loaded bucket by bucket by the
/// joining threads (`pread` on the spill file, then the buffers).
final class BucketSpill: @unchecked Sendable {  // immutable after init; pread needs no lock
    typealias Record = ViewJoin.Record

    private let buffers: [[Record]]
    private let segments: [[(offset: Int64, count: Int)]]
    private let fd: Int32

    init(_ writer: BucketWriter) {
        buffers = writer.buffers
        segments = writer.segments
        fd = writer.fd
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// Appends bucket `b`'s records, in the order they were scanned.
    func load(bucket b: Int, into out: inout [Record]) throws {
        for (offset, count) in segments[b] {
            let start = out.count
            out.append(contentsOf: repeatElement(Record(event: 0, created: 0, id: 0, file: 0, row: 0), count: count))
            try out.withUnsafeMutableBytes { raw in
                let bytes = count * MemoryLayout<Record>.stride
                let base = raw.baseAddress! + start * MemoryLayout<Record>.stride
                var done = 0
                while done < bytes {
                    let r = pread(fd, base + done, bytes - done, off_t(offset) + off_t(done))
                    if r < 0 && errno == EINTR { continue }
                    guard r > 0 else { throw HistoricalError("cannot read back a spill file: \(String(cString: strerror(errno)))") }
                    done += r
                }
            }
        }
        out.append(contentsOf: buffers[b])
    }

    /// Bytes of records that went to disk.
    var spilledBytes: Int { segments.reduce(0) { $0 + $1.reduce(0) { $0 + $1.count } } * MemoryLayout<Record>.stride }
}

/// A fixed-size buffer that several threads write at disjoint indices.
final class SharedBuffer<Element>: @unchecked Sendable {  // callers write disjoint indices, read after joining
    let pointer: UnsafeMutableBufferPointer<Element>

    init(count: Int, repeating value: Element) {
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: value)
    }

    deinit {
        pointer.deinitialize()
        pointer.deallocate()
    }

    subscript(i: Int) -> Element {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }
}

/// The requested features of one view, filled row by row by the gathering threads.
final class GatheredFeatures: @unchecked Sendable {  // each entity row is written by one thread only
    /// One thread's string bytes, per feature.
    final class Heap: @unchecked Sendable {  // touched by its own thread only
        var bytes: [[UInt8]]
        init(features: Int) { bytes = Array(repeating: [], count: features) }
    }

    let types: [ValueType]
    let rows: Int
    /// Per feature: 0 = null, else 1 + the thread that wrote the value.
    private let valid: [SharedBuffer<UInt8>]
    /// int64 and bool values, doubles as bit patterns, strings as (start << 32 | length) in their heap.
    private let values: [SharedBuffer<Int64>]
    private let heaps: [Heap]

    init(types: [ValueType], rows: Int, threads: Int) {
        self.types = types
        self.rows = rows
        valid = types.map { _ in SharedBuffer(count: rows, repeating: 0) }
        values = types.map { _ in SharedBuffer(count: rows, repeating: 0) }
        heaps = (0..<threads).map { _ in Heap(features: types.count) }
    }

    /// Fills feature `c` from a row group's column: each pair is (row in file) << 32 | entity row,
    /// and `base` is the row group's first row in the file.
    func fill(_ c: Int, from column: Column, pairs: UnsafeBufferPointer<UInt64>, base: Int, thread: Int) {
        let valid = self.valid[c].pointer, values = self.values[c].pointer
        let validity = column.validity
        let mark = UInt8(1 + thread)
        switch column.type {
        case .int64, .bool:
            column.ints.withUnsafeBufferPointer { ints in
                for p in pairs {
                    let row = Int(p >> 32) - base, entityRow = Int(p & 0xFFFF_FFFF)
                    guard validity[row] else { continue }
                    values[entityRow] = ints[row]
                    valid[entityRow] = mark
                }
            }
        case .float64:
            column.doubles.withUnsafeBufferPointer { doubles in
                for p in pairs {
                    let row = Int(p >> 32) - base, entityRow = Int(p & 0xFFFF_FFFF)
                    guard validity[row] else { continue }
                    values[entityRow] = Int64(bitPattern: doubles[row].bitPattern)
                    valid[entityRow] = mark
                }
            }
        case .string:
            let heap = heaps[thread]
            column.offsets.withUnsafeBufferPointer { offsets in
                column.bytes.withUnsafeBufferPointer { bytes in
                    for p in pairs {
                        let row = Int(p >> 32) - base, entityRow = Int(p & 0xFFFF_FFFF)
                        guard validity[row] else { continue }
                        let from = Int(offsets[row]), to = Int(offsets[row + 1])
                        values[entityRow] = Int64(heap.bytes[c].count) << 32 | Int64(to - from)
                        heap.bytes[c].append(contentsOf: UnsafeBufferPointer(rebasing: bytes[from..<to]))
                        valid[entityRow] = mark
                    }
                }
            }
        }
    }

    /// The filled columns, in feature order.
    func columns() -> [Column] {
        types.indices.map { c in
            var column = Column(type: types[c])
            let flags = UnsafeMutableBufferPointer<Bool>.allocate(capacity: rows)
            defer { flags.deallocate() }
            for i in 0..<rows { flags[i] = valid[c][i] != 0 }
            switch types[c] {
            case .int64, .bool:
                column.ints = Array(values[c].pointer)
            case .float64:
                column.doubles = values[c].pointer.map { Double(bitPattern: UInt64(bitPattern: $0)) }
            case .string:
                column.offsets.reserveCapacity(rows + 1)
                for i in 0..<rows {
                    let v = valid[c][i]
                    if v != 0 {
                        let packed = values[c][i]
                        let start = Int(packed >> 32), length = Int(packed & 0xFFFF_FFFF)
                        column.bytes.append(contentsOf: heaps[Int(v) - 1].bytes[c][start..<(start + length)])
                    }
                    column.offsets.append(Int32(column.bytes.count))
                }
            }
            column.validity.append(contentsOf: UnsafeBufferPointer(flags))
            return column
        }
    }
}
