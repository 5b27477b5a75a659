import Foundation
import TesseraCore
import TesseraOffline

/// CSV (RFC 4180) for entity frames and training sets.
enum CSV {
    /// Parses a header line and records into `.text` columns. An empty unquoted field is null; a
    /// quoted empty field (`""`) is the empty string.
    static func parse(_ data: [UInt8], path: String) throws -> Frame {
        var names: [String] = []
        var columns: [Column] = []
        var field: [UInt8] = []
        var record = 0          // 0 = the header
        var fieldIndex = 0
        var line = 1
        return try data.withUnsafeBufferPointer { bytes in
            let n = bytes.count
            var i = 0
            if n >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { i = 3 }   // UTF-8 byte order mark
            var quoted = false
            func endField() throws {
                if record == 0 {
                    names.append(String(decoding: field, as: UTF8.self))
                    columns.append(Column(type: .string))
                } else {
                    guard fieldIndex < columns.count else {
                        throw HistoricalError("\(path):\(line): more fields than the header's \(columns.count)")
                    }
                    if field.isEmpty && !quoted { columns[fieldIndex].appendNull() } else { columns[fieldIndex].append(utf8: field) }
                }
                fieldIndex += 1
                field.removeAll(keepingCapacity: true)
                quoted = false
            }
            func endRecord() throws {
                try endField()
                if record > 0 && fieldIndex != columns.count {
                    throw HistoricalError("\(path):\(line): \(fieldIndex) fields, the header has \(columns.count)")
                }
                record += 1
                fieldIndex = 0
            }
            var atRecordStart = true
            while i < n {
                let c = bytes[i]
                if c == 0x22 && field.isEmpty && !quoted {
                    // A quoted field: up to the closing quote; "" is one quote.
                    quoted = true
                    i += 1
                    var closed = false
                    while i < n {
                        if bytes[i] == 0x22 {
                            if i + 1 < n && bytes[i + 1] == 0x22 {
                                field.append(0x22)
                                i += 2
                                continue
                            }
                            i += 1
                            closed = true
                            break
                        }
                        if bytes[i] == 0x0A { line += 1 }
                        field.append(bytes[i])
                        i += 1
                    }
                    guard closed else { throw HistoricalError("\(path):\(line): a quoted field is not closed") }
                    guard i == n || bytes[i] == 0x2C || bytes[i] == 0x0A || bytes[i] == 0x0D else {
                        throw HistoricalError("\(path):\(line): text after a closing quote")
                    }
                    atRecordStart = false
                    continue
                }
                switch c {
                case 0x2C:
                    try endField()
                    atRecordStart = false
                case 0x0A, 0x0D:
                    if c == 0x0D && i + 1 < n && bytes[i + 1] == 0x0A { i += 1 }
                    if !(atRecordStart && field.isEmpty && !quoted) { try endRecord() }   // blank lines are skipped
                    line += 1
                    atRecordStart = true
                default:
                    field.append(c)
                    atRecordStart = false
                }
                i += 1
            }
            if !atRecordStart || !field.isEmpty || quoted { try endRecord() }
            guard record > 0 else { throw HistoricalError("\(path) is empty: a CSV entity frame needs a header line") }
            return try Frame(names: names, columns: columns, kinds: Array(repeating: .text, count: names.count))
        }
    }

    /// Writes a header line and one record per row (LF line ends).
    static func write(_ frame: Frame, to path: String) throws {
        let file = try OutputFile(creating: path)
        var out: [UInt8] = []
        out.reserveCapacity(1 << 20)
        for (i, name) in frame.names.enumerated() {
            if i > 0 { out.append(0x2C) }
            appendText(Array(name.utf8)[...], to: &out)
        }
        out.append(0x0A)
        for row in 0..<frame.rowCount {
            for c in 0..<frame.columns.count {
                if c > 0 { out.append(0x2C) }
                appendValue(frame.columns[c], frame.kinds[c], row, to: &out)
            }
            out.append(0x0A)
            if out.count >= 1 << 20 {
                try file.write(out)
                out.removeAll(keepingCapacity: true)
            }
        }
        try file.write(out)
        try file.close()
    }

    private static func appendValue(_ column: Column, _ kind: Frame.Kind, _ row: Int, to out: inout [UInt8]) {
        guard column.validity[row] else { return }
        switch column.type {
        case .string:
            let start = Int(column.offsets[row]), end = Int(column.offsets[row + 1])
            appendText(column.bytes[start..<end], to: &out)
        case .int64:
            if kind == .typed(.timestampMicros) {
                RFC3339.format(column.ints[row], into: &out)
            } else {
                DecimalText.append(column.ints[row], to: &out)
            }
        case .float64:
            DecimalText.append(column.doubles[row], to: &out)
        case .bool:
            out.append(contentsOf: column.ints[row] != 0 ? Array("true".utf8) : Array("false".utf8))
        }
    }

    /// A field, quoted when it holds a comma, a quote or a line break, or is empty (so that it reads
    /// back as the empty string, not null).
    private static func appendText(_ text: ArraySlice<UInt8>, to out: inout [UInt8]) {
        let needsQuotes = text.isEmpty || text.contains { $0 == 0x2C || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }
        guard needsQuotes else { return out.append(contentsOf: text) }
        out.append(0x22)
        for c in text {
            if c == 0x22 { out.append(0x22) }
            out.append(c)
        }
        out.append(0x22)
    }

    /// A `.text` column typed for Parquet: int64 when every value is an integer, else double when
    /// every value is a number, else the text as a string column.
    static func inferred(_ text: Column) -> (Column, ParquetType) {
        var ints = Column(type: .int64)
        var isInteger = true
        for i in 0..<text.count {
            guard text.validity[i] else { ints.appendNull(); continue }
            guard let v = text.withUTF8(at: i, { parseInteger($0) }) else { isInteger = false; break }
            ints.append(int: v)
        }
        if isInteger { return (ints, .int64) }
        var doubles = Column(type: .float64)
        for i in 0..<text.count {
            guard text.validity[i] else { doubles.appendNull(); continue }
            guard let v = Double(text.string(at: i)) else { return (text, .string) }
            doubles.append(double: v)
        }
        return (doubles, .double)
    }

    /// A decimal integer with an optional sign; nil for anything else or on overflow.
    static func parseInteger(_ text: UnsafeBufferPointer<UInt8>) -> Int64? {
        var i = 0
        var negative = false
        if i < text.count, text[i] == 0x2D || text[i] == 0x2B {
            negative = text[i] == 0x2D
            i += 1
        }
        guard i < text.count else { return nil }
        var v: Int64 = 0
        while i < text.count {
            let c = text[i]
            guard c >= 0x30 && c <= 0x39 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = negative ? m.subtractingReportingOverflow(Int64(c - 0x30)) : m.addingReportingOverflow(Int64(c - 0x30))
            guard !o1 && !o2 else { return nil }
            v = s
            i += 1
        }
        return v
    }
}
