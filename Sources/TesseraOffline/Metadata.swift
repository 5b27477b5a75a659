// The parts of parquet.thrift (apache/parquet-format) that this target reads and writes.
// Field ids follow the official IDL; unknown fields are skipped on read.

/// Parquet enum values used here (physical types, encodings, codecs, page types, converted types).
enum PhysicalType {
    static let boolean: Int32 = 0
    static let int32: Int32 = 1
    static let int64: Int32 = 2
    static let int96: Int32 = 3
    static let float: Int32 = 4
    static let double: Int32 = 5
    static let byteArray: Int32 = 6
    static let fixedLenByteArray: Int32 = 7

    static func name(_ t: Int32) -> String {
        switch t {
        case boolean: return "BOOLEAN"
        case int32: return "INT32"
        case int64: return "INT64"
        case int96: return "INT96"
        case float: return "FLOAT"
        case double: return "DOUBLE"
        case byteArray: return "BYTE_ARRAY"
        case fixedLenByteArray: return "FIXED_LEN_BYTE_ARRAY"
        default: return "type \(t)"
        }
    }
}

enum Encoding {
    static let plain: Int32 = 0
    static let plainDictionary: Int32 = 2
    static let rle: Int32 = 3
    static let bitPacked: Int32 = 4
    static let deltaBinaryPacked: Int32 = 5
    static let deltaLengthByteArray: Int32 = 6
    static let deltaByteArray: Int32 = 7
    static let rleDictionary: Int32 = 8
    static let byteStreamSplit: Int32 = 9

    static func name(_ e: Int32) -> String {
        switch e {
        case plain: return "PLAIN"
        case plainDictionary: return "PLAIN_DICTIONARY"
        case rle: return "RLE"
        case bitPacked: return "BIT_PACKED"
        case deltaBinaryPacked: return "DELTA_BINARY_PACKED"
        case deltaLengthByteArray: return "DELTA_LENGTH_BYTE_ARRAY"
        case deltaByteArray: return "DELTA_BYTE_ARRAY"
        case rleDictionary: return "RLE_DICTIONARY"
        case byteStreamSplit: return "BYTE_STREAM_SPLIT"
        default: return "encoding \(e)"
        }
    }
}

enum Codec {
    static let uncompressed: Int32 = 0
    static let snappy: Int32 = 1
    static let gzip: Int32 = 2
    static let lzo: Int32 = 3
    static let brotli: Int32 = 4
    static let lz4: Int32 = 5
    static let zstd: Int32 = 6
    static let lz4Raw: Int32 = 7

    static func name(_ c: Int32) -> String {
        switch c {
        case uncompressed: return "UNCOMPRESSED"
        case snappy: return "SNAPPY"
        case gzip: return "GZIP"
        case lzo: return "LZO"
        case brotli: return "BROTLI"
        case lz4: return "LZ4"
        case zstd: return "ZSTD"
        case lz4Raw: return "LZ4_RAW"
        default: return "codec \(c)"
        }
    }
}

enum PageType {
    static let dataPage: Int32 = 0
    static let indexPage: Int32 = 1
    static let dictionaryPage: Int32 = 2
    static let dataPageV2: Int32 = 3
}

enum ConvertedType {
    static let utf8: Int32 = 0
    static let map: Int32 = 1
    static let mapKeyValue: Int32 = 2
    static let list: Int32 = 3
    static let enumeration: Int32 = 4
    static let decimal: Int32 = 5
    static let date: Int32 = 6
    static let timeMillis: Int32 = 7
    static let timeMicros: Int32 = 8
    static let timestampMillis: Int32 = 9
    static let timestampMicros: Int32 = 10
    static let uint8: Int32 = 11
    static let uint16: Int32 = 12
    static let uint32: Int32 = 13
    static let uint64: Int32 = 14
    static let int8: Int32 = 15
    static let int16: Int32 = 16
    static let int32: Int32 = 17
    static let int64: Int32 = 18
    static let json: Int32 = 19
    static let bson: Int32 = 20
    static let interval: Int32 = 21
}

