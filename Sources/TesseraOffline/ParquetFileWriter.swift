// Writes flat Parquet files: PAR1, per row group one column chunk per field (optional dictionary page,
// DataPage v1 pages of about 1 MiB), then the Thrift-compact footer.

import TesseraCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if _endian(big)
#error("TesseraOffline writes and reads little-endian values straight from memory")
#endif

let parquetMagic: [UInt8] = Array("PAR1".utf8)

/// Writes a Parquet file: `write(rowGroup:)` any number of times, then `close()` (footer + fsync).
/// A write or close that fails on I/O leaves the file as it was before it (truncated back), so it
/// can be retried.
///
/// Pages are DataPage v1 with RLE definition levels for nullable fields; values DELTA_BINARY_PACKED
/// for 64-bit integers, BYTE_STREAM_SPLIT for doubles (`valueEncoding`), PLAIN for the rest
/// (booleans bit-packed), and a dictionary (PLAIN dictionary page + RLE_DICTIONARY indices) for
/// string chunks whose dictionary stays small. Every page carries a CRC-32 so that readers can
/// detect corruption.
/// Row groups with zero rows are skipped. A writer is not thread-safe; use it from one task at a time.
public final class ParquetFileWriter {
    private var core: WriterCore

    public init(path: String, schema: ParquetSchema, compression: ParquetCompression = .zstd(level: 3),
                metadata: [(String, String)] = []) throws {
        core = try WriterCore(path: path, schema: schema, compression: compression, metadata: metadata)
    }

    deinit {
        core.abandon()
    }

    public var path: String { core.path }
    public var schema: ParquetSchema { core.schema }
    public var rowCount: Int { core.rowCount }
    /// Bytes written so far (the file size once closed).
    public var bytesWritten: Int64 { core.offset + Int64(core.chunk.count) }

    /// Whether pages carry a CRC-32 (always in production; tests turn it off to fuzz the decoders).
    var pageChecksums: Bool {
        get { core.pageChecksums }
        set { core.pageChecksums = newValue }
    }

    /// Writes one row group: one column per schema field, all with the same count.
    /// int32/int64/timestampMicros and bool fields read `ints`, double reads `doubles`, string reads
    /// `offsets`/`bytes`; nulls come from `validity` (a null in a non-nullable field is an error).
    /// Invalid input throws before anything is written, a failed write after truncating the file
    /// back to where the row group began; either way the writer stays usable.
    public func write(rowGroup columns: [Column]) throws {
        try core.write(rowGroup: columns)
    }

    /// Writes the footer, flushes the file to disk (fsync) and closes it. Closing twice is a no-op;
    /// a close that failed (the footer truncated away again) may be retried.
    public func close() throws {
        try core.close()
    }
}

/// The writer's state; a struct so that the per-value loops run without dynamic exclusivity checks.
struct WriterCore {
    let path: String
    let schema: ParquetSchema
    private(set) var rowCount: Int = 0
    var pageChecksums = true

    /// Target size of a data page's values before compression.
    static let pageTarget = 1 << 20
    /// Largest dictionary the writer builds for one string column chunk.
    static let maxDictionaryEntries = 1 << 16
    /// The chunk buffer is flushed to the file past this size.
    private static let flushThreshold = 4 << 20

    private var file: OutputFile?
    private(set) var offset: Int64 = 0           // bytes already in the file
    private let compressor: PageCompressor
    private let keyValueMetadata: [(String, String)]
    private var rowGroups: [RowGroup] = []
    private var closed = false
    private var failed: String?

    // Reusable buffers.
    private(set) var chunk: [UInt8] = []
    private var page: [UInt8] = []
    private var header = ThriftWriter()
    private var levels: [UInt32] = []
    private var indices: [UInt32] = []
    private var int64Scratch: [Int64] = []
    private var int32Scratch: [Int32] = []
    private var doubleScratch: [Double] = []
    private var dictionary = StringDictionaryBuilder()

    // Per-chunk accounting.
    private var chunkUncompressed: Int64 = 0
    private var chunkCompressed: Int64 = 0

