// Decodes one column chunk (dictionary page + data pages v1/v2) into a TesseraCore column.

import TesseraCore

/// Holds the buffers reused across pages and chunks while a reader decodes columns.
/// A struct so that the per-value loops run without dynamic exclusivity checks.
struct ChunkDecoder {
    let path: String
    /// Most values one page may hold (real writers stay far below; bounds allocations on corrupt input).
    static let maxPageValues = 1 << 28
    private let decompressor = PageDecompressor()
    private var levels: [UInt32] = []
    private var valid: [Bool] = []
    private var indices: [UInt32] = []
    private var deltaScratch: [Int64] = []
    private var splitBuffer: [UInt8] = []

    // One page's non-null values: raw after `decodePlain`, in the output domain after `finish`.
    private var ints: [Int64] = []
    private var doubles: [Double] = []
    private var offsets: [Int32] = [0]
    private var bytes: [UInt8] = []

    // The chunk's dictionary, in the output domain.
    private var hasDictionary = false
    private var dictionaryCount = 0
    private var dictionaryInts: [Int64] = []
    private var dictionaryDoubles: [Double] = []
    private var dictionaryOffsets: [Int32] = [0]
    private var dictionaryBytes: [UInt8] = []

    init(path: String) {
        self.path = path
    }

    /// Appends the chunk's `rows` values to `column`.
    mutating func read(_ file: ReadOnlyFile, _ leaf: Leaf, _ chunk: ChunkLayout, rows: Int, into column: inout Column) throws {
        do {
            try PageDecompressor.check(codec: chunk.codec)
            guard chunk.numValues == Int64(rows) else {
                throw ParquetError("corrupt column chunk: \(chunk.numValues) values for \(rows) rows")
            }
            let data = try file.read(at: chunk.start, count: chunk.length)
            try decodeChunk(data, leaf, codec: chunk.codec, rows: rows, into: &column)
        } catch {
            throw ParquetError("\(path), column '\(leaf.name)': \(error)")
        }
    }

    private mutating func decodeChunk(_ data: [UInt8], _ leaf: Leaf, codec: Int32, rows: Int, into column: inout Column) throws {
        hasDictionary = false
        dictionaryCount = 0
        ChunkDecoder.reserve(&column, leaf, additionalRows: rows)
        var done = 0
        var pos = 0
        while done < rows {
            guard pos < data.count else {
                throw corruptPage("the column chunk ends after \(done) of \(rows) values")
            }
            var reader = ThriftReader(data, from: pos, context: "page header")
            let header = try reader.readPageHeader()
            let bodyStart = reader.pos
            guard header.compressedPageSize >= 0, header.uncompressedPageSize >= 0,
                  Int(header.compressedPageSize) <= data.count - bodyStart
            else { throw corruptPage("page sizes \(header.compressedPageSize)/\(header.uncompressedPageSize) do not fit the chunk") }
            let bodyEnd = bodyStart + Int(header.compressedPageSize)
            pos = bodyEnd
            let expected = Int(header.uncompressedPageSize)
            let remaining = rows - done
            done += try data.withUnsafeBytes { all -> Int in
                let body = UnsafeRawBufferPointer(rebasing: all[bodyStart..<bodyEnd])
                if let crc = header.crc, PageChecksum.crc32(body) != UInt32(bitPattern: crc) {
                    throw corruptPage("checksum mismatch")
                }
                switch header.type {
                case PageType.dictionaryPage:
                    guard let d = header.dictionaryPage else { throw corruptPage("dictionary page without its header") }
                    guard d.encoding == Encoding.plain || d.encoding == Encoding.plainDictionary else {
                        throw ParquetError("dictionary page encoding \(Encoding.name(d.encoding)) is not supported")
                    }
                    guard d.numValues >= 0 else { throw corruptPage("negative dictionary size") }
                    let page = try decompressor.decompress(codec: codec, body, expected: expected)
                    try decodeDictionary(page, count: Int(d.numValues), leaf)
                    return 0
                case PageType.dataPage:
                    guard let d = header.dataPage else { throw corruptPage("data page without its header") }
                    let n = Int(d.numValues)
                    guard n >= 0, n <= remaining, n <= ChunkDecoder.maxPageValues else {
                        throw corruptPage("a page of \(n) values exceeds the row group or the page limit")
                    }
                    let page = try decompressor.decompress(codec: codec, body, expected: expected)
                    var cursor = ByteCursor(page)
                    let present = try decodeLevelsV1(&cursor, count: n, leaf, encoding: d.definitionLevelEncoding)
                    let values = try cursor.take(cursor.remaining)
                    try decodeValues(values, count: present, encoding: d.encoding, leaf)
                    try scatter(count: n, present: present, leaf, into: &column)
                    return n
                case PageType.dataPageV2:
                    guard let d = header.dataPageV2 else { throw corruptPage("data page v2 without its header") }
                    let n = Int(d.numValues)
                    guard n >= 0, n <= remaining, n <= ChunkDecoder.maxPageValues else {
                        throw corruptPage("a page of \(n) values exceeds the row group or the page limit")
                    }
                    let repLength = Int(d.repetitionLevelsByteLength), defLength = Int(d.definitionLevelsByteLength)
                    guard repLength >= 0, defLength >= 0, repLength + defLength <= body.count,
                          repLength + defLength <= expected
                    else { throw corruptPage("level lengths do not fit the page") }
                    let levelBytes = UnsafeRawBufferPointer(rebasing: body[repLength..<(repLength + defLength)])
                    let present = try decodeLevelsV2(levelBytes, count: n, leaf)
                    guard d.numNulls == n - present else {
                        throw corruptPage("the header counts \(d.numNulls) nulls, the levels \(n - present)")
                    }
                    let stored = UnsafeRawBufferPointer(rebasing: body[(repLength + defLength)...])
                    let valuesCodec = d.isCompressed ? codec : Codec.uncompressed
                    let values = try decompressor.decompress(codec: valuesCodec, stored,
                                                             expected: expected - repLength - defLength)
                    try decodeValues(values, count: present, encoding: d.encoding, leaf)
                    try scatter(count: n, present: present, leaf, into: &column)
                    return n
                default:
                    return 0   // index pages and unknown page types carry no values
                }
            }
        }
    }