enum Repetition {
    static let required: Int32 = 0
    static let optional: Int32 = 1
    static let repeated: Int32 = 2
}

enum TimeUnit: Sendable, Equatable {
    case millis, micros, nanos
}

/// The LogicalType union, reduced to what matters for reading values.
enum LogicalType: Sendable, Equatable {
    case string
    case enumeration
    case json
    case bson
    case uuid
    case date
    case time(unit: TimeUnit)
    case timestamp(utc: Bool, unit: TimeUnit)
    case integer(bitWidth: Int8, signed: Bool)
    case decimal(scale: Int32, precision: Int32)
    case unknown   // the NULL logical type
    case nested    // MAP, LIST, VARIANT
    case other(Int16)
}

struct SchemaElement: Sendable {
    var type: Int32?
    var typeLength: Int32?
    var repetition: Int32?
    var name = ""
    var numChildren: Int32?
    var convertedType: Int32?
    var scale: Int32?
    var precision: Int32?
    var logicalType: LogicalType?
}

struct Statistics: Sendable {
    var max: [UInt8]?
    var min: [UInt8]?
    var nullCount: Int64?
    var distinctCount: Int64?
    var maxValue: [UInt8]?
    var minValue: [UInt8]?
    var nanCount: Int64?
}

struct PageEncodingStats: Sendable {
    var pageType: Int32
    var encoding: Int32
    var count: Int32
}

struct ColumnMetaData: Sendable {
    var type: Int32 = 0
    var encodings: [Int32] = []
    var pathInSchema: [String] = []
    var codec: Int32 = 0
    var numValues: Int64 = 0
    var totalUncompressedSize: Int64 = 0
    var totalCompressedSize: Int64 = 0
    var dataPageOffset: Int64 = 0
    var dictionaryPageOffset: Int64?
    var statistics: Statistics?
    var encodingStats: [PageEncodingStats] = []
}

struct ColumnChunk: Sendable {
    var filePath: String?
    var fileOffset: Int64 = 0
    var metaData: ColumnMetaData?
    var encrypted = false
}

struct RowGroup: Sendable {
    var columns: [ColumnChunk] = []
    var totalByteSize: Int64 = 0
    var numRows: Int64 = 0
    var fileOffset: Int64?
    var totalCompressedSize: Int64?
    var ordinal: Int16?
}

struct FileMetaData: Sendable {
    var version: Int32 = 1
    var schema: [SchemaElement] = []
    var numRows: Int64 = 0
    var rowGroups: [RowGroup] = []
    var keyValueMetadata: [(String, String)] = []
    var createdBy: String?
    var columnOrderCount = 0
    var encrypted = false
}

struct DataPageHeader: Sendable {
    var numValues: Int32 = 0
    var encoding: Int32 = 0
    var definitionLevelEncoding: Int32 = Encoding.rle
    var repetitionLevelEncoding: Int32 = Encoding.rle
}

struct DictionaryPageHeader: Sendable {
    var numValues: Int32 = 0
    var encoding: Int32 = 0
}

struct DataPageHeaderV2: Sendable {
    var numValues: Int32 = 0
    var numNulls: Int32 = 0
    var numRows: Int32 = 0
    var encoding: Int32 = 0
    var definitionLevelsByteLength: Int32 = 0
    var repetitionLevelsByteLength: Int32 = 0
    var isCompressed = true
}

struct PageHeader: Sendable {
    var type: Int32 = 0
    var uncompressedPageSize: Int32 = 0
    var compressedPageSize: Int32 = 0
    var crc: Int32?
    var dataPage: DataPageHeader?
    var dictionaryPage: DictionaryPageHeader?
    var dataPageV2: DataPageHeaderV2?
}

// MARK: - Decoding

