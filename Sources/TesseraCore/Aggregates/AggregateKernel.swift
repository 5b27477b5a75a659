/// One aggregate function on partial states, after DuckDB's aggregate function table and
/// DataFusion's `GroupsAccumulator`: a tile, a window and a lifetime all hold a `Partial`;
/// events `update` it, windows are `merge`s of tiles, and `finalize` turns it into a value.
///
/// The kernel instance owns whatever storage partials reference outside themselves (sketch
/// arenas, string dictionaries), so partials stay small plain values in flat arrays.
public protocol AggregateKernel: Sendable {
    associatedtype Partial: BitwiseCopyable, Sendable
    associatedtype Input: BitwiseCopyable, Sendable

    /// The partial of an empty tile or window; merging it changes nothing.
    var empty: Partial { get }

    /// Converts the batch's `column` into one input per row. Only rows the caller marks active
    /// are read afterwards; `column` is nil for aggregates without a field (`count`).
    mutating func load(_ column: Column?, count: Int, into inputs: inout [Input])

    mutating func update(_ p: inout Partial, _ x: Input, time: Micros)

    mutating func merge(_ into: inout Partial, _ from: Partial)

    /// Whether `retract` undoes `merge` exactly (integer counts). Windows of invertible kernels
    /// drop a leaving tile in O(1) instead of being rebuilt from the remaining tiles.
    static var isInvertible: Bool { get }

    /// Removes `part` from `from`; only called when `isInvertible`.
    mutating func retract(_ from: inout Partial, _ part: Partial)

    /// Gives back storage the partial owns; the partial must not be used afterwards.
    mutating func release(_ p: Partial)

    /// The value of output `mode` (e.g. variance or stddev, a percentile's index) as the bit
    /// pattern of its output type — Int64, Double, Bool as 0/1, a string as its dictionary code —
    /// or nil for null.
    mutating func finalize(_ p: Partial, mode: Int) -> UInt64?

    /// Appends the string whose code `finalize` returned (string outputs only).
    func appendString(code: UInt64, to column: inout Column)

    func serialize(into w: inout ByteWriter)
    mutating func restore(from r: inout ByteReader) throws

    /// Bytes of storage the kernel owns besides the partials (arenas, dictionaries).
    var storageBytes: Int { get }
}

extension AggregateKernel {
    public static var isInvertible: Bool { false }
    public mutating func retract(_ from: inout Partial, _ part: Partial) {
        preconditionFailure("\(Self.self) is not invertible")
    }
    public mutating func release(_ p: Partial) {}
    public func serialize(into w: inout ByteWriter) {}
    public mutating func restore(from r: inout ByteReader) throws {}
    public var storageBytes: Int { 0 }
    public func appendString(code: UInt64, to column: inout Column) { column.appendNull() }
}

/// Numeric fields arrive as Double, whether the source declares int64 or float64.
@usableFromInline
func loadNumbers(_ column: Column?, count: Int, into inputs: inout [Double]) {
    inputs.removeAll(keepingCapacity: true)
    guard let column else { return inputs.append(contentsOf: repeatElement(0, count: count)) }
    switch column.type {
    case .float64: inputs.append(contentsOf: column.doubles)
    case .int64, .bool: for v in column.ints { inputs.append(Double(v)) }
    case .string: inputs.append(contentsOf: repeatElement(0, count: count))
    }
}

// MARK: - count

/// Rows that pass the filter (and, with a field, whose field is not null).
public struct CountKernel: AggregateKernel {
    public init() {}
    public var empty: Int64 { 0 }
    public mutating func load(_ column: Column?, count: Int, into inputs: inout [UInt8]) {
        if inputs.count != count {
            inputs.removeAll(keepingCapacity: true)
            inputs.append(contentsOf: repeatElement(0, count: count))
        }
    }
    public mutating func update(_ p: inout Int64, _ x: UInt8, time: Micros) { p &+= 1 }
    public mutating func merge(_ into: inout Int64, _ from: Int64) { into &+= from }
    public static var isInvertible: Bool { true }
    public mutating func retract(_ from: inout Int64, _ part: Int64) { from &-= part }
    public func finalize(_ p: Int64, mode: Int) -> UInt64? { UInt64(bitPattern: p) }
}

// MARK: - sum / mean

/// A count and a double-double sum (Dekker/Knuth TwoSum): about 106 bits of precision, so that
/// removing a tile from a window gives what summing the remaining tiles would.
public struct SumPartial: BitwiseCopyable, Sendable, Equatable {
    public var count: Int64
    public var hi: Double
    public var lo: Double

    public static let zero = SumPartial(count: 0, hi: 0, lo: 0)

    @inline(__always)
    mutating func add(hi bHi: Double, lo bLo: Double) {
        // TwoSum(hi, bHi), then fold the low parts in and renormalise (FastTwoSum).
        let s = hi + bHi
        let v = s - hi
        var e = (hi - (s - v)) + (bHi - v)
        e += lo + bLo
        hi = s + e
        lo = e - (hi - s)
    }

    /// The sum rounded to a double; exactly 0 once no value is left.
    var value: Double { count == 0 ? 0 : hi }
}

