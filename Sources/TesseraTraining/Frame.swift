import Foundation
import TesseraCore
import TesseraOffline

/// A table read from or written to a CSV or Parquet file: the entity frame a training set starts
/// from, and the training set itself. Columns are Tessera columns; each has a name and a kind.
public struct Frame: Sendable {
    /// What a column holds.
    public enum Kind: Sendable, Hashable {
        /// Typed values, written to Parquet with this type (a `timestampMicros` column is written to
        /// CSV as RFC 3339 text).
        case typed(ParquetType)
        /// CSV text, kept as written (an empty unquoted field is null). Written to CSV unchanged and to
        /// Parquet as int64 when every value is an integer, else as double when every value is a
        /// number, else as string.
        case text
    }

    public private(set) var names: [String]
    public private(set) var columns: [Column]
    public private(set) var kinds: [Kind]
    public let rowCount: Int

    /// A frame of equally long columns with distinct names.
    public init(names: [String], columns: [Column], kinds: [Kind]) throws {
        guard names.count == columns.count, names.count == kinds.count else {
            throw HistoricalError("a frame needs one name and one kind per column")
        }
        var seen = Set<String>()
        for name in names where !seen.insert(name).inserted {
            throw HistoricalError("column '\(name)' appears twice")
        }
        let count = columns.first?.count ?? 0
        for (name, column) in zip(names, columns) where column.count != count {
            throw HistoricalError("column '\(name)' has \(column.count) rows, the first column \(count)")
        }
        self.names = names
        self.columns = columns
        self.kinds = kinds
        rowCount = count
    }

    /// The index of the column named `name`.
    public func index(of name: String) -> Int? { names.firstIndex(of: name) }

    /// Appends a column with as many rows as the frame.
    mutating func append(name: String, column: Column, kind: Kind) throws {
        guard !names.contains(name) else { throw HistoricalError("column '\(name)' appears twice") }
        precondition(column.count == rowCount)
        names.append(name)
        columns.append(column)
        kinds.append(kind)
    }

    /// Replaces the column at `index`.
    mutating func replace(_ index: Int, with column: Column, kind: Kind) {
        precondition(column.count == rowCount)
        columns[index] = column
        kinds[index] = kind
    }
}

/// The file formats of entity frames and training sets, told by the file name's extension.
public enum FrameFormat: String, Sendable {
    case csv
    case parquet

    /// `.csv` → CSV, `.parquet`/`.pq` → Parquet (case-insensitive).
    public init(path: String) throws {
        switch (path as NSString).pathExtension.lowercased() {
        case "csv": self = .csv
        case "parquet", "pq": self = .parquet
        default: throw HistoricalError("\(path): name the file .csv or .parquet so that its format is known")
        }
    }
}

extension Frame {
    /// Reads a CSV file (a header line, then RFC 4180 records: comma-separated, fields with commas,
    /// quotes or line breaks in double quotes, `""` for a quote, LF or CRLF line ends; every column
    /// `.text`) or a Parquet file (every column typed as the reader maps it).
    public static func read(path: String) throws -> Frame {
        switch try FrameFormat(path: path) {
        case .csv:
            guard let data = FileManager.default.contents(atPath: path) else { throw HistoricalError("cannot read \(path)") }
            return try CSV.parse([UInt8](data), path: path)
        case .parquet:
            let reader: ParquetFileReader
            do { reader = try ParquetFileReader(path: path) } catch { throw HistoricalError("\(error)") }
            let columns = try reader.readAll()
            return try Frame(names: reader.schema.fields.map(\.name), columns: columns,
                             kinds: reader.schema.fields.map { .typed($0.type) })
        }
    }

    /// Writes the frame as CSV or Parquet (zstd, row groups of 1 Mi rows), atomically: `path` is
    /// either the old file or the whole new one.
    public func write(to path: String) throws {
        let format = try FrameFormat(path: path)
        do {
            try AtomicFile.replace(path) { temporary in
                switch format {
                case .csv: try CSV.write(self, to: temporary)
                case .parquet: try writeParquet(to: temporary)
                }
            }
        } catch let e as FileError {
            throw HistoricalError("\(e)")
        }
    }

    static let rowGroupRows = 1 << 20

    private func writeParquet(to path: String) throws {
        var fields: [ParquetField] = []
        var typed: [Column] = []
        for (i, name) in names.enumerated() {
            switch kinds[i] {
            case .typed(let type):
                fields.append(ParquetField(name: name, type: type, nullable: true))
                typed.append(columns[i])
            case .text:
                let (column, type) = CSV.inferred(columns[i])
                fields.append(ParquetField(name: name, type: type, nullable: true))
                typed.append(column)
            }
        }
        if fields.isEmpty { throw HistoricalError("a Parquet file needs at least one column") }
        do {
            let writer = try ParquetFileWriter(path: path, schema: ParquetSchema(fields), compression: .zstd(level: 1))
            var start = 0
            repeat {
                let end = min(rowCount, start + Frame.rowGroupRows)
                try writer.write(rowGroup: typed.map { $0.slice(start..<end) })
                start = end
            } while start < rowCount
            try writer.close()
        } catch let error as ParquetError {
            throw HistoricalError("\(error)")
        }
    }
}

extension Column {
    /// Rows `range` as a new column.
    func slice(_ range: Range<Int>) -> Column {
        if range == 0..<count { return self }
        var out = Column(type: type)
        switch type {
        case .int64, .bool: out.ints = Array(ints[range])
        case .float64: out.doubles = Array(doubles[range])
        case .string:
            let base = offsets[range.lowerBound]
            out.offsets = offsets[range.lowerBound...range.upperBound].map { $0 - base }
            out.bytes = Array(bytes[Int(base)..<Int(offsets[range.upperBound])])
        }
        if validity.allSet {
            out.validity.appendSet(count: range.count)
        } else {
            for i in range { out.validity.append(validity[i]) }
        }
        return out
    }
}