extension ThriftReader {
    mutating func readFileMetaData() throws -> FileMetaData {
        var m = FileMetaData()
        var seen = (version: false, schema: false, numRows: false, rowGroups: false)
        try beginStruct()
        while let f = try nextField() {
            switch f.id {
            case 1: m.version = try i32(f.type); seen.version = true
            case 2:
                let (et, n) = try listHeader(f.type)
                guard et == ThriftType.structure else { throw corrupt("schema is not a list of structs") }
                m.schema.reserveCapacity(n)
                for _ in 0..<n { m.schema.append(try readSchemaElement()) }
                seen.schema = true
            case 3: m.numRows = try i64(f.type); seen.numRows = true
            case 4:
                let (et, n) = try listHeader(f.type)
                guard et == ThriftType.structure else { throw corrupt("row_groups is not a list of structs") }
                m.rowGroups.reserveCapacity(n)
                for _ in 0..<n { m.rowGroups.append(try readRowGroup()) }
                seen.rowGroups = true
            case 5:
                let (et, n) = try listHeader(f.type)
                guard et == ThriftType.structure else { throw corrupt("key_value_metadata is not a list of structs") }
                for _ in 0..<n { m.keyValueMetadata.append(try readKeyValue()) }
            case 6: m.createdBy = try string(f.type)
            case 7:
                let (et, n) = try listHeader(f.type)
                for _ in 0..<n { try skip(et, inCollection: true) }
                m.columnOrderCount = n
            case 8: m.encrypted = true; try skip(f.type)
            default: try skip(f.type)
            }
        }
        guard seen.version, seen.schema, seen.numRows, seen.rowGroups else {
            throw corrupt("file metadata lacks a required field")
        }
        return m
    }

    mutating func readKeyValue() throws -> (String, String) {
        var key: String?
        var value = ""
        try beginStruct()
        while let f = try nextField() {
            switch f.id {
            case 1: key = try string(f.type)
            case 2: value = try string(f.type)
            default: try skip(f.type)
            }
        }
        guard let key else { throw corrupt("key/value metadata without a key") }
        return (key, value)
    }

    mutating func readSchemaElement() throws -> SchemaElement {
        var e = SchemaElement()
        var hasName = false
        try beginStruct()
        while let f = try nextField() {
            switch f.id {
            case 1: e.type = try i32(f.type)
            case 2: e.typeLength = try i32(f.type)
            case 3: e.repetition = try i32(f.type)
            case 4: e.name = try string(f.type); hasName = true
            case 5: e.numChildren = try i32(f.type)
            case 6: e.convertedType = try i32(f.type)
            case 7: e.scale = try i32(f.type)
            case 8: e.precision = try i32(f.type)
            case 10: e.logicalType = try readLogicalType(f.type)
            default: try skip(f.type)
            }
        }
        guard hasName else { throw corrupt("schema element without a name") }
        return e
    }

    /// Reads the LogicalType union (one struct-typed member).
    private mutating func readLogicalType(_ type: UInt8) throws -> LogicalType? {
        try structBegin(type)
        var result: LogicalType?
        while let f = try nextField() {
            switch f.id {
            case 1: result = .string; try skip(f.type)
            case 2, 3, 16, 19: result = .nested; try skip(f.type)
            case 4: result = .enumeration; try skip(f.type)
            case 5:
                try structBegin(f.type)
                var scale: Int32 = 0, precision: Int32 = 0
                while let g = try nextField() {
                    switch g.id {
                    case 1: scale = try i32(g.type)
                    case 2: precision = try i32(g.type)
                    default: try skip(g.type)
                    }
                }
                result = .decimal(scale: scale, precision: precision)
            case 6: result = .date; try skip(f.type)
            case 7, 8:
                try structBegin(f.type)
                var utc = false
                var unit: TimeUnit?
                while let g = try nextField() {
                    switch g.id {
                    case 1: utc = try bool(g.type)
                    case 2: unit = try readTimeUnit(g.type)
                    default: try skip(g.type)
                    }
                }
                guard let unit else { throw corrupt("time type without a unit") }
                result = f.id == 7 ? .time(unit: unit) : .timestamp(utc: utc, unit: unit)
            case 10:
                try structBegin(f.type)
                var width: Int8 = 64
                var signed = true
                while let g = try nextField() {
                    switch g.id {
                    case 1: width = try i8(g.type)
                    case 2: signed = try bool(g.type)
                    default: try skip(g.type)
                    }
                }
                result = .integer(bitWidth: width, signed: signed)
            case 11: result = .unknown; try skip(f.type)
            case 12: result = .json; try skip(f.type)
            case 13: result = .bson; try skip(f.type)
            case 14: result = .uuid; try skip(f.type)
            default: result = .other(f.id); try skip(f.type)
            }
        }
        return result
    }

