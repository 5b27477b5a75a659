import Foundation
import Testing
import TesseraCore
import TesseraTestSupport
@testable import TesseraOffline


/// A fresh directory under the system temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-parquet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

// MARK: - Random columns

let stringPool: [String] = [
    "", "a", "paid", "refunded", "é", "日本語", "🙂 smile", "tab\there", "new\nline", "zero\u{0}byte",
    "Ünïcødé", "a longer string that goes on for a while", "\"quoted\"", "comma,separated", "ß", "Ω",
]

/// A column of `n` random values for `type`; `nullRate` of the rows are null.
func randomColumn(_ type: ParquetType, _ n: Int, nullRate: Double, distinctStrings: Bool = false,
                  using g: inout SeededGenerator) -> Column {
    var c: Column
    switch type {
    case .int32, .int64, .timestampMicros: c = Column(type: .int64)
    case .double: c = Column(type: .float64)
    case .string: c = Column(type: .string)
    case .bool: c = Column(type: .bool)
    }
    let specialDoubles: [Double] = [0, -0.0, 1, -1, .infinity, -.infinity, .nan, .leastNonzeroMagnitude,
                                    .greatestFiniteMagnitude, 0.1, 1e-300]
    for i in 0..<n {
        if nullRate > 0 && Double.random(in: 0..<1, using: &g) < nullRate {
            c.appendNull()
            continue
        }
        switch type {
        case .int32:
            c.append(int: Int64(Int32.random(in: .min ... .max, using: &g)))
        case .int64:
            switch g.next() % 8 {
            case 0: c.append(int: .min)
            case 1: c.append(int: .max)
            case 2: c.append(int: Int64(i % 5))
            default: c.append(int: Int64(bitPattern: g.next()))
            }
        case .timestampMicros:
            c.append(int: Int64.random(in: -2_000_000_000_000_000 ... 4_000_000_000_000_000, using: &g))
        case .double:
            if g.next() % 4 == 0 {
                c.append(double: specialDoubles[Int(g.next() % UInt64(specialDoubles.count))])
            } else {
                c.append(double: Double(bitPattern: g.next()))
            }
        case .string:
            if distinctStrings {
                var s = stringPool[Int(g.next() % UInt64(stringPool.count))]
                s += String(g.next(), radix: 36)
                c.append(string: s)
            } else {
                c.append(string: stringPool[Int(g.next() % UInt64(stringPool.count))])
            }
        case .bool:
            c.append(bool: g.next() & 1 == 1)
        }
    }
    return c
}

/// Concatenates columns of the same type.
func concatenate(_ parts: [Column]) -> Column {
    var out = Column(type: parts[0].type)
    for p in parts {
        for i in 0..<p.count {
            if !p.validity[i] {
                out.appendNull()
                continue
            }
            switch p.type {
            case .int64: out.append(int: p.ints[i])
            case .bool: out.append(bool: p.ints[i] != 0)
            case .float64: out.append(double: p.doubles[i])
            case .string: out.withUTF8Append(p, i)
            }
        }
    }
    return out
}

extension Column {
    mutating func withUTF8Append(_ other: Column, _ i: Int) {
        other.withUTF8(at: i) { append(utf8: $0) }
    }
}

/// Equality of two columns with doubles compared bit for bit (NaN payloads, -0.0).
func sameColumn(_ a: Column, _ b: Column) -> Bool {
    guard a.type == b.type, a.count == b.count, a.validity == b.validity else { return false }
    switch a.type {
    case .int64, .bool: return a.ints == b.ints
    case .float64: return a.doubles.map(\.bitPattern) == b.doubles.map(\.bitPattern)
    case .string: return a.offsets == b.offsets && a.bytes == b.bytes
    }
}

// MARK: - Canonical text dump (shared with the Python side)

/// One cell: `null`, an integer, `d<16 hex digits>` (double bits) or `nan`, `s<hex of UTF-8>`, `true`/`false`.
func canonicalCell(_ c: Column, _ i: Int) -> String {
    guard c.validity[i] else { return "null" }
    switch c.type {
    case .int64: return String(c.ints[i])
    case .bool: return c.ints[i] != 0 ? "true" : "false"
    case .float64:
        let d = c.doubles[i]
        if d.isNaN { return "nan" }
        let hex = String(d.bitPattern, radix: 16)
        return "d" + String(repeating: "0", count: 16 - hex.count) + hex
    case .string:
        return c.withUTF8(at: i) { bytes in
            "s" + bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        }
    }
}

func canonicalRows(_ columns: [Column]) -> [String] {
    guard let n = columns.first?.count else { return [] }
    return (0..<n).map { i in columns.map { canonicalCell($0, i) }.joined(separator: ",") }
}

// MARK: - Python

struct PythonResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `python3 script args...`; the script's stdout and stderr go through files (no pipe deadlocks).
func runPython(_ script: String, _ arguments: [String], in dir: TemporaryDirectory) throws -> PythonResult {
    let scriptPath = dir.path("script-\(UUID().uuidString).py")
    try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
    let outPath = dir.path("stdout-\(UUID().uuidString)"), errPath = dir.path("stderr-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", scriptPath] + arguments
    process.standardOutput = out
    process.standardError = err
    try process.run()
    process.waitUntilExit()
    try out.close()
    try err.close()
    return PythonResult(
        status: process.terminationStatus,
        stdout: try String(contentsOfFile: outPath, encoding: .utf8),
        stderr: try String(contentsOfFile: errPath, encoding: .utf8))
}

/// Fails the test with a clear message when pyarrow/duckdb are missing.
func requirePythonModules(in dir: TemporaryDirectory) throws -> Bool {
    let r = try runPython("import pyarrow, duckdb\nprint(pyarrow.__version__, duckdb.__version__)\n", [], in: dir)
    if r.status != 0 {
        Issue.record("""
            python3 with pyarrow and duckdb is required (python3 -m pip install pyarrow duckdb, \
            or scripts/deps.sh): \(r.stderr)
            """)
        return false
    }
    return true
}

/// Python helpers shared by the scripts: the same canonical cells as `canonicalCell`.
let pythonCanonical = #"""
import math, struct

def cell(v, kind):
    if v is None:
        return "null"
    if kind == "bool":
        return "true" if v else "false"
    if kind == "double":
        v = float(v)
        if math.isnan(v):
            return "nan"
        return "d%016x" % struct.unpack("<Q", struct.pack("<d", v))[0]
    if kind == "string":
        if isinstance(v, str):
            v = v.encode("utf-8")
        return "s" + bytes(v).hex()
    return str(int(v))

"""#