    init(path: String, schema: ParquetSchema, compression: ParquetCompression, metadata: [(String, String)]) throws {
        guard !schema.fields.isEmpty else { throw ParquetError("a Parquet schema needs at least one field") }
        var names = Set<String>()
        for f in schema.fields {
            guard !f.name.isEmpty else { throw ParquetError("a Parquet field needs a name") }
            guard names.insert(f.name).inserted else { throw ParquetError("field '\(f.name)' appears twice in the schema") }
        }
        self.path = path
        self.schema = schema
        self.compressor = PageCompressor(compression)
        self.keyValueMetadata = metadata
        let file = try OutputFile(creating: path, direct: true)
        try file.write(parquetMagic)
        self.file = file
        offset = 4
    }

    /// Closes the descriptor of a writer dropped without `close()` (the file stays incomplete).
    mutating func abandon() {
        file = nil
    }

    private var bytesWritten: Int64 { offset + Int64(chunk.count) }

    // MARK: - Row groups

    mutating func write(rowGroup columns: [Column]) throws {
        guard !closed else { throw ParquetError("\(path): the writer is closed") }
        if let failed { throw ParquetError("\(path): an earlier write failed (\(failed))") }
        let fields = schema.fields
        guard columns.count == fields.count else {
            throw ParquetError("a row group needs \(fields.count) columns, got \(columns.count)")
        }
        let n = columns[0].count
        for (field, column) in zip(fields, columns) {
            try validate(column, for: field, count: n)
        }
        guard n > 0 else { return }
        guard n <= Int(Int32.max) else { throw ParquetError("a row group holds at most \(Int32.max) rows") }

        let groupStart = bytesWritten
        var chunks: [ColumnChunk] = []
        var totalUncompressed: Int64 = 0
        do {
            for (field, column) in zip(fields, columns) {
                let meta = try writeChunk(field, column, count: n)
                totalUncompressed += meta.totalUncompressedSize
                chunks.append(ColumnChunk(filePath: nil, fileOffset: 0, metaData: meta))
            }
            try flush()
        } catch {
            truncate(to: groupStart, after: error)
            throw error
        }
        rowGroups.append(RowGroup(
            columns: chunks, totalByteSize: totalUncompressed, numRows: Int64(n), fileOffset: groupStart,
            totalCompressedSize: bytesWritten - groupStart,
            ordinal: rowGroups.count <= Int(Int16.max) ? Int16(rowGroups.count) : nil))
        rowCount += n
    }

    private func validate(_ column: Column, for field: ParquetField, count n: Int) throws {
        let name = field.name
        guard column.count == n else {
            throw ParquetError("column '\(name)' has \(column.count) rows, the first column \(n)")
        }
        if !field.nullable && column.validity.unsetCount > 0 {
            throw ParquetError("column '\(name)' is not nullable but holds \(column.validity.unsetCount) nulls")
        }
        switch field.type {
        case .int32, .int64, .timestampMicros, .bool:
            let expected: ValueType = field.type == .bool ? .bool : .int64
            guard column.type == expected else {
                throw ParquetError("field '\(name)' (\(field.type)) needs a \(expected) column, got \(column.type)")
            }
            guard column.ints.count >= n else { throw ParquetError("column '\(name)' has too few values") }
            if field.type == .int32 {
                let validity = column.validity
                for i in 0..<n where Int32(exactly: column.ints[i]) == nil && validity[i] {
                    throw ParquetError("column '\(name)' row \(i): \(column.ints[i]) does not fit in an int32")
                }
            }
        case .double:
            guard column.type == .float64 else {
                throw ParquetError("field '\(name)' (double) needs a float64 column, got \(column.type)")
            }
            guard column.doubles.count >= n else { throw ParquetError("column '\(name)' has too few values") }
        case .string:
            guard column.type == .string else {
                throw ParquetError("field '\(name)' (string) needs a string column, got \(column.type)")
            }
            guard column.offsets.count >= n + 1, column.offsets[0] >= 0, Int(column.offsets[n]) <= column.bytes.count
            else { throw ParquetError("column '\(name)' has inconsistent string offsets") }
            try column.offsets.withUnsafeBufferPointer { o in
                for i in 0..<n where o[i + 1] < o[i] {
                    throw ParquetError("column '\(name)' has decreasing string offsets at row \(i)")
                }
            }
        }
    }

    // MARK: - Column chunks