    private mutating func readTimeUnit(_ type: UInt8) throws -> TimeUnit? {
        try structBegin(type)
        var unit: TimeUnit?
        while let f = try nextField() {
            switch f.id {
            case 1: unit = .millis
            case 2: unit = .micros
            case 3: unit = .nanos
            default: break
            }
            try skip(f.type)
        }
        return unit
    }

    mutating func readRowGroup() throws -> RowGroup {
        var g = RowGroup()
        var hasRows = false
        try beginStruct()
        while let f = try nextField() {
            switch f.id {
            case 1:
                let (et, n) = try listHeader(f.type)
                guard et == ThriftType.structure else { throw corrupt("columns is not a list of structs") }
                g.columns.reserveCapacity(n)
                for _ in 0..<n { g.columns.append(try readColumnChunk()) }
            case 2: g.totalByteSize = try i64(f.type)
            case 3: g.numRows = try i64(f.type); hasRows = true
            case 5: g.fileOffset = try i64(f.type)
            case 6: g.totalCompressedSize = try i64(f.type)
            case 7: g.ordinal = Int16(truncatingIfNeeded: try i64(f.type))
            default: try skip(f.type)
            }
        }
        guard hasRows else { throw corrupt("row group without num_rows") }
        return g
    }

    mutating func readColumnChunk() throws -> ColumnChunk {
        var c = ColumnChunk()
        try beginStruct()
        while let f = try nextField() {
            switch f.id {
            case 1: c.filePath = try string(f.type)
            case 2: c.fileOffset = try i64(f.type)
            case 3: c.metaData = try readColumnMetaData(f.type)
            case 8, 9: c.encrypted = true; try skip(f.type)
            default: try skip(f.type)
            }
        }
        return c
    }

    mutating func readColumnMetaData(_ type: UInt8) throws -> ColumnMetaData {
        var m = ColumnMetaData()
        var seen = 0
        try structBegin(type)
        while let f = try nextField() {
            switch f.id {
            case 1: m.type = try i32(f.type); seen |= 1
            case 2:
                let (et, n) = try listHeader(f.type)
                for _ in 0..<n {
                    guard et == ThriftType.i32 else { try skip(et, inCollection: true); continue }
                    m.encodings.append(try zigzag32())
                }
            case 3:
                let (et, n) = try listHeader(f.type)
                guard et == ThriftType.binary else { throw corrupt("path_in_schema is not a list of strings") }
                for _ in 0..<n { m.pathInSchema.append(try stringValue()) }
            case 4: m.codec = try i32(f.type); seen |= 2
            case 5: m.numValues = try i64(f.type); seen |= 4
            case 6: m.totalUncompressedSize = try i64(f.type)
            case 7: m.totalCompressedSize = try i64(f.type); seen |= 8
            case 9: m.dataPageOffset = try i64(f.type); seen |= 16
            case 11: m.dictionaryPageOffset = try i64(f.type)
            case 12: m.statistics = try readStatistics(f.type)
            case 13:
                let (et, n) = try listHeader(f.type)
                guard et == ThriftType.structure else { throw corrupt("encoding_stats is not a list of structs") }
                for _ in 0..<n { m.encodingStats.append(try readPageEncodingStats()) }
            default: try skip(f.type)
            }
        }
        guard seen == 31 else { throw corrupt("column metadata lacks a required field") }
        return m
    }