    /// Grows the column's storage geometrically for `additionalRows` more rows.
    static func reserve(_ column: inout Column, _ leaf: Leaf, additionalRows rows: Int) {
        func grow<T>(_ a: inout [T], _ needed: Int) {
            if a.capacity < needed { a.reserveCapacity(max(needed, a.capacity * 2)) }
        }
        // A corrupt row count must not allocate wildly; arrays still grow on demand past this.
        let n = min(rows, 1 << 26)
        switch leaf.kind {
        case .int, .bool: grow(&column.ints, column.ints.count + n)
        case .double: grow(&column.doubles, column.doubles.count + n)
        case .string: grow(&column.offsets, column.offsets.count + n)
        }
    }

    // MARK: - Levels

    /// DataPage v1 definition levels (after the cursor: 4-byte length + hybrid, or legacy BIT_PACKED).
    /// Returns the number of non-null values.
    private mutating func decodeLevelsV1(_ cursor: inout ByteCursor, count n: Int, _ leaf: Leaf, encoding: Int32) throws -> Int {
        guard leaf.maxDefinition > 0 else { return n }
        resizeLevels(n)
        switch encoding {
        case Encoding.rle:
            let length = Int(try cursor.u32())
            let region = try cursor.take(length)
            try levels.withUnsafeMutableBufferPointer { out in
                _ = try Hybrid.decode(region, bitWidth: 1, count: n, into: out.baseAddress!)
            }
        case Encoding.bitPacked:
            // Deprecated: most significant bit first, no length prefix.
            let region = try cursor.take((n + 7) / 8)
            for i in 0..<n { levels[i] = UInt32((region[i >> 3] >> UInt8(7 - i & 7)) & 1) }
        default:
            throw ParquetError("definition level encoding \(Encoding.name(encoding)) is not supported")
        }
        return try countPresent(n)
    }

    /// DataPage v2 definition levels (hybrid without a length prefix).
    private mutating func decodeLevelsV2(_ region: UnsafeRawBufferPointer, count n: Int, _ leaf: Leaf) throws -> Int {
        guard leaf.maxDefinition > 0 else { return n }
        resizeLevels(n)
        try levels.withUnsafeMutableBufferPointer { out in
            _ = try Hybrid.decode(region, bitWidth: 1, count: n, into: out.baseAddress!)
        }
        return try countPresent(n)
    }

    private mutating func resizeLevels(_ n: Int) {
        if levels.count < n {
            levels.append(contentsOf: repeatElement(0, count: n - levels.count))
        }
    }