    private mutating func writeChunk(_ field: ParquetField, _ column: Column, count n: Int) throws -> ColumnMetaData {
        chunkUncompressed = 0
        chunkCompressed = 0
        let chunkStart = bytesWritten
        var meta = ColumnMetaData()
        meta.type = physicalType(field.type)
        meta.pathInSchema = [field.name]
        meta.codec = compressor.codec
        meta.numValues = Int64(n)
        let nullCount = column.validity.unsetCount
        var statistics = Statistics()
        statistics.nullCount = Int64(nullCount)
        computeStatistics(field.type, column, count: n, into: &statistics)
        meta.statistics = statistics

        // Strings: try a dictionary first.
        var useDictionary = false
        var indexWidth = 0
        if field.type == .string && nullCount < n {
            useDictionary = buildDictionary(column, count: n)
            if useDictionary {
                indexWidth = max(1, bitWidth(UInt64(dictionary.count - 1)))
                page.removeAll(keepingCapacity: true)
                dictionary.appendPlain(to: &page)
                meta.dictionaryPageOffset = bytesWritten
                try emitPage(PageHeader(
                    type: PageType.dictionaryPage, uncompressedPageSize: 0, compressedPageSize: 0,
                    dictionaryPage: DictionaryPageHeader(numValues: Int32(dictionary.count), encoding: Encoding.plain)))
                meta.encodingStats.append(PageEncodingStats(pageType: PageType.dictionaryPage, encoding: Encoding.plain, count: 1))
            }
        }
        meta.dataPageOffset = bytesWritten
        let valueEncoding = useDictionary ? Encoding.rleDictionary : WriterCore.valueEncoding(field.type)
        meta.encodings = useDictionary ? [Encoding.plain, Encoding.rle, Encoding.rleDictionary] : [valueEncoding, Encoding.rle]

        var pages: Int32 = 0
        var row = 0
        var valueIndex = 0   // index of the page's first non-null value
        while row < n {
            let end = pageEnd(field.type, column, from: row, count: n, dictionaryIndexWidth: useDictionary ? indexWidth : 0)
            page.removeAll(keepingCapacity: true)
            let present = field.nullable ? appendLevels(column.validity, from: row, to: end) : end - row
            if useDictionary {
                page.append(UInt8(indexWidth))
                indices.withUnsafeBufferPointer { all in
                    Hybrid.encode(UnsafeBufferPointer(rebasing: all[valueIndex..<(valueIndex + present)]),
                                  bitWidth: indexWidth, into: &page)
                }
            } else if valueEncoding == Encoding.deltaBinaryPacked {
                appendDeltaValues(column, from: row, to: end, present: present)
            } else if valueEncoding == Encoding.byteStreamSplit {
                appendSplitValues(column, from: row, to: end, present: present)
            } else {
                appendPlainValues(field.type, column, from: row, to: end, present: present)
            }
            try emitPage(PageHeader(
                type: PageType.dataPage, uncompressedPageSize: 0, compressedPageSize: 0,
                dataPage: DataPageHeader(numValues: Int32(end - row), encoding: valueEncoding,
                                         definitionLevelEncoding: Encoding.rle, repetitionLevelEncoding: Encoding.rle)))
            pages += 1
            valueIndex += present
            row = end
        }
        meta.encodingStats.append(PageEncodingStats(pageType: PageType.dataPage, encoding: valueEncoding, count: pages))
        meta.totalUncompressedSize = chunkUncompressed
        meta.totalCompressedSize = chunkCompressed
        assert(bytesWritten - chunkStart == chunkCompressed)
        return meta
    }

    private func physicalType(_ t: ParquetType) -> Int32 {
        switch t {
        case .int32: return PhysicalType.int32
        case .int64, .timestampMicros: return PhysicalType.int64
        case .double: return PhysicalType.double
        case .string: return PhysicalType.byteArray
        case .bool: return PhysicalType.boolean
        }
    }

    /// End row of the page starting at `start`: about `pageTarget` bytes of values.
    private func pageEnd(_ type: ParquetType, _ column: Column, from start: Int, count n: Int,
                         dictionaryIndexWidth: Int) -> Int {
        let maxRows = 1 << 20
        let width: Int
        switch type {
        case .int32: width = 4
        case .int64, .timestampMicros, .double: width = 8
        case .bool: width = 1
        case .string:
            if dictionaryIndexWidth > 0 {
                return min(n, start + min(maxRows, WriterCore.pageTarget * 8 / dictionaryIndexWidth))
            }
            return column.offsets.withUnsafeBufferPointer { o in
                var end = start
                var size = 0
                while end < n && size < WriterCore.pageTarget && end - start < maxRows {
                    size += Int(o[end + 1] - o[end]) + 4
                    end += 1
                }
                return end
            }
        }
        return min(n, start + min(maxRows, WriterCore.pageTarget / width))
    }

