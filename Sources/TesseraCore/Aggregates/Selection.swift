/// A value and the event time it had. `time == Int64.min` marks the empty partial.
public struct TimedValue: BitwiseCopyable, Sendable, Equatable {
    public var time: Micros
    public var bits: UInt64

    public init(time: Micros, bits: UInt64) {
        self.time = time
        self.bits = bits
    }

    public static let empty = TimedValue(time: .min, bits: 0)
}

/// An aggregate that selects one value — `min`, `max`, `first`, `last` — and so cannot be undone
/// when a tile leaves a window. `merge(older, newer)` is the aggregate of the concatenation.
public protocol SelectionRule: Sendable {
    associatedtype Partial: BitwiseCopyable & Sendable & Equatable
    associatedtype Input: BitwiseCopyable
    static var empty: Partial { get }
    static func single(_ x: Input, time: Micros) -> Partial
    static func merge(_ older: Partial, _ newer: Partial) -> Partial
    /// The output's bit pattern, or nil for null.
    static func value(_ p: Partial) -> UInt64?
}

/// Largest non-null value; null when the window holds none. Empty is −∞, which no decoded
/// value can be (non-finite numbers are rejected).
public enum MaxRule: SelectionRule {
    public static var empty: Double { -.infinity }
    @inline(__always) public static func single(_ x: Double, time: Micros) -> Double { x }
    @inline(__always) public static func merge(_ older: Double, _ newer: Double) -> Double { newer > older ? newer : older }
    @inline(__always) public static func value(_ p: Double) -> UInt64? { p.isInfinite ? nil : p.bitPattern }
}

/// Smallest non-null value; null when the window holds none.
public enum MinRule: SelectionRule {
    public static var empty: Double { .infinity }
    @inline(__always) public static func single(_ x: Double, time: Micros) -> Double { x }
    @inline(__always) public static func merge(_ older: Double, _ newer: Double) -> Double { newer < older ? newer : older }
    @inline(__always) public static func value(_ p: Double) -> UInt64? { p.isInfinite ? nil : p.bitPattern }
}

/// The non-null value with the earliest event time; ties go to the event that arrived first.
public enum FirstRule: SelectionRule {
    public static var empty: TimedValue { .empty }
    @inline(__always) public static func single(_ x: UInt64, time: Micros) -> TimedValue { TimedValue(time: time, bits: x) }
    @inline(__always) public static func merge(_ older: TimedValue, _ newer: TimedValue) -> TimedValue {
        newer.time != .min && (older.time == .min || newer.time < older.time) ? newer : older
    }
    @inline(__always) public static func value(_ p: TimedValue) -> UInt64? { p.time == .min ? nil : p.bits }
}

/// The non-null value with the latest event time; ties go to the event that arrived last.
public enum LastRule: SelectionRule {
    public static var empty: TimedValue { .empty }
    @inline(__always) public static func single(_ x: UInt64, time: Micros) -> TimedValue { TimedValue(time: time, bits: x) }
    @inline(__always) public static func merge(_ older: TimedValue, _ newer: TimedValue) -> TimedValue {
        newer.time != .min && (older.time == .min || newer.time >= older.time) ? newer : older
    }
    @inline(__always) public static func value(_ p: TimedValue) -> UInt64? { p.time == .min ? nil : p.bits }
}

/// `min`, `max`, `first` or `last` over one window, with windows that slide in amortised O(1)
/// per entity and hop — never rebuilt from every tile at each hop (the two-stacks queue of
/// Tangwongsan, Hirzel and Schneider, with tiles as its elements).
///
/// An entity's tiles in the window are split at its window's **pivot** (a tile index, shared by
/// every selection kernel of that window): tiles before it form the *front*, whose tile
/// partials have been replaced by suffix aggregates (the partial of the front tile at position
/// j aggregates the front tiles j, j + 1, …), and tiles from the pivot on form the *back*, whose
/// aggregate `back` is kept in the record. The window's value is `merge(suffix(first tile),
/// back)`: O(1), and `suffix(first tile)` is kept in the record too (`front`), so reading the
/// value touches no tile. A tile leaving from the front costs a read of the next; when the front is used up
/// (a back tile leaves), the remaining tiles are split again — the tiles that can no longer
/// change (they end at or before the watermark) become the new front, the rest the back — in
/// one pass over them, which happens at most once per window length.
///
/// Events land in back tiles (only tiles after the watermark take events). If the allowed
/// lateness grew since the split, a late event can reach a front tile: it is merged into the
/// suffix aggregates from its tile back to the window's start, stopping at the first that does
/// not change.
struct SelectionKernel<Rule: SelectionRule>: Sendable {
    let shape: KernelShape
    /// The record offsets of the window's pivot and start (-1 for the ring's longest window, and
    /// for a lifetime kernel).
    let pivotOffset: Int
    let startOffset: Int
    /// The record offset of the suffix aggregate of the window's first tile when it is a front
    /// tile (empty otherwise); -1 for a lifetime kernel.
    let frontOffset: Int
    let fieldType: ValueType
    /// Index of its string dictionary in the view (first/last of a string field), or -1.
    let dictionary: Int
    var inputs = KernelInputs.none

    init(shape: KernelShape, pivotOffset: Int, startOffset: Int, frontOffset: Int, fieldType: ValueType, dictionary: Int) {
        self.shape = shape
        self.pivotOffset = pivotOffset
        self.startOffset = startOffset
        self.frontOffset = frontOffset
        self.fieldType = fieldType
        self.dictionary = dictionary
    }