    private func countPresent(_ n: Int) throws -> Int {
        var present = 0
        for i in 0..<n {
            let l = levels[i]
            guard l <= 1 else { throw corruptPage("definition level \(l) exceeds the maximum 1") }
            present &+= Int(l)
        }
        return present
    }

    // MARK: - Values

    private mutating func resetValues() {
        ints.removeAll(keepingCapacity: true)
        doubles.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
        offsets.append(0)
        bytes.removeAll(keepingCapacity: true)
    }

    private mutating func decodeDictionary(_ page: UnsafeRawBufferPointer, count m: Int, _ leaf: Leaf) throws {
        resetValues()
        try decodePlain(page, count: m, leaf)
        try finish(leaf)
        swap(&ints, &dictionaryInts)
        swap(&doubles, &dictionaryDoubles)
        swap(&offsets, &dictionaryOffsets)
        swap(&bytes, &dictionaryBytes)
        dictionaryCount = m
        hasDictionary = true
    }

    /// Decodes `m` non-null values into the page buffers, in the output domain.
    private mutating func decodeValues(_ region: UnsafeRawBufferPointer, count m: Int, encoding: Int32, _ leaf: Leaf) throws {
        resetValues()
        let physical = leaf.physical
        switch encoding {
        case Encoding.plain:
            try decodePlain(region, count: m, leaf)
            try finish(leaf)
        case Encoding.plainDictionary, Encoding.rleDictionary:
            guard hasDictionary else { throw corruptPage("a dictionary-encoded page without a dictionary page") }
            guard m > 0 else { return }
            var cursor = ByteCursor(region)
            let width = Int(try cursor.byte())
            try decodeIndices(try cursor.take(cursor.remaining), bitWidth: width, count: m)
            try gather(leaf, count: m)
        case Encoding.rle:
            guard physical == PhysicalType.boolean else {
                throw ParquetError("RLE values for \(PhysicalType.name(physical)) are not supported")
            }
            guard m > 0 else { return }
            var cursor = ByteCursor(region)
            let length = Int(try cursor.u32())
            try decodeIndices(try cursor.take(length), bitWidth: 1, count: m)
            ints.reserveCapacity(m)
            for i in 0..<m { ints.append(Int64(indices[i])) }
        case Encoding.deltaBinaryPacked:
            guard physical == PhysicalType.int32 || physical == PhysicalType.int64 else {
                throw ParquetError("DELTA_BINARY_PACKED for \(PhysicalType.name(physical)) is not supported")
            }
            _ = try Delta.decodeBinaryPacked(region, count: m, into: &ints)
            if physical == PhysicalType.int32 {
                for i in ints.indices { ints[i] = Int64(Int32(truncatingIfNeeded: ints[i])) }
            }
            try finish(leaf)
        case Encoding.deltaLengthByteArray:
            guard physical == PhysicalType.byteArray else {
                throw ParquetError("DELTA_LENGTH_BYTE_ARRAY for \(PhysicalType.name(physical)) is not supported")
            }
            _ = try Delta.decodeLengthByteArray(region, count: m, scratch: &deltaScratch, offsets: &offsets, bytes: &bytes)
            try finish(leaf)
        case Encoding.deltaByteArray:
            guard physical == PhysicalType.byteArray || physical == PhysicalType.fixedLenByteArray else {
                throw ParquetError("DELTA_BYTE_ARRAY for \(PhysicalType.name(physical)) is not supported")
            }
            try Delta.decodeByteArray(region, count: m, scratch: &deltaScratch, offsets: &offsets, bytes: &bytes)
            try finish(leaf)
        case Encoding.byteStreamSplit:
            let width: Int
            switch physical {
            case PhysicalType.int32, PhysicalType.float: width = 4
            case PhysicalType.int64, PhysicalType.double: width = 8
            case PhysicalType.fixedLenByteArray: width = leaf.typeLength
            default: throw ParquetError("BYTE_STREAM_SPLIT for \(PhysicalType.name(physical)) is not supported")
            }
            guard m * width <= region.count else { throw corruptPage("BYTE_STREAM_SPLIT data is too short") }
            splitBuffer.removeAll(keepingCapacity: true)
            splitBuffer.append(contentsOf: repeatElement(0, count: m * width))
            for k in 0..<width {
                for i in 0..<m { splitBuffer[i * width + k] = region[k * m + i] }
            }
            try splitBuffer.withUnsafeBytes { try decodePlain($0, count: m, leaf) }
            try finish(leaf)
        default:
            throw ParquetError("encoding \(Encoding.name(encoding)) is not supported")
        }
    }