    /// Appends the page's definition levels (4-byte length + RLE/bit-packed hybrid, bit width 1) and
    /// returns the number of non-null rows in `start..<end`.
    private mutating func appendLevels(_ validity: Bitmap, from start: Int, to end: Int) -> Int {
        let lengthAt = page.count
        page.append(contentsOf: [0, 0, 0, 0])
        var present = end - start
        if validity.allSet {
            Varint.append(UInt64(end - start) << 1, to: &page)
            page.append(1)
        } else {
            levels.removeAll(keepingCapacity: true)
            levels.reserveCapacity(end - start)
            for i in start..<end {
                let bit: UInt32 = validity[i] ? 1 : 0
                levels.append(bit)
            }
            present = 0
            for l in levels { present &+= Int(l) }
            levels.withUnsafeBufferPointer { Hybrid.encode($0, bitWidth: 1, into: &page) }
        }
        let length = UInt32(page.count - lengthAt - 4)
        for k in 0..<4 { page[lengthAt + k] = UInt8(truncatingIfNeeded: length >> UInt32(8 * k)) }
        return present
    }

    /// The encoding of a field's values (strings: PLAIN, unless a dictionary pays). 64-bit integers
    /// are DELTA_BINARY_PACKED: created timestamps and offsets take a few bits per value, counts
    /// and keys of entities in turn one or two bytes — a little more than PLAIN after zstd for the
    /// ones that jump, but the page compressor then reads a quarter of the bytes, and compressing
    /// was the costliest part of writing. Doubles are BYTE_STREAM_SPLIT: their bytes grouped by
    /// position (signs and exponents together), which zstd compresses about as well as PLAIN in
    /// half the time.
    static func valueEncoding(_ type: ParquetType) -> Int32 {
        switch type {
        case .int64, .timestampMicros: Encoding.deltaBinaryPacked
        case .double: Encoding.byteStreamSplit
        case .int32, .bool, .string: Encoding.plain
        }
    }

    /// The non-null values of rows `start..<end` of a 64-bit integer column, DELTA_BINARY_PACKED.
    private mutating func appendDeltaValues(_ column: Column, from start: Int, to end: Int, present: Int) {
        if present == end - start {
            column.ints.withUnsafeBufferPointer { Delta.encodeBinaryPacked(UnsafeBufferPointer(rebasing: $0[start..<end]), into: &page) }
        } else {
            let validity = column.validity
            int64Scratch.removeAll(keepingCapacity: true)
            for i in start..<end where validity[i] { int64Scratch.append(column.ints[i]) }
            int64Scratch.withUnsafeBufferPointer { Delta.encodeBinaryPacked($0, into: &page) }
        }
    }

    /// The non-null values of rows `start..<end` of a float64 column, BYTE_STREAM_SPLIT: byte k of
    /// every value, for k = 0 through 7 (little-endian).
    private mutating func appendSplitValues(_ column: Column, from start: Int, to end: Int, present m: Int) {
        let base = page.count
        page.append(contentsOf: repeatElement(0, count: m * 8))
        let validity = column.validity
        let dense = m == end - start
        column.doubles.withUnsafeBufferPointer { v in
            page.withUnsafeMutableBufferPointer { out in
                let o = out.baseAddress! + base
                var j = 0
                for i in start..<end where dense || validity[i] {
                    let bits = v[i].bitPattern.littleEndian
                    for k in 0..<8 { o[k &* m &+ j] = UInt8(truncatingIfNeeded: bits &>> UInt64(8 &* k)) }
                    j &+= 1
                }
            }
        }
    }

