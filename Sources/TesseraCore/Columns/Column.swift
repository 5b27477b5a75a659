/// The value types a source field, an entity key or a feature can have.
public enum ValueType: String, Sendable, Hashable, CaseIterable {
    case int64
    case float64
    case string
    case bool
}

/// One column of a batch: contiguous values plus a validity bitmap (Arrow's layout).
///
/// Only the storage of the column's `type` is used: `int64` and `bool` (0/1) in `ints`,
/// `float64` in `doubles`, `string` as UTF-8 bytes addressed by `offsets` (`count + 1` entries).
/// A null row still occupies a slot (zero, or an empty string) so that row `i` is always at index `i`.
public struct Column: Sendable, Equatable {
    public let type: ValueType
    public var ints: [Int64] = []
    public var doubles: [Double] = []
    public var offsets: [Int32] = [0]
    public var bytes: [UInt8] = []
    public var validity = Bitmap()

    public init(type: ValueType) {
        self.type = type
    }

    public var count: Int { validity.count }

    /// Makes room for `rows` rows (their values; string bytes grow as they come).
    public mutating func reserveCapacity(_ rows: Int) {
        switch type {
        case .int64, .bool: ints.reserveCapacity(rows)
        case .float64: doubles.reserveCapacity(rows)
        case .string: offsets.reserveCapacity(rows + 1)
        }
        validity.reserveCapacity(rows)
    }

    public mutating func removeAll() {
        ints.removeAll(keepingCapacity: true)
        doubles.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
        offsets.append(0)
        bytes.removeAll(keepingCapacity: true)
        validity.removeAll()
    }

    /// Removes the last row.
    public mutating func removeLast() {
        switch type {
        case .int64, .bool: ints.removeLast()
        case .float64: doubles.removeLast()
        case .string:
            offsets.removeLast()
            bytes.removeSubrange(Int(offsets.last!)...)
        }
        validity.removeLast()
    }

    public mutating func appendNull() {
        switch type {
        case .int64, .bool: ints.append(0)
        case .float64: doubles.append(0)
        case .string: offsets.append(Int32(bytes.count))
        }
        validity.append(false)
    }

    public mutating func append(int value: Int64) {
        precondition(type == .int64)
        ints.append(value)
        validity.append(true)
    }

    public mutating func append(double value: Double) {
        precondition(type == .float64)
        doubles.append(value)
        validity.append(true)
    }

    public mutating func append(bool value: Bool) {
        precondition(type == .bool)
        ints.append(value ? 1 : 0)
        validity.append(true)
    }

    public mutating func append<S: Sequence>(utf8 value: S) where S.Element == UInt8 {
        precondition(type == .string)
        bytes.append(contentsOf: value)
        offsets.append(Int32(bytes.count))
        validity.append(true)
    }

    /// The rows `range` as a new column.
    public func sliced(_ range: Range<Int>) -> Column {
        var out = Column(type: type)
        out.append(contentsOf: self, range: range)
        return out
    }

    /// Appends rows `range` (all rows by default) of another column of the same type.
    public mutating func append(contentsOf other: Column, range: Range<Int>? = nil) {
        precondition(type == other.type)
        let rows = range ?? 0..<other.count
        switch type {
        case .int64, .bool: ints.append(contentsOf: other.ints[rows])
        case .float64: doubles.append(contentsOf: other.doubles[rows])
        case .string:
            let start = Int(other.offsets[rows.lowerBound]), end = Int(other.offsets[rows.upperBound])
            let shift = Int32(bytes.count) - Int32(start)
            bytes.append(contentsOf: other.bytes[start..<end])
            offsets.reserveCapacity(offsets.count + rows.count)
            for o in other.offsets[(rows.lowerBound + 1)...rows.upperBound] { offsets.append(o + shift) }
        }
        var flags = [Bool](repeating: true, count: rows.count)
        if !other.validity.allSet { for i in rows { flags[i - rows.lowerBound] = other.validity[i] } }
        flags.withUnsafeBufferPointer { validity.append(contentsOf: $0) }
    }

    /// Appends rows `rows` of another column of the same type, in the order given.
    public mutating func append(contentsOf other: Column, rows: UnsafeBufferPointer<Int>) {
        precondition(type == other.type)
        switch type {
        case .int64, .bool: other.ints.withUnsafeBufferPointer { src in ints.append(contentsOf: rows.lazy.map { src[$0] }) }
        case .float64: other.doubles.withUnsafeBufferPointer { src in doubles.append(contentsOf: rows.lazy.map { src[$0] }) }
        case .string:
            offsets.reserveCapacity(offsets.count + rows.count)
            for r in rows {
                other.withUTF8(at: r) { bytes.append(contentsOf: $0) }
                offsets.append(Int32(bytes.count))
            }
        }
        if other.validity.allSet {
            validity.appendSet(count: rows.count)
        } else {
            withUnsafeTemporaryAllocation(of: Bool.self, capacity: rows.count) { flags in
                for (k, r) in rows.enumerated() { flags[k] = other.validity[r] }
                validity.append(contentsOf: UnsafeBufferPointer(flags))
            }
        }
    }

