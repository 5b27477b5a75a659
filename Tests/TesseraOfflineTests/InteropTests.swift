import Foundation
import Testing
import TesseraCore
import TesseraTestSupport
@testable import TesseraOffline

/// Reads one of our files with pyarrow (page checksums verified) and DuckDB and prints a canonical dump.
let readOursScript = pythonCanonical + #"""
import sys
import pyarrow as pa, pyarrow.parquet as pq, duckdb

path = sys.argv[1]
fields = [f.split(":") for f in sys.argv[2].split(",")]
def k(kind):
    return "int" if kind in ("int", "ts") else kind

out = []
t = pq.read_table(path, page_checksum_verification=True)
for f in t.schema:
    out.append(f"schema {f.name} {f.type} {'nullable' if f.nullable else 'required'}")
md = pq.read_metadata(path)
out.append(f"created_by {md.created_by}")
out.append(f"rows {md.num_rows} groups {md.num_row_groups}")
for key, value in sorted((md.metadata or {}).items()):
    out.append(f"kv {key.hex()} {value.hex()}")
for rg in range(md.num_row_groups):
    g = md.row_group(rg)
    for ci in range(g.num_columns):
        c = g.column(ci)
        st = c.statistics
        mm = "-"
        if st is not None and st.has_min_max:
            mm = cell(st.min_raw, k(fields[ci][1])) + " " + cell(st.max_raw, k(fields[ci][1]))
        nulls = st.null_count if st is not None and st.has_null_count else "?"
        out.append(f"chunk {rg} {c.path_in_schema} {c.compression} {','.join(sorted(c.encodings))} nulls={nulls} {mm}")
columns = []
for name, kind in fields:
    col = t.column(name)
    if kind == "ts":
        col = col.cast(pa.int64())
    columns.append([cell(v, k(kind)) for v in col.to_pylist()])
for i in range(t.num_rows):
    out.append("row " + ",".join(c[i] for c in columns))

con = duckdb.connect()
for row in con.sql(f"describe select * from read_parquet('{path}')").fetchall():
    out.append(f"duck_type {row[0]} {row[1]}")
exprs = ", ".join(f'epoch_us("{n}")' if kind == "ts" else f'"{n}"' for n, kind in fields)
for row in con.sql(f"select {exprs} from read_parquet('{path}') order by id").fetchall():
    out.append("duck_row " + ",".join(cell(v, k(kind)) for v, (n, kind) in zip(row, fields)))
for key, value in sorted(con.sql(f"select key, value from parquet_kv_metadata('{path}')").fetchall()):
    out.append(f"duck_kv {bytes(key).hex()} {bytes(value).hex()}")
print("\n".join(out))
"""#

/// Writes files with pyarrow (many writer settings) and DuckDB; next to each `X.parquet` an `X.expected`
/// holds `types name:type:nullability,...` and the canonical rows the reader must produce.
let writeFilesScript = pythonCanonical + #"""
import sys, random, decimal
import pyarrow as pa, pyarrow.parquet as pq, duckdb

out_dir = sys.argv[1]
rnd = random.Random(1234)
N = 2500
def maybe(v, rate=0.15):
    return None if rnd.random() < rate else v