    @inline(__always) private func load(_ p: UnsafeMutableRawPointer) -> Rule.Partial { p.load(as: Rule.Partial.self) }
    @inline(__always) private func store(_ v: Rule.Partial, _ p: UnsafeMutableRawPointer) { p.storeBytes(of: v, as: Rule.Partial.self) }

    /// Loads the batch's values: numbers for min/max; for first/last the value's bits (strings as
    /// codes of the view's dictionary `strings`).
    mutating func prepare(_ batch: ColumnBatch, entities: UnsafePointer<UInt32>, filters: [[Bool]], buffers: KernelInputs,
                          strings: inout StringDictionary) {
        inputs = buffers
        markActive(shape, batch, entities: entities, filters: filters, into: inputs.active)
        let column = batch.columns[shape.field]
        let n = batch.count
        if Rule.Input.self == Double.self { return loadNumbers(column, count: n, into: inputs.values) }
        let bits = inputs.values.assumingMemoryBound(to: UInt64.self)
        switch column.type {
        case .int64, .bool: for i in 0..<n { bits[i] = UInt64(bitPattern: column.ints[i]) }
        case .float64: for i in 0..<n { bits[i] = column.doubles[i].bitPattern }
        case .string:
            // Low-cardinality columns repeat a few values: the codes of the values met last, by
            // their length and first and last bytes, spare most dictionary lookups.
            let active = inputs.active
            column.bytes.withUnsafeBufferPointer { bytes in
                column.offsets.withUnsafeBufferPointer { offsets in
                    var recent = InlineArray<16, (start: Int, count: Int, code: UInt64)>(repeating: (0, -1, 0))
                    for i in 0..<n {
                        guard active[i] else { bits[i] = 0; continue }
                        let start = Int(offsets[i]), count = Int(offsets[i &+ 1]) &- start
                        let slot = count == 0 ? 0 : (count &+ Int(bytes[start]) &* 3 &+ Int(bytes[start &+ count &- 1]) &* 5) & 15
                        let seen = recent[slot]
                        if count == seen.count, count == 0 || UnsafeRawPointer(bytes.baseAddress! + start).bytesEqual(
                            UnsafeRawPointer(bytes.baseAddress! + seen.start), count: count) {
                            bits[i] = seen.code
                            continue
                        }
                        let code = UInt64(strings.intern(UnsafeBufferPointer(rebasing: bytes[start..<start &+ count])))
                        recent[slot] = (start, count, code)
                        bits[i] = code
                    }
                }
            }
        }
    }

    @inline(__always)
    private func input(_ i: Int, time: Micros) -> Rule.Partial {
        Rule.single(inputs.values.load(fromByteOffset: i &* 8, as: Rule.Input.self), time: time)
    }

    @inline(__always)
    func update(_ i: Int, time: Micros, _ record: UnsafeMutableRawPointer, _ tiles: UnsafePointer<TileRef>, _ rings: UnsafePointer<RingCore>) {
        guard inputs.active[i] else { return }
        let x = input(i, time: time)
        let back = record + shape.windowOffsets[0]
        guard shape.ring >= 0 else { return store(Rule.merge(load(back), x), back) }
        let t = tiles[shape.ring]
        guard let tile = t.pointer, shape.ringWindows[0] >= t.first else { return }
        let slot = tile + shape.tileOffset
        if t.index >= record.load(fromByteOffset: pivotOffset, as: Int64.self) {
            store(Rule.merge(load(slot), x), slot)
            store(Rule.merge(load(back), x), back)
            return
        }
        // A front tile (the lateness grew since the split): fold into the suffix aggregates.
        let view = rings[shape.ring].view(record)
        let start = startOffset < 0 ? 0 : Int(record.load(fromByteOffset: startOffset, as: UInt32.self))
        var p = t.position
        while p >= start {
            let s = view.tile(p) + shape.tileOffset
            let old = load(s)
            let new = Rule.merge(old, x)
            if new == old { break }
            store(new, s)
            p -= 1
        }
        refreshFront(record, view, start: start)
    }

    /// Sets `front` from the window's first tile (positions `start…`).
    @inline(__always)
    func refreshFront(_ record: UnsafeMutableRawPointer, _ view: DequeView, start: Int) {
        let pivot = record.load(fromByteOffset: pivotOffset, as: Int64.self)
        let front = start < view.count && view.index(start) < pivot ? load(view.tile(start) + shape.tileOffset) : Rule.empty
        store(front, record + frontOffset)
    }

    /// A tile was created at `position`: a front tile starts as the suffix aggregate after it.
    func created(_ record: UnsafeMutableRawPointer, _ view: DequeView, position: Int, index k: Int64) {
        guard shape.ring >= 0 else { return }
        let pivot = record.load(fromByteOffset: pivotOffset, as: Int64.self)
        guard k < pivot, position + 1 < view.count, view.index(position + 1) < pivot else { return }
        store(load(view.tile(position + 1) + shape.tileOffset), view.tile(position) + shape.tileOffset)
    }

    /// Splits the window's tiles (positions `start..<view.count`) at `pivot`: suffix aggregates
    /// for the front, the back's aggregate into the record.
    func split(_ record: UnsafeMutableRawPointer, _ view: DequeView, start: Int, pivot: Int64) {
        var q = start
        while q < view.count && view.index(q) < pivot { q += 1 }
        var back = Rule.empty
        for p in q..<view.count { back = Rule.merge(back, load(view.tile(p) + shape.tileOffset)) }
        store(back, record + shape.windowOffsets[0])
        var suffix = Rule.empty
        var p = q - 1
        while p >= start {
            let s = view.tile(p) + shape.tileOffset
            suffix = Rule.merge(load(s), suffix)
            store(suffix, s)
            p -= 1
        }
        store(suffix, record + frontOffset)
    }
}