    private mutating func readPageEncodingStats() throws -> PageEncodingStats {
        var s = PageEncodingStats(pageType: 0, encoding: 0, count: 0)
        try beginStruct()
        while let f = try nextField() {
            switch f.id {
            case 1: s.pageType = try i32(f.type)
            case 2: s.encoding = try i32(f.type)
            case 3: s.count = try i32(f.type)
            default: try skip(f.type)
            }
        }
        return s
    }

    mutating func readStatistics(_ type: UInt8) throws -> Statistics {
        var s = Statistics()
        try structBegin(type)
        while let f = try nextField() {
            switch f.id {
            case 1: s.max = try binary(f.type)
            case 2: s.min = try binary(f.type)
            case 3: s.nullCount = try i64(f.type)
            case 4: s.distinctCount = try i64(f.type)
            case 5: s.maxValue = try binary(f.type)
            case 6: s.minValue = try binary(f.type)
            case 9: s.nanCount = try i64(f.type)
            default: try skip(f.type)
            }
        }
        return s
    }

    mutating func readPageHeader() throws -> PageHeader {
        var h = PageHeader()
        var seen = 0
        try beginStruct()
        while let f = try nextField() {
            switch f.id {
            case 1: h.type = try i32(f.type); seen |= 1
            case 2: h.uncompressedPageSize = try i32(f.type); seen |= 2
            case 3: h.compressedPageSize = try i32(f.type); seen |= 4
            case 4: h.crc = try i32(f.type)
            case 5:
                try structBegin(f.type)
                var d = DataPageHeader()
                var dseen = 0
                while let g = try nextField() {
                    switch g.id {
                    case 1: d.numValues = try i32(g.type); dseen |= 1
                    case 2: d.encoding = try i32(g.type); dseen |= 2
                    case 3: d.definitionLevelEncoding = try i32(g.type)
                    case 4: d.repetitionLevelEncoding = try i32(g.type)
                    default: try skip(g.type)
                    }
                }
                guard dseen == 3 else { throw corrupt("data page header lacks a required field") }
                h.dataPage = d
            case 7:
                try structBegin(f.type)
                var d = DictionaryPageHeader()
                var dseen = 0
                while let g = try nextField() {
                    switch g.id {
                    case 1: d.numValues = try i32(g.type); dseen |= 1
                    case 2: d.encoding = try i32(g.type); dseen |= 2
                    default: try skip(g.type)
                    }
                }
                guard dseen == 3 else { throw corrupt("dictionary page header lacks a required field") }
                h.dictionaryPage = d
            case 8:
                try structBegin(f.type)
                var d = DataPageHeaderV2()
                var dseen = 0
                while let g = try nextField() {
                    switch g.id {
                    case 1: d.numValues = try i32(g.type); dseen |= 1
                    case 2: d.numNulls = try i32(g.type); dseen |= 2
                    case 3: d.numRows = try i32(g.type); dseen |= 4
                    case 4: d.encoding = try i32(g.type); dseen |= 8
                    case 5: d.definitionLevelsByteLength = try i32(g.type); dseen |= 16
                    case 6: d.repetitionLevelsByteLength = try i32(g.type); dseen |= 32
                    case 7: d.isCompressed = try bool(g.type)
                    default: try skip(g.type)
                    }
                }
                guard dseen == 63 else { throw corrupt("data page v2 header lacks a required field") }
                h.dataPageV2 = d
            default: try skip(f.type)
            }
        }
        guard seen == 7 else { throw corrupt("page header lacks a required field") }
        return h
    }
}