    /// Appends `count` fixed-width values given as bit patterns (Int64, Double or 0/1 for a bool) with
    /// their validity.
    public mutating func append(bits: UnsafePointer<UInt64>, valid: UnsafePointer<Bool>, count n: Int) {
        precondition(type != .string)
        if type == .float64 {
            bits.withMemoryRebound(to: Double.self, capacity: n) { doubles.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
        } else {
            bits.withMemoryRebound(to: Int64.self, capacity: n) { ints.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
        }
        validity.append(contentsOf: UnsafeBufferPointer(start: valid, count: n))
    }

    /// Appends a string from raw UTF-8 bytes (memcpy, no generic iteration).
    public mutating func append(utf8 value: UnsafeBufferPointer<UInt8>) {
        precondition(type == .string)
        bytes.append(contentsOf: value)
        offsets.append(Int32(bytes.count))
        validity.append(true)
    }

    public mutating func append(string value: String) {
        append(utf8: value.utf8)
    }

    /// Appends a value of any type; `nil` appends a null.
    public mutating func append(_ value: Value?) {
        guard let value else { return appendNull() }
        switch (type, value) {
        case (.int64, .int(let v)): append(int: v)
        case (.float64, .double(let v)): append(double: v)
        case (.float64, .int(let v)): append(double: Double(v))
        case (.bool, .bool(let v)): append(bool: v)
        case (.string, .string(let v)): append(string: v)
        default: preconditionFailure("a \(value) cannot go in a \(type) column")
        }
    }

    /// Row `i` as a `Value`, nil when null. For tests, tools and error messages, not hot loops.
    public func value(at i: Int) -> Value? {
        guard validity[i] else { return nil }
        switch type {
        case .int64: return .int(ints[i])
        case .float64: return .double(doubles[i])
        case .bool: return .bool(ints[i] != 0)
        case .string: return .string(string(at: i))
        }
    }

    public func string(at i: Int) -> String {
        let start = Int(offsets[i]), end = Int(offsets[i + 1])
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// Calls `body` with the UTF-8 bytes of row `i` (do not escape the buffer).
    @inlinable
    public func withUTF8<R>(at i: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        let start = Int(offsets[i]), end = Int(offsets[i + 1])
        return try bytes.withUnsafeBufferPointer { all in
            try body(UnsafeBufferPointer(rebasing: all[start..<end]))
        }
    }
}

/// A single typed value, for literals, keys in tests, and printing.
public enum Value: Sendable, Hashable, CustomStringConvertible {
    case int(Int64)
    case double(Double)
    case string(String)
    case bool(Bool)

    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return String(v)
        case .string(let v): return "\"\(v)\""
        case .bool(let v): return String(v)
        }
    }
}

/// Events of one source as columns: the event time of every row, and one column per schema field.
///
/// Rows keep their arrival order; the aggregation core processes them in that order.
public struct ColumnBatch: Sendable {
    /// Event time of each row, in microseconds since the epoch.
    public var eventTimes: [Micros] = []
    /// One column per field of the source's schema, in schema order.
    public var columns: [Column]

    public init(schema: [ValueType]) {
        columns = schema.map(Column.init(type:))
    }

    public var count: Int { eventTimes.count }

    public mutating func removeAll() {
        eventTimes.removeAll(keepingCapacity: true)
        for i in columns.indices { columns[i].removeAll() }
    }

    /// Removes the last row (an event refused after it was decoded).
    public mutating func removeLast() {
        eventTimes.removeLast()
        for i in columns.indices { columns[i].removeLast() }
    }

    /// Appends rows `rows` of a batch of the same schema, in the order given.
    public mutating func append(rows: UnsafeBufferPointer<Int>, of other: ColumnBatch) {
        precondition(columns.count == other.columns.count, "batches of one schema")
        other.eventTimes.withUnsafeBufferPointer { times in eventTimes.append(contentsOf: rows.lazy.map { times[$0] }) }
        for c in columns.indices { columns[c].append(contentsOf: other.columns[c], rows: rows) }
    }

    /// Appends one row; `values` follows the schema order, nil for a null field.
    public mutating func append(time: Micros, _ values: [Value?]) {
        precondition(values.count == columns.count, "a row needs one value per schema field")
        eventTimes.append(time)
        for (i, v) in values.enumerated() { columns[i].append(v) }
    }
}
