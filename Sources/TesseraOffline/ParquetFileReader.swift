// Reads flat Parquet files (ours and those of pyarrow, pandas, DuckDB, Spark...) into TesseraCore columns.

import TesseraCore

/// How a leaf's stored values become column values.
enum IntConversion: Sendable, Equatable {
    case identity
    case unsigned32          // UINT_8/16/32 stored in INT32: zero-extended
    case unsigned64          // UINT_64 stored in INT64: bit pattern kept
    case multiply(Int64)     // DATE days, TIMESTAMP millis → micros
    case floorDivide(Int64)  // TIMESTAMP nanos → micros
}

enum OutputKind: Sendable, Equatable {
    case int(IntConversion)   // .int64 Column (INT32, INT64, INT96 timestamps)
    case bool                 // .bool Column
    case double(decimalScale: Int32?)   // .float64 Column (FLOAT, DOUBLE, DECIMAL)
    case string               // .string Column (BYTE_ARRAY)
}

struct Leaf: Sendable {
    var name: String
    var physical: Int32
    var typeLength: Int
    var maxDefinition: Int
    var kind: OutputKind
    var type: ParquetType

    var columnType: ValueType {
        switch kind {
        case .int: return .int64
        case .bool: return .bool
        case .double: return .float64
        case .string: return .string
        }
    }
}

struct ChunkLayout: Sendable {
    var start: Int64
    var length: Int
    var codec: Int32
    var numValues: Int64
}

struct RowGroupLayout: Sendable {
    var rowCount: Int
    var chunks: [ChunkLayout]
}

/// Reads a Parquet file's footer on init; `read` and `readAll` decode column chunks on demand.
///
/// Supported: flat schemas (REQUIRED/OPTIONAL leaves), DataPage v1 and v2, dictionary pages, encodings
/// PLAIN, PLAIN_DICTIONARY, RLE_DICTIONARY, RLE (levels, booleans), BIT_PACKED (levels),
/// DELTA_BINARY_PACKED, DELTA_LENGTH_BYTE_ARRAY, DELTA_BYTE_ARRAY and BYTE_STREAM_SPLIT, codecs
/// UNCOMPRESSED, SNAPPY and ZSTD. Types map onto `ParquetType` as follows: INT32 → int32 (unsigned
/// 8/16/32-bit → int64, zero-extended), INT64 → int64 (UINT_64 keeps its bit pattern), TIMESTAMP in
/// MILLIS/MICROS/NANOS and INT96 → timestampMicros (nanoseconds floored to microseconds), DATE →
/// timestampMicros at midnight UTC, FLOAT/DOUBLE → double, DECIMAL (INT32, INT64, BYTE_ARRAY and
/// FIXED_LEN_BYTE_ARRAY up to 16 bytes) → double (rounded), BYTE_ARRAY → string (bytes as stored),
/// BOOLEAN → bool. TIME values are returned as stored (int32 millis or int64 micros/nanos).
/// Page CRCs are verified when present. Any malformed input throws `ParquetError`.
public struct ParquetFileReader: Sendable {
    public let path: String
    public let schema: ParquetSchema
    public let rowCount: Int
    public let rowGroups: [ParquetRowGroupInfo]
    /// The footer's key_value_metadata (a missing value reads as "").
    public let metadata: [(String, String)]
    /// The footer's created_by.
    public let createdBy: String?

    let leaves: [Leaf]
    let layouts: [RowGroupLayout]

