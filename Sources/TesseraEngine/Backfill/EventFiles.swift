import Foundation
import TesseraCore
import TesseraOffline
import TesseraSource
import TesseraTopology

/// Events read from a file, a chunk at a time: payloads back to back in one buffer, each with
/// its position in the file (line number from 1 for JSON lines, row number from 0 for Parquet).
final class EventChunk {
    private(set) var storage: UnsafeMutableRawBufferPointer
    private(set) var used = 0
    private var ends: [Int] = []
    private(set) var positions: [Int64] = []

    init(capacity: Int) {
        storage = .allocate(byteCount: capacity, alignment: 8)
    }

    deinit { storage.deallocate() }

    var count: Int { ends.count }

    /// The i-th payload; valid until the chunk is cleared.
    func payload(_ i: Int) -> UnsafeRawBufferPointer {
        let start = i == 0 ? 0 : ends[i - 1]
        return UnsafeRawBufferPointer(rebasing: storage[start..<ends[i]])
    }

    func removeAll() {
        used = 0
        ends.removeAll(keepingCapacity: true)
        positions.removeAll(keepingCapacity: true)
    }

    func append(_ bytes: UnsafeRawBufferPointer, position: Int64) {
        reserve(bytes.count)
        if let base = bytes.baseAddress, bytes.count > 0 {
            storage.baseAddress!.advanced(by: used).copyMemory(from: base, byteCount: bytes.count)
        }
        used += bytes.count
        ends.append(used)
        positions.append(position)
    }

    func append(_ bytes: [UInt8], position: Int64) {
        bytes.withUnsafeBytes { append($0, position: position) }
    }

    private func reserve(_ extra: Int) {
        guard used + extra > storage.count else { return }
        let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: max(storage.count * 2, used + extra), alignment: 8)
        grown.baseAddress!.copyMemory(from: storage.baseAddress!, byteCount: used)
        storage.deallocate()
        storage = grown
    }
}

/// An event file for `tessera backfill`:
///
/// - JSON lines (`.jsonl`, `.ndjson`): one payload per line, exactly the bytes a producer
///   sends; blank lines are skipped. A line longer than the message limit is not held in memory:
///   its first bytes are handed on, so the decoder rejects it as oversized.
/// - Parquet (`.parquet`): one event per row; each column named like a source field becomes that
///   field (other columns are ignored), written as the JSON a producer would send: the event-time
///   field as a number in its declared unit (or an RFC 3339 string), from an integer or a
///   timestamp column. The same decoder then reads it, so both kinds of file are held to the
///   stream's rules.
final class EventFile {
    let path: String
    private let chunkEvents = 16_384
    private let chunk: EventChunk
    private let maxBytes: Int
    private var kind: Kind

    private enum Kind {
        case lines(fd: Int32, buffer: UnsafeMutableRawBufferPointer, start: Int, end: Int, line: Int64, skipping: Bool, eof: Bool)
        case parquet(reader: ParquetFileReader, columns: [(field: String, column: Int, time: TimeUnit?)], rowGroup: Int, row: Int64)
    }

