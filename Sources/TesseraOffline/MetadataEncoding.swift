// Writing the parts of parquet.thrift that Metadata.swift declares, in the Thrift compact protocol.

extension ThriftWriter {
    mutating func write(_ m: FileMetaData, columnOrders: Int) {
        field(1, i32: m.version)
        beginList(2, elementType: ThriftType.structure, count: m.schema.count)
        for e in m.schema { write(e) }
        field(3, i64: m.numRows)
        beginList(4, elementType: ThriftType.structure, count: m.rowGroups.count)
        for g in m.rowGroups { write(g) }
        if !m.keyValueMetadata.isEmpty {
            beginList(5, elementType: ThriftType.structure, count: m.keyValueMetadata.count)
            for (k, v) in m.keyValueMetadata {
                beginListStruct()
                field(1, string: k)
                field(2, string: v)
                endStruct()
            }
        }
        if let c = m.createdBy { field(6, string: c) }
        if columnOrders > 0 {
            // ColumnOrder union, member 1: TypeDefinedOrder (empty struct), one per leaf.
            beginList(7, elementType: ThriftType.structure, count: columnOrders)
            for _ in 0..<columnOrders {
                beginListStruct()
                beginStruct(1)
                endStruct()
                endStruct()
            }
        }
        finish()
    }

    private mutating func write(_ e: SchemaElement) {
        beginListStruct()
        if let t = e.type { field(1, i32: t) }
        if let l = e.typeLength { field(2, i32: l) }
        if let r = e.repetition { field(3, i32: r) }
        field(4, string: e.name)
        if let n = e.numChildren { field(5, i32: n) }
        if let c = e.convertedType { field(6, i32: c) }
        if let s = e.scale { field(7, i32: s) }
        if let p = e.precision { field(8, i32: p) }
        if let lt = e.logicalType {
            beginStruct(10)
            switch lt {
            case .string:
                beginStruct(1); endStruct()
            case .date:
                beginStruct(6); endStruct()
            case .timestamp(let utc, let unit):
                beginStruct(8)
                field(1, bool: utc)
                beginStruct(2)
                switch unit {
                case .millis: beginStruct(1)
                case .micros: beginStruct(2)
                case .nanos: beginStruct(3)
                }
                endStruct()
                endStruct()
                endStruct()
            case .integer(let width, let signed):
                beginStruct(10)
                field(1, i8: width)
                field(2, bool: signed)
                endStruct()
            default:
                break   // the writer emits only the annotations above
            }
            endStruct()
        }
        endStruct()
    }

    private mutating func write(_ g: RowGroup) {
        beginListStruct()
        beginList(1, elementType: ThriftType.structure, count: g.columns.count)
        for c in g.columns {
            beginListStruct()
            field(2, i64: c.fileOffset)
            if let m = c.metaData {
                beginStruct(3)
                write(m)
                endStruct()
            }
            endStruct()
        }
        field(2, i64: g.totalByteSize)
        field(3, i64: g.numRows)
        if let o = g.fileOffset { field(5, i64: o) }
        if let s = g.totalCompressedSize { field(6, i64: s) }
        if let o = g.ordinal { field(7, i16: o) }
        endStruct()
    }

    private mutating func write(_ m: ColumnMetaData) {
        field(1, i32: m.type)
        beginList(2, elementType: ThriftType.i32, count: m.encodings.count)
        for e in m.encodings { element(i32: e) }
        beginList(3, elementType: ThriftType.binary, count: m.pathInSchema.count)
        for p in m.pathInSchema { element(string: p) }
        field(4, i32: m.codec)
        field(5, i64: m.numValues)
        field(6, i64: m.totalUncompressedSize)
        field(7, i64: m.totalCompressedSize)
        field(9, i64: m.dataPageOffset)
        if let d = m.dictionaryPageOffset { field(11, i64: d) }
        if let s = m.statistics {
            beginStruct(12)
            if let v = s.max { field(1, binary: v) }
            if let v = s.min { field(2, binary: v) }
            if let v = s.nullCount { field(3, i64: v) }
            if let v = s.maxValue { field(5, binary: v) }
            if let v = s.minValue { field(6, binary: v) }
            if s.maxValue != nil { field(7, bool: true) }
            if s.minValue != nil { field(8, bool: true) }
            if let v = s.nanCount { field(9, i64: v) }
            endStruct()
        }
        if !m.encodingStats.isEmpty {
            beginList(13, elementType: ThriftType.structure, count: m.encodingStats.count)
            for s in m.encodingStats {
                beginListStruct()
                field(1, i32: s.pageType)
                field(2, i32: s.encoding)
                field(3, i32: s.count)
                endStruct()
            }
        }
    }

    mutating func write(_ h: PageHeader) {
        field(1, i32: h.type)
        field(2, i32: h.uncompressedPageSize)
        field(3, i32: h.compressedPageSize)
        if let c = h.crc { field(4, i32: c) }
        if let d = h.dataPage {
            beginStruct(5)
            field(1, i32: d.numValues)
            field(2, i32: d.encoding)
            field(3, i32: d.definitionLevelEncoding)
            field(4, i32: d.repetitionLevelEncoding)
            endStruct()
        }
        if let d = h.dictionaryPage {
            beginStruct(7)
            field(1, i32: d.numValues)
            field(2, i32: d.encoding)
            endStruct()
        }
        if let d = h.dataPageV2 {
            beginStruct(8)
            field(1, i32: d.numValues)
            field(2, i32: d.numNulls)
            field(3, i32: d.numRows)
            field(4, i32: d.encoding)
            field(5, i32: d.definitionLevelsByteLength)
            field(6, i32: d.repetitionLevelsByteLength)
            field(7, bool: d.isCompressed)
            endStruct()
        }
        finish()
    }
}