    private mutating func appendPlainValues(_ type: ParquetType, _ column: Column, from start: Int, to end: Int, present: Int) {
        let validity = column.validity
        let dense = present == end - start
        switch type {
        case .int64, .timestampMicros:
            if dense {
                column.ints.withUnsafeBufferPointer { page.append(contentsOf: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: $0[start..<end]))) }
            } else {
                int64Scratch.removeAll(keepingCapacity: true)
                for i in start..<end where validity[i] { int64Scratch.append(column.ints[i]) }
                int64Scratch.withUnsafeBytes { page.append(contentsOf: $0) }
            }
        case .int32:
            int32Scratch.removeAll(keepingCapacity: true)
            int32Scratch.reserveCapacity(present)
            column.ints.withUnsafeBufferPointer { ints in
                if dense {
                    for i in start..<end { int32Scratch.append(Int32(truncatingIfNeeded: ints[i])) }
                } else {
                    for i in start..<end where validity[i] { int32Scratch.append(Int32(truncatingIfNeeded: ints[i])) }
                }
            }
            int32Scratch.withUnsafeBytes { page.append(contentsOf: $0) }
        case .double:
            if dense {
                column.doubles.withUnsafeBufferPointer { page.append(contentsOf: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: $0[start..<end]))) }
            } else {
                doubleScratch.removeAll(keepingCapacity: true)
                for i in start..<end where validity[i] { doubleScratch.append(column.doubles[i]) }
                doubleScratch.withUnsafeBytes { page.append(contentsOf: $0) }
            }
        case .bool:
            var byte: UInt8 = 0
            var bit = 0
            column.ints.withUnsafeBufferPointer { ints in
                for i in start..<end where dense || validity[i] {
                    if ints[i] != 0 { byte |= 1 << UInt8(bit) }
                    bit += 1
                    if bit == 8 {
                        page.append(byte)
                        byte = 0
                        bit = 0
                    }
                }
            }
            if bit > 0 { page.append(byte) }
        case .string:
            column.offsets.withUnsafeBufferPointer { o in
                column.bytes.withUnsafeBytes { bytes in
                    for i in start..<end where dense || validity[i] {
                        let s = Int(o[i]), e = Int(o[i + 1])
                        let length = UInt32(e - s)
                        withUnsafeBytes(of: length.littleEndian) { page.append(contentsOf: $0) }
                        page.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[s..<e]))
                    }
                }
            }
        }
    }

    /// Fills `dictionary` and `indices` (one per non-null value); false when a dictionary does not pay.
    private mutating func buildDictionary(_ column: Column, count n: Int) -> Bool {
        dictionary.reset()
        indices.removeAll(keepingCapacity: true)
        indices.reserveCapacity(n)
        let validity = column.validity
        let dense = validity.allSet
        var plainSize = 0
        let ok: Bool = column.offsets.withUnsafeBufferPointer { o in
            column.bytes.withUnsafeBytes { bytes in
                for i in 0..<n where dense || validity[i] {
                    let s = Int(o[i]), e = Int(o[i + 1])
                    plainSize += e - s + 4
                    let value = UnsafeRawBufferPointer(rebasing: bytes[s..<e])
                    let index = dictionary.insert(value)
                    if dictionary.count > WriterCore.maxDictionaryEntries { return false }
                    indices.append(UInt32(index))
                }
                return true
            }
        }
        guard ok else { return false }
        let width = max(1, bitWidth(UInt64(dictionary.count - 1)))
        let dictionarySize = dictionary.byteCount + 4 * dictionary.count + indices.count * width / 8 + 16
        return dictionarySize < plainSize
    }

    private func computeStatistics(_ type: ParquetType, _ column: Column, count n: Int, into s: inout Statistics) {
        switch type {
        case .int32, .int64, .timestampMicros:
            var lo = Int64.max, hi = Int64.min
            var any = false
            column.ints.withUnsafeBufferPointer { ints in
                column.validity.forEachSetRun(upTo: n) { range in
                    any = true
                    for i in range {
                        lo = min(lo, ints[i])
                        hi = max(hi, ints[i])
                    }
                }
            }
            guard any else { return }
            if type == .int32 {
                s.minValue = littleEndianBytes(Int32(truncatingIfNeeded: lo))
                s.maxValue = littleEndianBytes(Int32(truncatingIfNeeded: hi))
            } else {
                s.minValue = littleEndianBytes(lo)
                s.maxValue = littleEndianBytes(hi)
            }
            s.min = s.minValue
            s.max = s.maxValue
        case .double:
            // NaN is left out of the bounds and counted; `lo`/`hi` stay ±∞ when every value is NaN.
            var lo = Double.infinity, hi = -Double.infinity
            var present = 0
            var nans: Int64 = 0
            column.doubles.withUnsafeBufferPointer { d in
                column.validity.forEachSetRun(upTo: n) { range in
                    present &+= range.count
                    for i in range {
                        let v = d[i]
                        if v.isNaN { nans &+= 1; continue }
                        if v < lo { lo = v }
                        if v > hi { hi = v }
                    }
                }
            }
            s.nanCount = nans
            guard Int64(present) > nans else { return }
            if lo == 0 { lo = -0.0 }
            if hi == 0 { hi = 0.0 }
            s.minValue = littleEndianBytes(lo.bitPattern)
            s.maxValue = littleEndianBytes(hi.bitPattern)
            s.min = s.minValue
            s.max = s.maxValue
        case .string, .bool:
            break
        }
    }

    // MARK: - Pages and I/O

    /// Compresses `page`, checksums it and appends header + body to the chunk buffer.
    private mutating func emitPage(_ pageHeader: PageHeader) throws {
        var h = pageHeader
        let uncompressedSize = page.count
        guard uncompressedSize <= Int(Int32.max) else { throw ParquetError("a page exceeds 2 GiB") }
        let compressor = self.compressor
        let checksums = pageChecksums
        var stored = 0
        try page.withUnsafeBytes { input in
            let body = try compressor.compress(input)
            guard body.count <= Int(Int32.max) else { throw ParquetError("a page exceeds 2 GiB") }
            stored = body.count
            h.uncompressedPageSize = Int32(uncompressedSize)
            h.compressedPageSize = Int32(body.count)
            h.crc = checksums ? Int32(bitPattern: PageChecksum.crc32(body)) : nil
            header.reset()
            header.write(h)
            chunk.append(contentsOf: header.bytes)
            chunk.append(contentsOf: body)
        }
        chunkUncompressed += Int64(header.bytes.count + uncompressedSize)
        chunkCompressed += Int64(header.bytes.count + stored)
        if chunk.count >= WriterCore.flushThreshold { try flush() }
    }

    private mutating func flush() throws {
        guard !chunk.isEmpty else { return }
        guard let file else { throw ParquetError("\(path) is closed") }
        try file.write(chunk)
        offset += Int64(chunk.count)
        chunk.removeAll(keepingCapacity: true)
    }

    // MARK: - Footer

    mutating func close() throws {
        guard !closed else { return }
        if let failed { throw ParquetError("\(path): an earlier write failed (\(failed))") }
        var meta = FileMetaData()
        meta.version = 1
        meta.numRows = Int64(rowCount)
        meta.rowGroups = rowGroups
        meta.keyValueMetadata = keyValueMetadata
        meta.createdBy = "tessera"
        meta.schema = [SchemaElement(name: "schema", numChildren: Int32(schema.fields.count))]
        for f in schema.fields {
            var e = SchemaElement()
            e.name = f.name
            e.type = physicalType(f.type)
            e.repetition = f.nullable ? Repetition.optional : Repetition.required
            switch f.type {
            case .string:
                e.convertedType = ConvertedType.utf8
                e.logicalType = .string
            case .timestampMicros:
                e.convertedType = ConvertedType.timestampMicros
                e.logicalType = .timestamp(utc: true, unit: .micros)
            default:
                break
            }
            meta.schema.append(e)
        }
        var footer = ThriftWriter()
        footer.write(meta, columnOrders: schema.fields.count)
        let length = UInt32(footer.bytes.count)
        chunk.append(contentsOf: footer.bytes)
        withUnsafeBytes(of: length.littleEndian) { chunk.append(contentsOf: $0) }
        chunk.append(contentsOf: parquetMagic)
        let footerStart = offset
        do {
            try flush()
            try file?.close()
        } catch {
            truncate(to: footerStart, after: error)
            throw error
        }
        closed = true
        file = nil
    }

    /// After a failed write: the file back to `size` bytes (what was written before), so that the
    /// write can be retried; if even that fails, the writer refuses every later call.
    private mutating func truncate(to size: Int64, after error: any Error) {
        chunk.removeAll(keepingCapacity: true)
        do {
            guard let file else { throw ParquetError("\(path) is closed") }
            try file.truncate(to: size)
            offset = size
        } catch {
            failed = "\(error)"
        }
    }
}

func littleEndianBytes<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
    withUnsafeBytes(of: v.littleEndian) { Array($0) }
}