    init(path: String, fields: [String], timestamp: TimeField, maxBytes: Int) throws {
        self.path = path
        self.maxBytes = maxBytes
        chunk = EventChunk(capacity: 1 << 22)
        let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
        switch ext {
        case "jsonl", "ndjson":
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw EngineError(.backfillInput, "cannot open \(path): \(String(cString: strerror(errno)))") }
            kind = .lines(fd: fd, buffer: .allocate(byteCount: max(1 << 22, 2 * (maxBytes + 2)), alignment: 8),
                          start: 0, end: 0, line: 0, skipping: false, eof: false)
        case "parquet":
            let reader: ParquetFileReader
            do { reader = try ParquetFileReader(path: path) } catch { throw EngineError(.backfillInput, "\(path): \(error)") }
            var columns: [(String, Int, TimeUnit?)] = []
            for (i, f) in reader.schema.fields.enumerated() {
                if f.name == timestamp.field {
                    columns.append((f.name, i, timestamp.unit))
                } else if fields.contains(f.name) {
                    columns.append((f.name, i, nil))
                }
            }
            guard columns.contains(where: { $0.2 != nil }) else {
                throw EngineError(.backfillInput, "\(path) has no column \(timestamp.field), the event time")
            }
            kind = .parquet(reader: reader, columns: columns, rowGroup: 0, row: 0)
        default:
            throw EngineError(.backfillInput, "\(path): events are read from .jsonl or .parquet files")
        }
    }

    func close() {
        if case .lines(let fd, let buffer, _, _, _, _, _) = kind {
            Glibc.close(fd)
            buffer.deallocate()
            kind = .lines(fd: -1, buffer: UnsafeMutableRawBufferPointer(start: nil, count: 0), start: 0, end: 0, line: 0, skipping: false, eof: true)
        }
    }

    /// The next chunk of events, or nil at the end of the file. The chunk is reused by the next call.
    func next() throws -> EventChunk? {
        chunk.removeAll()
        switch kind {
        case .lines: try nextLines()
        case .parquet: try nextRows()
        }
        return chunk.count > 0 ? chunk : nil
    }

    private func nextLines() throws {
        guard case .lines(let fd, let buffer, var start, var end, var line, var skipping, var eof) = kind else { return }
        defer { kind = .lines(fd: fd, buffer: buffer, start: start, end: end, line: line, skipping: skipping, eof: eof) }
        let base = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        while chunk.count < chunkEvents {
            // One line from the buffered bytes, if a whole one is there.
            if let newline = memchr(base + start, 0x0A, end - start).map({ $0.assumingMemoryBound(to: UInt8.self) - base }) {
                line += 1
                if skipping {
                    skipping = false
                } else {
                    emitLine(base, start, newline, line)
                }
                start = newline + 1
                continue
            }
            if eof {
                if start < end {
                    line += 1
                    if !skipping { emitLine(base, start, end, line) }
                    skipping = false
                }
                start = end
                return
            }
            // A line longer than the limit: hand on its first bytes (rejected as oversized), then
            // skip the rest of it.
            if !skipping && end - start > maxBytes {
                chunk.append(UnsafeRawBufferPointer(start: base + start, count: maxBytes + 1), position: line + 1)
                skipping = true
            }
            if skipping { start = end }
            // Move the partial line to the front and read more.
            if start > 0 {
                memmove(base, base + start, end - start)
                end -= start
                start = 0
            }
            let n = read(fd, base + end, buffer.count - end)
            guard n >= 0 else { throw EngineError(.backfillInput, "cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { eof = true }
            end += n
        }
    }

    private func emitLine(_ base: UnsafeMutablePointer<UInt8>, _ start: Int, _ end: Int, _ line: Int64) {
        var e = end
        if e > start && base[e - 1] == 0x0D { e -= 1 }
        var blank = true
        for i in start..<e where base[i] != 0x20 && base[i] != 0x09 { blank = false; break }
        guard !blank else { return }
        chunk.append(UnsafeRawBufferPointer(start: base + start, count: e - start), position: line)
    }

    private func nextRows() throws {
        guard case .parquet(let reader, let columns, var rowGroup, var row) = kind else { return }
        defer { kind = .parquet(reader: reader, columns: columns, rowGroup: rowGroup, row: row) }
        guard rowGroup < reader.rowGroups.count else { return }
        let data: [Column]
        do { data = try reader.read(rowGroup: rowGroup, columns: columns.map(\.column)) } catch { throw EngineError(.backfillInput, "\(path): \(error)") }
        rowGroup += 1
        let types = columns.map { reader.schema.fields[$0.column].type }
        let names = columns.map { Array(JSONText.quoted($0.field).utf8) }
        var json: [UInt8] = []
        for r in 0..<(data.first?.count ?? 0) {
            json.removeAll(keepingCapacity: true)
            json.append(UInt8(ascii: "{"))
            for c in columns.indices {
                if c > 0 { json.append(UInt8(ascii: ",")) }
                json.append(contentsOf: names[c])
                json.append(UInt8(ascii: ":"))
                EventFile.appendJSON(data[c], r, type: types[c], time: columns[c].time, to: &json)
            }
            json.append(UInt8(ascii: "}"))
            chunk.append(json, position: row)
            row += 1
        }
    }

    /// One Parquet value as the JSON a producer would have written.
    static func appendJSON(_ column: Column, _ i: Int, type: ParquetType, time: TimeUnit?, to json: inout [UInt8]) {
        guard column.validity[i] else {
            json.append(contentsOf: "null".utf8)
            return
        }
        switch type {
        case .int32, .int64, .timestampMicros:
            let v = column.ints[i]
            switch (time, type) {
            case (.rfc3339?, .timestampMicros):
                json.append(contentsOf: JSONText.quoted(RFC3339.format(v)).utf8)
            case (.seconds?, .timestampMicros), (.milliseconds?, .timestampMicros):
                // Micros to the declared unit, exactly: a fraction is written as decimals.
                let scale: Int64 = time == .seconds ? 1_000_000 : 1_000
                let whole = v >= 0 ? v / scale : -((-v + scale - 1) / scale)
                let fraction = v - whole * scale
                json.append(contentsOf: String(whole).utf8)
                if fraction != 0 {
                    let digits = String(fraction)
                    json.append(UInt8(ascii: "."))
                    json.append(contentsOf: String(repeating: "0", count: (scale == 1_000_000 ? 6 : 3) - digits.count).utf8)
                    json.append(contentsOf: digits.utf8)
                }
            default:
                json.append(contentsOf: String(v).utf8)
            }
        case .double:
            let v = column.doubles[i]
            // JSON has no NaN or infinity: such a value is written as a string, which the decoder rejects.
            json.append(contentsOf: (v.isFinite ? "\(v)" : JSONText.quoted("\(v)")).utf8)
        case .bool:
            json.append(contentsOf: (column.ints[i] != 0 ? "true" : "false").utf8)
        case .string:
            json.append(contentsOf: JSONText.quoted(column.string(at: i)).utf8)
        }
    }
}