pool = ["", "a", "paid", "é", "日本語", "🙂", "x" * 40, "tab\tnew\nline"]
data = {
    "id": list(range(N)),
    "i64": [maybe(rnd.randint(-2**63, 2**63 - 1)) for _ in range(N)],
    "i32": [maybe(rnd.randint(-2**31, 2**31 - 1)) for _ in range(N)],
    "i16": [maybe(rnd.randint(-2**15, 2**15 - 1)) for _ in range(N)],
    "u32": [maybe(rnd.randint(0, 2**32 - 1)) for _ in range(N)],
    "f32": [maybe(struct.unpack("<f", struct.pack("<f", rnd.uniform(-1e6, 1e6)))[0]) for _ in range(N)],
    "f64": [maybe(rnd.choice([rnd.uniform(-1e300, 1e300), -0.0, float("inf"), float("nan"), rnd.random()]))
            for _ in range(N)],
    "s": [maybe(rnd.choice(pool)) for _ in range(N)],
    "s2": [maybe(rnd.choice(pool) + str(rnd.getrandbits(64))) for _ in range(N)],
    "b": [maybe(rnd.random() < 0.5) for _ in range(N)],
    "ts_ms": [maybe(rnd.randint(-10**12, 4 * 10**12)) for _ in range(N)],
    "ts_us": [maybe(rnd.randint(-10**15, 4 * 10**15)) for _ in range(N)],
    "ts_ns": [maybe(rnd.randint(-10**18, 4 * 10**18)) for _ in range(N)],
    "d32": [maybe(rnd.randint(-50000, 50000)) for _ in range(N)],
    "dec": [maybe(decimal.Decimal(rnd.randint(-10**11, 10**11)).scaleb(-3)) for _ in range(N)],
}
arrow_types = {
    "id": pa.int64(), "i64": pa.int64(), "i32": pa.int32(), "i16": pa.int16(), "u32": pa.uint32(),
    "f32": pa.float32(), "f64": pa.float64(), "s": pa.string(), "s2": pa.large_string(), "b": pa.bool_(),
    "ts_ms": pa.timestamp("ms", tz="UTC"), "ts_us": pa.timestamp("us"), "ts_ns": pa.timestamp("ns", tz="UTC"),
    "d32": pa.date32(), "dec": pa.decimal128(14, 3),
}
# What ParquetFileReader must report: (ParquetType, canonical kind, value → expected value).
expect = {
    "id": ("int64", "int", lambda v: v), "i64": ("int64", "int", lambda v: v),
    "i32": ("int32", "int", lambda v: v), "i16": ("int32", "int", lambda v: v),
    "u32": ("int64", "int", lambda v: v), "f32": ("double", "double", lambda v: v),
    "f64": ("double", "double", lambda v: v), "s": ("string", "string", lambda v: v),
    "s2": ("string", "string", lambda v: v), "b": ("bool", "bool", lambda v: v),
    "ts_ms": ("timestampMicros", "int", lambda v: v * 1000), "ts_us": ("timestampMicros", "int", lambda v: v),
    "ts_ns": ("timestampMicros", "int", lambda v: v // 1000),
    "d32": ("timestampMicros", "int", lambda v: v * 86400 * 10**6),
    "dec": ("double", "double", lambda v: float(v)),
}
schema = pa.schema([pa.field(n, t, nullable=(n != "id")) for n, t in arrow_types.items()])
table = pa.table({n: pa.array(data[n], type=arrow_types[n]) for n in arrow_types}, schema=schema)

def write_expected(name, names, types, nullable, rows):
    with open(f"{out_dir}/{name}.expected", "w") as f:
        f.write("types " + ",".join(f"{n}:{t}:{'nullable' if z else 'required'}"
                                   for n, t, z in zip(names, types, nullable)) + "\n")
        for r in rows:
            f.write(",".join(r) + "\n")

rows = []
for i in range(N):
    rows.append([cell(None if data[n][i] is None else expect[n][2](data[n][i]), expect[n][1]) for n in arrow_types])

variants = {
    "v1_dict_snappy": dict(data_page_version="1.0", use_dictionary=True, compression="snappy"),
    "v2_dict_zstd": dict(data_page_version="2.0", use_dictionary=True, compression="zstd"),
    "v1_plain_none": dict(data_page_version="1.0", use_dictionary=False, compression="none"),
    "v2_plain_snappy": dict(data_page_version="2.0", use_dictionary=False, compression="snappy"),
    "format1_int96_zstd": dict(version="1.0", use_deprecated_int96_timestamps=True, compression="zstd"),
    "delta_v2_zstd": dict(data_page_version="2.0", use_dictionary=False, compression="zstd", column_encoding={
        "i64": "DELTA_BINARY_PACKED", "i32": "DELTA_BINARY_PACKED", "ts_us": "DELTA_BINARY_PACKED",
        "s": "DELTA_LENGTH_BYTE_ARRAY", "s2": "DELTA_BYTE_ARRAY", "f64": "BYTE_STREAM_SPLIT",
        "f32": "BYTE_STREAM_SPLIT"}),
    "checksums_small_pages_fallback": dict(compression="snappy", write_page_checksum=True, data_page_size=1024,
                                           dictionary_pagesize_limit=512, row_group_size=300),
}
checks = {
    "v1_dict_snappy": ("s", "RLE_DICTIONARY"), "format1_int96_zstd": ("s", "PLAIN_DICTIONARY"),
    "delta_v2_zstd": ("s2", "DELTA_BYTE_ARRAY"), "v2_plain_snappy": ("b", "RLE"),
}
for name, options in variants.items():
    options.setdefault("row_group_size", 1000)
    path = f"{out_dir}/{name}.parquet"
    pq.write_table(table, path, **options)
    md = pq.read_metadata(path)
    if name in checks:
        column, encoding = checks[name]
        index = table.schema.get_field_index(column)
        assert encoding in md.row_group(0).column(index).encodings, (name, md.row_group(0).column(index).encodings)
    if name == "format1_int96_zstd":
        assert md.schema.column(table.schema.get_field_index("ts_ms")).physical_type == "INT96"
    write_expected(name, list(arrow_types), [expect[n][0] for n in arrow_types],
                   [n != "id" for n in arrow_types], rows)

# DuckDB with default COPY settings.
con = duckdb.connect()
con.sql("""create table t as select
    range::bigint as id,
    case when range % 7 = 3 then null else (range * 2654435761) % 2000003 - 1000000 end::bigint as i64,
    case when range % 11 = 5 then null else (range % 1000 - 500)::integer end as i32,
    case when range % 13 = 0 then null else range / 7.0 end::double as f64,
    case when range % 9 = 0 then null else 'v' || (range % 17)::varchar end as s,
    case when range % 5 = 0 then null else md5(range::varchar) end as s2,
    case when range % 4 = 0 then null else range % 3 = 0 end as b,
    timestamp '2024-01-01' + to_microseconds(range * 1000003) as ts,
    timestamptz '2024-01-01 00:00:00+00' + to_microseconds(range * 7) as tstz,
    date '2020-01-01' + (range % 1000)::integer as d,
    case when range % 6 = 0 then null else (range / 8)::decimal(18,3) end as dec
    from range(5000)""")
path = f"{out_dir}/duckdb_default.parquet"
con.sql(f"copy t to '{path}' (format parquet)")
names = ["id", "i64", "i32", "f64", "s", "s2", "b", "ts", "tstz", "d", "dec"]
types = ["int64", "int64", "int32", "double", "string", "string", "bool", "timestampMicros", "timestampMicros",
         "timestampMicros", "double"]
kinds = ["int", "int", "int", "double", "string", "string", "bool", "int", "int", "int", "double"]
file_schema = pq.read_schema(path)
result = con.sql("select id, i64, i32, f64, s, s2, b, epoch_us(ts), epoch_us(tstz), epoch_us(d::timestamp), dec "
                 "from t order by id").fetchall()
write_expected("duckdb_default", names, types, [file_schema.field(n).nullable for n in names],
               [[cell(None if v is None else (float(v) if kind == "double" else v), kind)
                 for v, kind in zip(r, kinds)] for r in result])
print("ok")
"""#

/// The `ParquetType`'s pyarrow and DuckDB spellings.
func pyarrowType(_ t: ParquetType) -> String {
    switch t {
    case .int32: return "int32"
    case .int64: return "int64"
    case .double: return "double"
    case .string: return "string"
    case .bool: return "bool"
    case .timestampMicros: return "timestamp[us, tz=UTC]"
    }
}

func duckType(_ t: ParquetType) -> String {
    switch t {
    case .int32: return "INTEGER"
    case .int64: return "BIGINT"
    case .double: return "DOUBLE"
    case .string: return "VARCHAR"
    case .bool: return "BOOLEAN"
    case .timestampMicros: return "TIMESTAMP WITH TIME ZONE"
    }
}

func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

/// Compares line lists and records the first difference (whole dumps are too long for a message).
func expectSameLines(_ actual: [String], _ expected: [String], _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    if actual == expected { return }
    let firstDifference = zip(actual, expected).enumerated().first { $0.element.0 != $0.element.1 }
    if let d = firstDifference {
        Issue.record("\(what): line \(d.offset) differs:\n  actual:   \(d.element.0)\n  expected: \(d.element.1)",
                     sourceLocation: sourceLocation)
    } else {
        Issue.record("\(what): \(actual.count) lines, expected \(expected.count); extra: \(actual.count > expected.count ? actual[expected.count] : expected[actual.count])",
                     sourceLocation: sourceLocation)
    }
}

@Suite struct InteropTests {
    @Test(arguments: [ParquetCompression.none, .snappy, .zstd(level: 3)])
    func pyarrowAndDuckDBReadOurFiles(compression: ParquetCompression) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        guard try requirePythonModules(in: dir) else { return }
        let schema = ParquetSchema([ParquetField(name: "id", type: .int64, nullable: false)] + roundTripSchema.fields)
        let metadata = [("tessera.view", "user_stats"), ("note", "ünïcødé ✓"), ("empty", "")]
        let sortedMetadata = metadata.map { (hex($0.0.utf8), hex($0.1.utf8)) }.sorted { $0.0 < $1.0 }
        let path = dir.path("ours.parquet")
        var g = SeededGenerator(seed: 99)
        var groups: [[Column]] = []
        var nextID: Int64 = 0, total = 0
        for rows in [400, 1000, 150] {
            // Increasing (the readers' dumps are ordered by it) in small steps and a few jumps of
            // up to 2^52: delta-encoded at bit widths from 0 to 53.
            var id = Column(type: .int64)
            for i in 0..<rows {
                id.append(int: nextID)
                nextID += i % 97 == 96 ? Int64(g.next() >> 12) : Int64(g.next() % 64)
                total += 1
            }
            groups.append([id] + randomRowGroup(roundTripSchema, rows: rows, nullRate: 0.2, using: &g))
        }
        let writer = try ParquetFileWriter(path: path, schema: schema, compression: compression, metadata: metadata)
        for group in groups { try writer.write(rowGroup: group) }
        try writer.close()

        // What pyarrow and DuckDB must see.
        let codec: String
        switch compression {
        case .none: codec = "UNCOMPRESSED"
        case .snappy: codec = "SNAPPY"
        case .zstd: codec = "ZSTD"
        }
        var expected: [String] = schema.fields.map {
            "schema \($0.name) \(pyarrowType($0.type)) \($0.nullable ? "nullable" : "required")"
        }
        expected.append("created_by tessera")
        expected.append("rows \(total) groups \(groups.count)")
        expected += sortedMetadata.map { "kv \($0.0) \($0.1)" }
        for (rg, group) in groups.enumerated() {
            for (field, column) in zip(schema.fields, group) {
                let dictionary = field.type == .string && !field.name.hasSuffix("distinct")
                let encodings: String
                switch field.type {
                case .string: encodings = dictionary ? "PLAIN,RLE,RLE_DICTIONARY" : "PLAIN,RLE"
                case .int64, .timestampMicros: encodings = "DELTA_BINARY_PACKED,RLE"
                case .double: encodings = "BYTE_STREAM_SPLIT,RLE"
                case .int32, .bool: encodings = "PLAIN,RLE"
                }
                let stats = expectedStatistics(field, column)
                var minMax = "-"
                if let lo = stats.minInt, let hi = stats.maxInt {
                    minMax = "\(lo) \(hi)"
                } else if let lo = stats.minDouble, let hi = stats.maxDouble {
                    var d = Column(type: .float64)
                    d.append(double: lo == 0 ? -0.0 : lo)
                    d.append(double: hi == 0 ? 0.0 : hi)
                    minMax = "\(canonicalCell(d, 0)) \(canonicalCell(d, 1))"
                }
                expected.append("chunk \(rg) \(field.name) \(codec) \(encodings) nulls=\(stats.nullCount) \(minMax)")
            }
        }
        let all = (0..<schema.fields.count).map { i in concatenate(groups.map { $0[i] }) }
        let rows = canonicalRows(all)
        expected += rows.map { "row " + $0 }
        expected += schema.fields.map { "duck_type \($0.name) \(duckType($0.type))" }
        expected += rows.map { "duck_row " + $0 }
        expected += sortedMetadata.map { "duck_kv \($0.0) \($0.1)" }

        let kinds = schema.fields.map { f -> String in
            switch f.type {
            case .int32, .int64: return "\(f.name):int"
            case .timestampMicros: return "\(f.name):ts"
            case .double: return "\(f.name):double"
            case .string: return "\(f.name):string"
            case .bool: return "\(f.name):bool"
            }
        }.joined(separator: ",")
        let result = try runPython(readOursScript, [path, kinds], in: dir)
        #expect(result.status == 0, "python failed: \(result.stderr)")
        let actual = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            .filter { !$0.isEmpty }
        expectSameLines(actual, expected, "pyarrow/DuckDB dump of our \(codec) file")
    }

    @Test func weReadFilesWrittenByPyarrowAndDuckDB() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        guard try requirePythonModules(in: dir) else { return }
        let result = try runPython(writeFilesScript, [dir.url.path], in: dir)
        #expect(result.status == 0, "python failed: \(result.stderr)")
        guard result.status == 0 else { return }
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.url.path)
            .filter { $0.hasSuffix(".parquet") }.sorted()
        #expect(names.count == 8)
        for name in names {
            let path = dir.path(name)
            let expectedText = try String(contentsOfFile: String(path.dropLast(".parquet".count)) + ".expected",
                                          encoding: .utf8)
            let expected = expectedText.split(separator: "\n").map(String.init)
            let reader = try ParquetFileReader(path: path)
            let columns = try reader.readAll()
            let types = "types " + reader.schema.fields.map {
                "\($0.name):\($0.type.rawValue):\($0.nullable ? "nullable" : "required")"
            }.joined(separator: ",")
            expectSameLines([types] + canonicalRows(columns), expected, name)

            // Row groups read one at a time agree with readAll.
            var perGroup: [[Column]] = []
            for g in 0..<reader.rowGroups.count { perGroup.append(try reader.read(rowGroup: g)) }
            for i in columns.indices {
                #expect(sameColumn(concatenate(perGroup.map { $0[i] }), columns[i]), "\(name) column \(i)")
            }
        }
    }
}