    private mutating func decodeIndices(_ region: UnsafeRawBufferPointer, bitWidth: Int, count m: Int) throws {
        if indices.count < m { indices.append(contentsOf: repeatElement(0, count: m - indices.count)) }
        try indices.withUnsafeMutableBufferPointer { out in
            _ = try Hybrid.decode(region, bitWidth: bitWidth, count: m, into: out.baseAddress!)
        }
    }

    /// Looks dictionary indices up (values already in the output domain).
    private mutating func gather(_ leaf: Leaf, count m: Int) throws {
        let limit = UInt32(truncatingIfNeeded: dictionaryCount)
        for i in 0..<m where indices[i] >= limit {
            throw corruptPage("dictionary index \(indices[i]) is out of range (\(dictionaryCount) entries)")
        }
        switch leaf.kind {
        case .int, .bool:
            ints.reserveCapacity(m)
            for i in 0..<m { ints.append(dictionaryInts[Int(indices[i])]) }
        case .double:
            doubles.reserveCapacity(m)
            for i in 0..<m { doubles.append(dictionaryDoubles[Int(indices[i])]) }
        case .string:
            offsets.reserveCapacity(m + 1)
            dictionaryBytes.withUnsafeBufferPointer { d in
                for i in 0..<m {
                    let index = Int(indices[i])
                    let s = Int(dictionaryOffsets[index]), e = Int(dictionaryOffsets[index + 1])
                    bytes.append(contentsOf: UnsafeBufferPointer(rebasing: d[s..<e]))
                    offsets.append(Int32(truncatingIfNeeded: bytes.count))
                }
            }
            guard bytes.count <= Int(Int32.max) else { throw ParquetError("a string page exceeds 2 GiB") }
        }
    }

