import Foundation
import Testing
import TesseraCore
import TesseraTestSupport
@testable import TesseraOffline

/// Every type, required and nullable, plus strings that defeat the dictionary.
let roundTripSchema = ParquetSchema([
    ParquetField(name: "i32", type: .int32, nullable: false),
    ParquetField(name: "i32_null", type: .int32),
    ParquetField(name: "i64", type: .int64, nullable: false),
    ParquetField(name: "i64_null", type: .int64),
    ParquetField(name: "f64", type: .double, nullable: false),
    ParquetField(name: "f64_null", type: .double),
    ParquetField(name: "s", type: .string, nullable: false),
    ParquetField(name: "s_null", type: .string),
    ParquetField(name: "s_distinct", type: .string),
    ParquetField(name: "b", type: .bool, nullable: false),
    ParquetField(name: "b_null", type: .bool),
    ParquetField(name: "ts", type: .timestampMicros, nullable: false),
    ParquetField(name: "ts_null", type: .timestampMicros),
])

func randomRowGroup(_ schema: ParquetSchema, rows: Int, nullRate: Double, using g: inout SeededGenerator) -> [Column] {
    schema.fields.map { f in
        randomColumn(f.type, rows, nullRate: f.nullable ? nullRate : 0, distinctStrings: f.name.hasSuffix("distinct"),
                     using: &g)
    }
}

/// `groups` written to a file at `path` (zstd level 1), opened for reading.
func written(_ groups: [[Column]], schema: ParquetSchema, to path: String) throws -> ParquetFileReader {
    let writer = try ParquetFileWriter(path: path, schema: schema, compression: .zstd(level: 1))
    for group in groups { try writer.write(rowGroup: group) }
    try writer.close()
    return try ParquetFileReader(path: path)
}

/// The statistics the writer must record for a column chunk.
func expectedStatistics(_ field: ParquetField, _ c: Column) -> ParquetColumnStatistics {
    var s = ParquetColumnStatistics(nullCount: c.validity.unsetCount)
    let present = (0..<c.count).filter { c.validity[$0] }
    switch field.type {
    case .int32, .int64, .timestampMicros:
        s.minInt = present.map { c.ints[$0] }.min()
        s.maxInt = present.map { c.ints[$0] }.max()
    case .double:
        let values = present.map { c.doubles[$0] }.filter { !$0.isNaN }
        s.minDouble = values.min()
        s.maxDouble = values.max()
    default:
        break
    }
    return s
}

func sameStatistics(_ a: ParquetColumnStatistics, _ b: ParquetColumnStatistics) -> Bool {
    a.nullCount == b.nullCount && a.nullCountKnown == b.nullCountKnown && a.minInt == b.minInt && a.maxInt == b.maxInt
        && a.minDouble == b.minDouble && a.maxDouble == b.maxDouble
}

@Suite struct RoundTripTests {
    @Test(arguments: [ParquetCompression.none, .snappy, .zstd(level: 3)])
    func everyTypeRoundTrips(compression: ParquetCompression) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("round-trip.parquet")
        var g = SeededGenerator(seed: 42)
        // (rows, null rate): ordinary, no nulls at all, only nulls, single row, empty (skipped).
        let plan: [(Int, Double)] = [(1500, 0.3), (700, 0), (300, 1), (1, 0.5), (0, 0.5), (2500, 0.05)]
        let groups = plan.map { randomRowGroup(roundTripSchema, rows: $0.0, nullRate: $0.1, using: &g) }
        let metadata = [("tessera.view", "user_stats"), ("note", "ünïcødé ✓"), ("empty", "")]

        let writer = try ParquetFileWriter(path: path, schema: roundTripSchema, compression: compression,
                                           metadata: metadata)
        for group in groups { try writer.write(rowGroup: group) }
        #expect(writer.rowCount == plan.reduce(0) { $0 + $1.0 })
        try writer.close()