    public init(path: String) throws {
        self.path = path
        let file = try ReadOnlyFile(path: path)
        let size = file.size
        guard size >= 12 else { throw ParquetError("\(path) is not a Parquet file (only \(size) bytes)") }
        let head = try file.read(at: 0, count: 4)
        let tail = try file.read(at: size - 8, count: 8)
        if Array(tail[4..<8]) == Array("PARE".utf8) {
            throw ParquetError("\(path) is an encrypted Parquet file, which is not supported")
        }
        guard head == parquetMagic, Array(tail[4..<8]) == parquetMagic else {
            throw ParquetError("\(path) is not a Parquet file (the PAR1 magic is missing)")
        }
        let footerLength = Int64(tail[0]) | Int64(tail[1]) << 8 | Int64(tail[2]) << 16 | Int64(tail[3]) << 24
        guard footerLength > 0, footerLength <= size - 12 else {
            throw ParquetError("corrupt file \(path): footer length \(footerLength) does not fit the file")
        }
        let footerStart = size - 8 - footerLength
        let footer = try file.read(at: footerStart, count: Int(footerLength))
        var reader = ThriftReader(footer, context: "footer of \(path)")
        let meta = try reader.readFileMetaData()
        if meta.encrypted { throw ParquetError("\(path) is an encrypted Parquet file, which is not supported") }

        let leaves = try ParquetFileReader.leaves(of: meta.schema, path: path)
        self.leaves = leaves
        schema = ParquetSchema(leaves.map { ParquetField(name: $0.name, type: $0.type, nullable: $0.maxDefinition > 0) })

        var infos: [ParquetRowGroupInfo] = []
        var layouts: [RowGroupLayout] = []
        var total = 0
        for (g, group) in meta.rowGroups.enumerated() {
            guard group.numRows >= 0, group.numRows <= Int64(Int32.max) * 1024 else {
                throw ParquetError("corrupt file \(path): row group \(g) has \(group.numRows) rows")
            }
            guard group.columns.count == leaves.count else {
                throw ParquetError(
                    "corrupt file \(path): row group \(g) has \(group.columns.count) columns, the schema \(leaves.count)")
            }
            var chunks: [ChunkLayout] = []
            var stats: [ParquetColumnStatistics] = []
            for (i, column) in group.columns.enumerated() {
                let leaf = leaves[i]
                if column.encrypted { throw ParquetError("\(path): column '\(leaf.name)' is encrypted, which is not supported") }
                if let p = column.filePath, !p.isEmpty {
                    throw ParquetError("\(path): column '\(leaf.name)' is stored in another file (\(p)), which is not supported")
                }
                guard let m = column.metaData else {
                    throw ParquetError("corrupt file \(path): row group \(g) column '\(leaf.name)' has no metadata")
                }
                guard m.type == leaf.physical else {
                    throw ParquetError("corrupt file \(path): row group \(g) column '\(leaf.name)' is \(PhysicalType.name(m.type)), the schema says \(PhysicalType.name(leaf.physical))")
                }
                var start = m.dataPageOffset
                if let d = m.dictionaryPageOffset, d > 0, d < start { start = d }
                guard start >= 4, m.totalCompressedSize >= 0, start <= footerStart,
                      m.totalCompressedSize <= footerStart - start, m.totalCompressedSize <= Int64(Int.max / 2)
                else {
                    throw ParquetError("corrupt file \(path): row group \(g) column '\(leaf.name)' lies outside the data")
                }
                chunks.append(ChunkLayout(start: start, length: Int(m.totalCompressedSize), codec: m.codec,
                                          numValues: m.numValues))
                stats.append(ParquetFileReader.statistics(m.statistics, leaf))
            }
            let rows = Int(group.numRows)
            layouts.append(RowGroupLayout(rowCount: rows, chunks: chunks))
            infos.append(ParquetRowGroupInfo(rowCount: rows, columns: stats))
            total += rows
        }
        guard Int64(total) == meta.numRows else {
            throw ParquetError("corrupt file \(path): the row groups hold \(total) rows, the footer says \(meta.numRows)")
        }
        self.layouts = layouts
        rowGroups = infos
        rowCount = total
        metadata = meta.keyValueMetadata
        createdBy = meta.createdBy
    }

    // MARK: - Reading columns

    /// Columns (by schema index; nil = all) of one row group.
    public func read(rowGroup: Int, columns: [Int]? = nil) throws -> [Column] {
        guard rowGroup >= 0, rowGroup < layouts.count else {
            throw ParquetError("\(path) has \(layouts.count) row groups, no row group \(rowGroup)")
        }
        let selected = try selection(columns)
        let file = try ReadOnlyFile(path: path)
        var decoder = ChunkDecoder(path: path)
        var out: [Column] = []
        for i in selected {
            var column = Column(type: leaves[i].columnType)
            try decoder.read(file, leaves[i], layouts[rowGroup].chunks[i], rows: layouts[rowGroup].rowCount, into: &column)
            out.append(column)
        }
        return out
    }

    /// Columns (by schema index; nil = all) of every row group, concatenated.
    public func readAll(columns: [Int]? = nil) throws -> [Column] {
        let selected = try selection(columns)
        let file = try ReadOnlyFile(path: path)
        var decoder = ChunkDecoder(path: path)
        var out: [Column] = []
        for i in selected {
            var column = Column(type: leaves[i].columnType)
            ChunkDecoder.reserve(&column, leaves[i], additionalRows: rowCount)
            for layout in layouts {
                try decoder.read(file, leaves[i], layout.chunks[i], rows: layout.rowCount, into: &column)
            }
            out.append(column)
        }
        return out
    }