/// Sum and mean of non-null values share one partial: output mode 0 is the sum (0 for an empty
/// window), mode 1 the mean (null for an empty window). Invertible: a leaving tile is subtracted.
public struct SumKernel: AggregateKernel {
    public init() {}
    public var empty: SumPartial { .zero }
    public mutating func load(_ column: Column?, count: Int, into inputs: inout [Double]) {
        loadNumbers(column, count: count, into: &inputs)
    }
    public mutating func update(_ p: inout SumPartial, _ x: Double, time: Micros) {
        p.count &+= 1
        p.add(hi: x, lo: 0)
    }
    public mutating func merge(_ into: inout SumPartial, _ from: SumPartial) {
        into.count &+= from.count
        into.add(hi: from.hi, lo: from.lo)
    }
    public static var isInvertible: Bool { true }
    public mutating func retract(_ from: inout SumPartial, _ part: SumPartial) {
        from.count &-= part.count
        from.add(hi: -part.hi, lo: -part.lo)
        if from.count == 0 { from = .zero }
    }
    public func finalize(_ p: SumPartial, mode: Int) -> UInt64? {
        if mode == 1 { return p.count == 0 ? nil : (p.value / Double(p.count)).bitPattern }
        return p.value.bitPattern
    }
}

// MARK: - min / max

/// Smallest or largest non-null value; null when the window holds none.
/// The empty partial is ±infinity, which no decoded value can be (non-finite numbers are rejected).
public struct ExtremumKernel: AggregateKernel {
    public let isMax: Bool
    public init(isMax: Bool) { self.isMax = isMax }
    public var empty: Double { isMax ? -.infinity : .infinity }
    public mutating func load(_ column: Column?, count: Int, into inputs: inout [Double]) {
        loadNumbers(column, count: count, into: &inputs)
    }
    public mutating func update(_ p: inout Double, _ x: Double, time: Micros) {
        if isMax ? x > p : x < p { p = x }
    }
    public mutating func merge(_ into: inout Double, _ from: Double) {
        if isMax ? from > into : from < into { into = from }
    }
    public func finalize(_ p: Double, mode: Int) -> UInt64? {
        p.isInfinite ? nil : p.bitPattern
    }
}

// MARK: - variance / stddev

/// Welford's running moments; merged with Chan et al.'s pairwise formula.
public struct MomentsPartial: BitwiseCopyable, Sendable, Equatable {
    public var count: Int64
    public var mean: Double
    public var m2: Double
}

/// Sample variance (n − 1 in the denominator) and its square root; null below two values.
/// Output mode 0 is the variance, mode 1 the standard deviation.
public struct MomentsKernel: AggregateKernel {
    public init() {}
    public var empty: MomentsPartial { MomentsPartial(count: 0, mean: 0, m2: 0) }
    public mutating func load(_ column: Column?, count: Int, into inputs: inout [Double]) {
        loadNumbers(column, count: count, into: &inputs)
    }
    public mutating func update(_ p: inout MomentsPartial, _ x: Double, time: Micros) {
        p.count &+= 1
        let delta = x - p.mean
        p.mean += delta / Double(p.count)
        p.m2 += delta * (x - p.mean)
    }
    public mutating func merge(_ into: inout MomentsPartial, _ from: MomentsPartial) {
        guard from.count > 0 else { return }
        guard into.count > 0 else { into = from; return }
        let n = into.count &+ from.count
        let delta = from.mean - into.mean
        let nb = Double(from.count), na = Double(into.count), nn = Double(n)
        into.mean += delta * nb / nn
        into.m2 += from.m2 + delta * delta * na * nb / nn
        into.count = n
    }
    public func finalize(_ p: MomentsPartial, mode: Int) -> UInt64? {
        guard p.count >= 2 else { return nil }
        let variance = max(0, p.m2 / Double(p.count - 1))
        return (mode == 1 ? variance.squareRoot() : variance).bitPattern
    }
}

// MARK: - first / last

/// A value and the event time it had. `time == Int64.min` marks the empty partial.
public struct TimedValue: BitwiseCopyable, Sendable, Equatable {
    public var time: Micros
    public var bits: UInt64
}

/// The non-null value with the earliest (`first`) or latest (`last`) event time. Ties go to the
/// event that arrived first (`first`) or last (`last`). Strings are kept as codes of a dictionary
/// owned by the kernel, so partials stay fixed-size.
public struct PickKernel: AggregateKernel {
    public let isLast: Bool
    public let type: ValueType
    var dictionary = StringDictionary()

    public init(isLast: Bool, type: ValueType) {
        self.isLast = isLast
        self.type = type
    }

    public var empty: TimedValue { TimedValue(time: .min, bits: 0) }

    public mutating func load(_ column: Column?, count: Int, into inputs: inout [UInt64]) {
        inputs.removeAll(keepingCapacity: true)
        guard let column else { return inputs.append(contentsOf: repeatElement(0, count: count)) }
        switch column.type {
        case .int64, .bool: for v in column.ints { inputs.append(UInt64(bitPattern: v)) }
        case .float64: for v in column.doubles { inputs.append(v.bitPattern) }
        case .string:
            for i in 0..<count {
                if column.validity[i] {
                    inputs.append(UInt64(column.withUTF8(at: i) { dictionary.intern($0) }))
                } else {
                    inputs.append(0)
                }
            }
        }
    }

    public mutating func update(_ p: inout TimedValue, _ x: UInt64, time: Micros) {
        if p.time == .min || (isLast ? time >= p.time : time < p.time) {
            p = TimedValue(time: time, bits: x)
        }
    }

    public mutating func merge(_ into: inout TimedValue, _ from: TimedValue) {
        guard from.time != .min else { return }
        if into.time == .min || (isLast ? from.time >= into.time : from.time < into.time) { into = from }
    }

    public func finalize(_ p: TimedValue, mode: Int) -> UInt64? {
        p.time == .min ? nil : p.bits
    }

    public func appendString(code: UInt64, to column: inout Column) {
        dictionary.withBytes(of: UInt32(code)) { column.append(utf8: $0) }
    }

    public func serialize(into w: inout ByteWriter) { dictionary.serialize(into: &w) }
    public mutating func restore(from r: inout ByteReader) throws { dictionary = try StringDictionary(from: &r) }
    public var storageBytes: Int { dictionary.storageBytes }
}