        let reader = try ParquetFileReader(path: path)
        #expect(reader.schema == roundTripSchema)
        #expect(reader.rowCount == writer.rowCount)
        #expect(reader.createdBy == "tessera")
        #expect(reader.metadata.map { "\($0.0)=\($0.1)" } == metadata.map { "\($0.0)=\($0.1)" })
        let written = groups.filter { $0[0].count > 0 }
        #expect(reader.rowGroups.map(\.rowCount) == written.map { $0[0].count })

        for (g, group) in written.enumerated() {
            let columns = try reader.read(rowGroup: g)
            #expect(columns.count == group.count)
            for (i, (read, original)) in zip(columns, group).enumerated() {
                #expect(sameColumn(read, original), "row group \(g) column \(roundTripSchema.fields[i].name)")
                let expected = expectedStatistics(roundTripSchema.fields[i], original)
                let actual = reader.rowGroups[g].columns[i]
                #expect(sameStatistics(actual, expected),
                        "statistics of row group \(g) column \(roundTripSchema.fields[i].name): \(actual) != \(expected)")
            }
        }

        let all = try reader.readAll()
        for i in roundTripSchema.fields.indices {
            #expect(sameColumn(all[i], concatenate(written.map { $0[i] })), "readAll column \(i)")
        }
        let subset = try reader.read(rowGroup: 1, columns: [7, 0])
        #expect(subset.count == 2)
        #expect(sameColumn(subset[0], written[1][7]) && sameColumn(subset[1], written[1][0]))
    }

    @Test("64-bit integers are delta-encoded and read back exactly: nulls, wrapping jumps, partial blocks, several pages")
    func integersAreDeltaEncoded() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let schema = ParquetSchema([ParquetField(name: "offset", type: .int64, nullable: false), ParquetField(name: "ts", type: .timestampMicros)])
        var g = SeededGenerator(seed: 11)
        var groups: [[Column]] = []
        for rows in [1, 2, 127, 128, 129, 1_000, 200_000] {
            var offset = Column(type: .int64), ts = Column(type: .int64)
            var o: Int64 = Int64.max - 500, t: Int64 = 1_767_225_600_000_000
            for i in 0..<rows {
                offset.append(int: o)
                o = o &+ Int64(g.next() % 3)          // wraps past Int64.max
                if g.next() % 5 == 0 { ts.appendNull() } else { ts.append(int: t) }
                t = i % 1_000 == 999 ? Int64(bitPattern: g.next()) : t &- 40 &+ Int64(g.next() % 100)
            }
            groups.append([offset, ts])
        }
        let reader = try written(groups, schema: schema, to: dir.path("delta.parquet"))
        for (i, group) in groups.enumerated() {
            let read = try reader.read(rowGroup: i)
            #expect(sameColumn(read[0], group[0]) && sameColumn(read[1], group[1]), "row group \(i)")
        }
        // Every page is delta-encoded, the single row's too.
        let encodings = try reader.pageRanges().compactMap(\.encoding)
        #expect(encodings.allSatisfy { $0 == Encoding.deltaBinaryPacked })
        #expect(encodings.count >= 2 * groups.count + 2)
    }

    @Test("Chunk statistics cover the present values only: runs of nulls across 64-row words, all null, NaN")
    func statisticsSkipNulls() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let schema = ParquetSchema([ParquetField(name: "i", type: .int64), ParquetField(name: "d", type: .double)])
        // Present values lie in [1 000, 2 000) or are negative; a null holds 0, outside or inside
        // that range depending on the group.
        let patterns: [(Int) -> Bool] = [
            { $0 % 7 != 0 }, { !(60..<200).contains($0) }, { $0 == 63 || $0 == 64 || $0 == 299 }, { _ in false }, { $0 >= 128 },
        ]
        var groups: [[Column]] = []
        for (p, present) in patterns.enumerated() {
            var i = Column(type: .int64), d = Column(type: .float64)
            for r in 0..<300 {
                guard present(r) else { i.appendNull(); d.appendNull(); continue }
                let v = p == 4 ? -1_000 - r : 1_000 + r
                i.append(int: Int64(v))
                d.append(double: r == 64 ? .nan : Double(v) + 0.5)
            }
            groups.append([i, d])
        }
        let reader = try written(groups, schema: schema, to: dir.path("statistics.parquet"))
        for (g, group) in groups.enumerated() {
            for c in 0..<2 {
                let expected = expectedStatistics(schema.fields[c], group[c]), actual = reader.rowGroups[g].columns[c]
                #expect(sameStatistics(actual, expected), "row group \(g) column \(c): \(actual) != \(expected)")
            }
        }
        #expect(reader.rowGroups[0].columns[0].minInt == 1_001 && reader.rowGroups[2].columns[1].maxDouble == 1_299.5)
        #expect(reader.rowGroups[3].columns[0].minInt == nil && reader.rowGroups[4].columns[0].maxInt == -1_128)
    }

    @Test("Doubles are written BYTE_STREAM_SPLIT and read back bit for bit: NaN, ±0, ±∞, subnormals, nulls, several pages")
    func doublesAreByteStreamSplit() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let schema = ParquetSchema([ParquetField(name: "x", type: .double), ParquetField(name: "y", type: .double, nullable: false)])
        let special: [Double] = [.nan, -.nan, 0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, -.greatestFiniteMagnitude, 12.5]
        var g = SeededGenerator(seed: 5)
        var groups: [[Column]] = []
        for rows in [1, 7, 1_000, 200_000] {   // 200 000 values: more than one 1 MiB page
            var x = Column(type: .float64), y = Column(type: .float64)
            for i in 0..<rows {
                let v = i < special.count ? special[i] : Double(bitPattern: g.next())
                if g.next() % 4 == 0 { x.appendNull() } else { x.append(double: v) }
                y.append(double: v)
            }
            groups.append([x, y])
        }
        let reader = try written(groups, schema: schema, to: dir.path("split.parquet"))
        for (i, group) in groups.enumerated() {
            let read = try reader.read(rowGroup: i)
            for c in 0..<2 {
                #expect(read[c].validity == group[c].validity, "row group \(i) column \(c)")
                let same = zip(read[c].doubles, group[c].doubles).enumerated().allSatisfy { r, pair in
                    !group[c].validity[r] || pair.0.bitPattern == pair.1.bitPattern
                }
                #expect(same, "row group \(i) column \(c)")
            }
        }
        let encodings = try reader.pageRanges().compactMap(\.encoding)
        #expect(encodings.allSatisfy { $0 == Encoding.byteStreamSplit })
        #expect(encodings.count >= 2 * groups.count + 2)
    }

    @Test func largeChunksSplitIntoPagesAndKeepValues() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("pages.parquet")
        let schema = ParquetSchema([
            ParquetField(name: "i64", type: .int64),
            ParquetField(name: "s", type: .string),
            ParquetField(name: "s_distinct", type: .string),
            ParquetField(name: "f64", type: .double, nullable: false),
        ])
        var g = SeededGenerator(seed: 7)
        let rows = 200_000   // > 131 072 eight-byte values per 1 MiB page
        let group = randomRowGroup(schema, rows: rows, nullRate: 0.1, using: &g)
        let writer = try ParquetFileWriter(path: path, schema: schema, compression: .zstd(level: 1))
        try writer.write(rowGroup: group)
        try writer.close()

        let reader = try ParquetFileReader(path: path)
        let columns = try reader.read(rowGroup: 0)
        for i in 0..<4 { #expect(sameColumn(columns[i], group[i]), "column \(schema.fields[i].name)") }
        // i64: 2 data pages; s: dictionary + 1; s_distinct: > 1 MiB of strings, 2+ pages; f64: 2 pages.
        let pages = try reader.pageRanges()
        #expect(pages.count >= 8)
    }

    @Test func lowCardinalityStringsUseADictionary() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let schema = ParquetSchema([ParquetField(name: "s", type: .string)])
        var g = SeededGenerator(seed: 3)
        let low = randomColumn(.string, 20_000, nullRate: 0.1, using: &g)
        let high = randomColumn(.string, 20_000, nullRate: 0.1, distinctStrings: true, using: &g)
        var sizes: [String: (file: Int64, plain: Int)] = [:]
        for (name, column) in [("low", low), ("high", high)] {
            let path = dir.path("\(name).parquet")
            let writer = try ParquetFileWriter(path: path, schema: schema, compression: .none)
            try writer.write(rowGroup: [column])
            try writer.close()
            let plain = column.bytes.count + 4 * (column.count - column.validity.unsetCount)
            sizes[name] = (writer.bytesWritten, plain)
            let read = try ParquetFileReader(path: path).readAll()
            #expect(sameColumn(read[0], column))
            let pages = try ParquetFileReader(path: path).pageRanges()
            // A dictionary page precedes the data page only for the low-cardinality column.
            #expect(pages.count == (name == "low" ? 2 : 1))
        }
        #expect(sizes["low"]!.file < Int64(sizes["low"]!.plain / 4))
        #expect(sizes["high"]!.file > Int64(sizes["high"]!.plain))
    }

    @Test func aFileWithoutRowGroupsIsValid() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("empty.parquet")
        let writer = try ParquetFileWriter(path: path, schema: roundTripSchema, metadata: [("k", "v")])
        var g = SeededGenerator(seed: 0)
        try writer.write(rowGroup: randomRowGroup(roundTripSchema, rows: 0, nullRate: 0, using: &g))
        try writer.close()
        try writer.close()   // closing twice is harmless
        let reader = try ParquetFileReader(path: path)
        #expect(reader.schema == roundTripSchema && reader.rowCount == 0 && reader.rowGroups.isEmpty)
        let columns = try reader.readAll()
        #expect(columns.map(\.count) == Array(repeating: 0, count: roundTripSchema.fields.count))
        #expect(columns.map(\.type) == [.int64, .int64, .int64, .int64, .float64, .float64, .string, .string, .string,
                                        .bool, .bool, .int64, .int64])
    }

    @Test func invalidInputIsRejectedAndTheWriterStaysUsable() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("invalid.parquet")
        let schema = ParquetSchema([
            ParquetField(name: "id", type: .int32, nullable: false),
            ParquetField(name: "name", type: .string),
        ])
        let writer = try ParquetFileWriter(path: path, schema: schema, compression: .snappy)
        var id = Column(type: .int64)
        var name = Column(type: .string)
        id.append(int: 1)
        name.append(string: "one")

        var nullID = Column(type: .int64)
        nullID.appendNull()
        var tooBig = Column(type: .int64)
        tooBig.append(int: Int64(Int32.max) + 1)
        var twoNames = name
        twoNames.append(string: "two")
        var wrongType = Column(type: .float64)
        wrongType.append(double: 1)

        #expect(throws: ParquetError.self) { try writer.write(rowGroup: [nullID, name]) }
        #expect(throws: ParquetError.self) { try writer.write(rowGroup: [tooBig, name]) }
        #expect(throws: ParquetError.self) { try writer.write(rowGroup: [id, twoNames]) }
        #expect(throws: ParquetError.self) { try writer.write(rowGroup: [wrongType, name]) }
        #expect(throws: ParquetError.self) { try writer.write(rowGroup: [id]) }
        try writer.write(rowGroup: [id, name])
        try writer.close()
        #expect(throws: ParquetError.self) { try writer.write(rowGroup: [id, name]) }

        let read = try ParquetFileReader(path: path).readAll()
        #expect(read[0].value(at: 0) == .int(1) && read[1].value(at: 0) == .string("one"))

        #expect(throws: ParquetError.self) {
            _ = try ParquetFileWriter(path: dir.path("dup.parquet"), schema: ParquetSchema([
                ParquetField(name: "x", type: .int64), ParquetField(name: "x", type: .bool),
            ]))
        }
        #expect(throws: ParquetError.self) { _ = try ParquetFileReader(path: dir.path("missing.parquet")) }
        #expect(throws: ParquetError.self) { _ = try ParquetFileReader(path: path).read(rowGroup: 1) }
        #expect(throws: ParquetError.self) { _ = try ParquetFileReader(path: path).read(rowGroup: 0, columns: [2]) }
    }
}