    /// File ranges of every page header and page body, and a data page's value encoding, in file
    /// order (for tests and tools).
    func pageRanges() throws -> [(header: Range<Int64>, body: Range<Int64>, encoding: Int32?)] {
        let file = try ReadOnlyFile(path: path)
        var out: [(header: Range<Int64>, body: Range<Int64>, encoding: Int32?)] = []
        for layout in layouts {
            for chunk in layout.chunks {
                let data = try file.read(at: chunk.start, count: chunk.length)
                var pos = 0
                while pos < data.count {
                    var reader = ThriftReader(data, from: pos, context: "page header")
                    let header = try reader.readPageHeader()
                    let end = reader.pos + Int(header.compressedPageSize)
                    out.append((chunk.start + Int64(pos)..<chunk.start + Int64(reader.pos),
                                chunk.start + Int64(reader.pos)..<chunk.start + Int64(end),
                                header.dataPage?.encoding ?? header.dataPageV2?.encoding))
                    pos = end
                }
            }
        }
        return out
    }

    private func selection(_ columns: [Int]?) throws -> [Int] {
        guard let columns else { return Array(leaves.indices) }
        for c in columns where c < 0 || c >= leaves.count {
            throw ParquetError("\(path) has \(leaves.count) columns, no column \(c)")
        }
        return columns
    }

    // MARK: - Schema

    static func leaves(of elements: [SchemaElement], path: String) throws -> [Leaf] {
        guard let root = elements.first else { throw ParquetError("corrupt file \(path): the schema is empty") }
        guard root.type == nil, let n = root.numChildren, n >= 0 else {
            throw ParquetError("corrupt file \(path): the schema root is not a group")
        }
        guard Int(n) == elements.count - 1 else {
            throw ParquetError(
                "\(path): nested schemas are not supported (the root has \(n) children but \(elements.count - 1) elements follow)")
        }
        return try elements.dropFirst().map { try leaf($0, path: path) }
    }

    private static func leaf(_ e: SchemaElement, path: String) throws -> Leaf {
        let name = e.name
        if (e.numChildren ?? 0) > 0 || e.type == nil {
            throw ParquetError("\(path): field '\(name)' is a nested group; only flat schemas are supported")
        }
        let repetition = e.repetition ?? Repetition.required
        guard repetition == Repetition.required || repetition == Repetition.optional else {
            throw ParquetError("\(path): field '\(name)' is repeated; only flat schemas are supported")
        }
        let physical = e.type ?? -1
        let logical = e.logicalType
        let converted = e.convertedType
        var leaf = Leaf(name: name, physical: physical, typeLength: Int(e.typeLength ?? 0),
                        maxDefinition: repetition == Repetition.optional ? 1 : 0, kind: .string, type: .string)

        var decimalScale: Int32?
        if case .decimal(let scale, _) = logical { decimalScale = scale }
        if decimalScale == nil && converted == ConvertedType.decimal { decimalScale = e.scale ?? 0 }
        if let s = decimalScale {
            guard s >= 0, s <= 38 else { throw ParquetError("\(path): field '\(name)' has decimal scale \(s)") }
        }
        func unsupported() -> ParquetError {
            var what = PhysicalType.name(physical)
            if let logical { what += " (\(logical))" } else if let converted { what += " (converted type \(converted))" }
            return ParquetError("\(path): field '\(name)' has type \(what), which is not supported")
        }

        switch physical {
        case PhysicalType.boolean:
            leaf.kind = .bool
            leaf.type = .bool
        case PhysicalType.int32:
            if let s = decimalScale {
                leaf.kind = .double(decimalScale: s)
                leaf.type = .double
            } else if logical == .date || (logical == nil && converted == ConvertedType.date) {
                leaf.kind = .int(.multiply(86_400_000_000))
                leaf.type = .timestampMicros
            } else if case .integer(_, false) = logical {
                leaf.kind = .int(.unsigned32)
                leaf.type = .int64
            } else if logical == nil, let c = converted,
                      c == ConvertedType.uint8 || c == ConvertedType.uint16 || c == ConvertedType.uint32 {
                leaf.kind = .int(.unsigned32)
                leaf.type = .int64
            } else {
                leaf.kind = .int(.identity)
                leaf.type = .int32
            }
        case PhysicalType.int64:
            leaf.type = .int64
            leaf.kind = .int(.identity)
            if let s = decimalScale {
                leaf.kind = .double(decimalScale: s)
                leaf.type = .double
            } else if case .timestamp(_, let unit) = logical {
                leaf.type = .timestampMicros
                switch unit {
                case .millis: leaf.kind = .int(.multiply(1000))
                case .micros: leaf.kind = .int(.identity)
                case .nanos: leaf.kind = .int(.floorDivide(1000))
                }
            } else if logical == nil && converted == ConvertedType.timestampMillis {
                leaf.type = .timestampMicros
                leaf.kind = .int(.multiply(1000))
            } else if logical == nil && converted == ConvertedType.timestampMicros {
                leaf.type = .timestampMicros
            } else if case .integer(_, false) = logical {
                leaf.kind = .int(.unsigned64)
            } else if logical == nil && converted == ConvertedType.uint64 {
                leaf.kind = .int(.unsigned64)
            }
        case PhysicalType.int96:
            leaf.kind = .int(.identity)   // converted to micros while decoding
            leaf.type = .timestampMicros
        case PhysicalType.float, PhysicalType.double:
            leaf.kind = .double(decimalScale: nil)
            leaf.type = .double
        case PhysicalType.byteArray:
            if let s = decimalScale {
                leaf.kind = .double(decimalScale: s)
                leaf.type = .double
            } else {
                leaf.kind = .string
                leaf.type = .string
            }
        case PhysicalType.fixedLenByteArray:
            guard let s = decimalScale, leaf.typeLength >= 1, leaf.typeLength <= 16 else { throw unsupported() }
            leaf.kind = .double(decimalScale: s)
            leaf.type = .double
        default:
            throw unsupported()
        }
        return leaf
    }