    /// PLAIN values of the leaf's physical type into `ints`, `doubles` or `offsets`/`bytes`.
    private mutating func decodePlain(_ region: UnsafeRawBufferPointer, count m: Int, _ leaf: Leaf) throws {
        func need(_ count: Int) throws {
            guard count <= region.count else {
                throw corruptPage("\(m) values need \(count) bytes, the page holds \(region.count)")
            }
        }
        switch leaf.physical {
        case PhysicalType.boolean:
            try need((m + 7) / 8)
            ints.reserveCapacity(m)
            for i in 0..<m { ints.append(Int64((region[i >> 3] >> UInt8(i & 7)) & 1)) }
        case PhysicalType.int32:
            try need(m * 4)
            ints.reserveCapacity(m)
            for i in 0..<m {
                ints.append(Int64(Int32(littleEndian: region.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))))
            }
        case PhysicalType.int64:
            try need(m * 8)
            appendRaw(region, count: m, to: &ints)
        case PhysicalType.int96:
            try need(m * 12)
            ints.reserveCapacity(m)
            for i in 0..<m {
                let nanos = Int64(littleEndian: region.loadUnaligned(fromByteOffset: i * 12, as: Int64.self))
                let julian = Int64(Int32(littleEndian: region.loadUnaligned(fromByteOffset: i * 12 + 8, as: Int32.self)))
                let (dayMicros, o1) = (julian - 2_440_588).multipliedReportingOverflow(by: 86_400_000_000)
                let (micros, o2) = dayMicros.addingReportingOverflow(try convert(nanos, .floorDivide(1000)))
                guard !o1, !o2 else { throw corruptPage("INT96 timestamp out of range") }
                ints.append(micros)
            }
        case PhysicalType.float:
            try need(m * 4)
            doubles.reserveCapacity(m)
            for i in 0..<m {
                let bits = UInt32(littleEndian: region.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                doubles.append(Double(Float(bitPattern: bits)))
            }
        case PhysicalType.double:
            try need(m * 8)
            appendRaw(region, count: m, to: &doubles)
        case PhysicalType.byteArray:
            var cursor = ByteCursor(region)
            offsets.reserveCapacity(m + 1)
            for _ in 0..<m {
                let length = Int(try cursor.u32())
                bytes.append(contentsOf: try cursor.take(length))
                guard bytes.count <= Int(Int32.max) else { throw ParquetError("a string page exceeds 2 GiB") }
                offsets.append(Int32(bytes.count))
            }
        case PhysicalType.fixedLenByteArray:
            let width = leaf.typeLength
            try need(m * width)
            guard m * width <= Int(Int32.max) else { throw ParquetError("a page exceeds 2 GiB") }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: region[0..<(m * width)]))
            offsets.reserveCapacity(m + 1)
            for i in 1...max(1, m) where m > 0 { offsets.append(Int32(i * width)) }
        default:
            throw ParquetError("physical type \(PhysicalType.name(leaf.physical)) is not supported")
        }
    }

    private func appendRaw<T>(_ region: UnsafeRawBufferPointer, count m: Int, to array: inout [T]) where T: Numeric {
        let old = array.count
        array.append(contentsOf: repeatElement(0, count: m))
        array.withUnsafeMutableBytes { dst in
            (dst.baseAddress! + old * MemoryLayout<T>.stride).copyMemory(from: region.baseAddress!,
                                                                           byteCount: m * MemoryLayout<T>.stride)
        }
    }

    /// Converts raw decoded values to the leaf's output domain.
    private mutating func finish(_ leaf: Leaf) throws {
        switch leaf.kind {
        case .int(let conversion):
            switch conversion {
            case .identity, .unsigned64: break
            default:
                for i in ints.indices { ints[i] = try convert(ints[i], conversion) }
            }
        case .bool, .string, .double(nil):
            break
        case .double(let scale?):
            var divisor = 1.0
            for _ in 0..<Int(scale) { divisor *= 10 }
            if leaf.physical == PhysicalType.int32 || leaf.physical == PhysicalType.int64 {
                doubles.reserveCapacity(ints.count)
                for v in ints { doubles.append(Double(v) / divisor) }
            } else {
                let count = offsets.count - 1
                doubles.reserveCapacity(count)
                for i in 0..<count {
                    let s = Int(offsets[i]), e = Int(offsets[i + 1])
                    guard e - s <= 16 else { throw corruptPage("a decimal of \(e - s) bytes exceeds 16") }
                    doubles.append(decimalValue(bytes[s..<e]) / divisor)
                }
            }
        }
    }

    /// A big-endian two's-complement integer of up to 16 bytes, as a Double (rounded to nearest).
    private func decimalValue(_ b: ArraySlice<UInt8>) -> Double {
        guard let first = b.first else { return 0 }
        var v: UInt128 = first & 0x80 != 0 ? ~0 : 0
        for byte in b { v = (v << 8) | UInt128(byte) }
        return Double(Int128(bitPattern: v))
    }

    // MARK: - Output

    /// Appends `n` rows (`present` of them non-null, placed by `levels`) to the column.
    private mutating func scatter(count n: Int, present: Int, _ leaf: Leaf, into column: inout Column) throws {
        let dense = present == n
        switch leaf.kind {
        case .int, .bool:
            guard ints.count == present else { throw corruptPage("decoded \(ints.count) values, expected \(present)") }
            if dense {
                column.ints.append(contentsOf: ints)
            } else {
                var k = 0
                for i in 0..<n {
                    if levels[i] != 0 {
                        column.ints.append(ints[k])
                        k += 1
                    } else {
                        column.ints.append(0)
                    }
                }
            }
        case .double:
            guard doubles.count == present else { throw corruptPage("decoded \(doubles.count) values, expected \(present)") }
            if dense {
                column.doubles.append(contentsOf: doubles)
            } else {
                var k = 0
                for i in 0..<n {
                    if levels[i] != 0 {
                        column.doubles.append(doubles[k])
                        k += 1
                    } else {
                        column.doubles.append(0)
                    }
                }
            }
        case .string:
            guard offsets.count == present + 1 else {
                throw corruptPage("decoded \(offsets.count - 1) values, expected \(present)")
            }
            let base = column.bytes.count
            guard base + bytes.count <= Int(Int32.max) else {
                throw ParquetError("the string column exceeds 2 GiB; read fewer row groups at a time")
            }
            column.bytes.append(contentsOf: bytes)
            let shift = Int32(base)
            var k = 0
            var last = shift
            for i in 0..<n {
                if dense || levels[i] != 0 {
                    k += 1
                    last = shift + offsets[k]
                }
                column.offsets.append(last)
            }
        }
        if dense {
            column.validity.appendSet(count: n)
        } else {
            valid.removeAll(keepingCapacity: true)
            valid.reserveCapacity(n)
            for i in 0..<n { valid.append(levels[i] != 0) }
            valid.withUnsafeBufferPointer { column.validity.append(contentsOf: $0) }
        }
    }
}