    // MARK: - Statistics

    static func statistics(_ s: Statistics?, _ leaf: Leaf) -> ParquetColumnStatistics {
        var out = ParquetColumnStatistics(nullCount: 0, nullCountKnown: false)
        guard let s else { return out }
        if let n = s.nullCount, n >= 0, n <= Int64(Int.max) {
            out.nullCount = Int(n)
            out.nullCountKnown = true
        }
        switch (leaf.kind, leaf.physical) {
        case (.int(let conversion), PhysicalType.int32), (.int(let conversion), PhysicalType.int64):
            guard conversion != .unsigned64 else { break }
            let signedOrder = conversion != .unsigned32
            func decode(_ bytes: [UInt8]?) -> Int64? {
                guard let bytes else { return nil }
                var raw: Int64
                if leaf.physical == PhysicalType.int32 {
                    guard bytes.count == 4 else { return nil }
                    let u = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
                    raw = conversion == .unsigned32 ? Int64(u) : Int64(Int32(bitPattern: u))
                } else {
                    guard bytes.count == 8 else { return nil }
                    var u: UInt64 = 0
                    for k in 0..<8 { u |= UInt64(bytes[k]) << UInt64(8 * k) }
                    raw = Int64(bitPattern: u)
                }
                return try? convert(raw, conversion)
            }
            out.minInt = decode(s.minValue ?? (signedOrder ? s.min : nil))
            out.maxInt = decode(s.maxValue ?? (signedOrder ? s.max : nil))
        case (.double(nil), PhysicalType.double), (.double(nil), PhysicalType.float):
            func decode(_ bytes: [UInt8]?) -> Double? {
                guard let bytes else { return nil }
                var v: Double
                if bytes.count == 8 {
                    var u: UInt64 = 0
                    for k in 0..<8 { u |= UInt64(bytes[k]) << UInt64(8 * k) }
                    v = Double(bitPattern: u)
                } else if bytes.count == 4 {
                    let u = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
                    v = Double(Float(bitPattern: u))
                } else {
                    return nil
                }
                return v.isNaN ? nil : v
            }
            out.minDouble = decode(s.minValue ?? s.min)
            out.maxDouble = decode(s.maxValue ?? s.max)
        default:
            break
        }
        return out
    }
}

@inline(__always)
func convert(_ v: Int64, _ conversion: IntConversion) throws -> Int64 {
    switch conversion {
    case .identity, .unsigned64:
        return v
    case .unsigned32:
        return Int64(UInt32(truncatingIfNeeded: v))
    case .multiply(let m):
        let (r, overflow) = v.multipliedReportingOverflow(by: m)
        guard !overflow else { throw ParquetError("value \(v) is out of range once converted to microseconds") }
        return r
    case .floorDivide(let d):
        let q = v / d
        return (v % d < 0) ? q - 1 : q
    }
}
