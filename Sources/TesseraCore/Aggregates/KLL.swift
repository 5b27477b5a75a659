/// A KLL quantile sketch (Karnin, Lang, Liberty 2016): levels of compactors, level h holding
/// items of weight 2^h; a full level is sorted and every other item is promoted.
///
/// With k = 200 the normalised rank error of a quantile is below `KLL.rankError` (2 %) with high
/// probability; small sketches (fewer than ~k items) are exact. The coin that picks odd or even
/// items is a seeded generator stored in the sketch, so replaying the same events after a restore
/// gives the same sketch bit for bit.
public enum KLL {
    public static let k = 200
    static let minWidth = 8
    /// The stated accuracy: normalised rank error of a returned quantile.
    public static let rankError = 0.02

    /// Capacity of `level` in a sketch of `levels` levels: k·(2/3)^(depth from the top).
    static let capacities: [Int] = (0..<64).map { depth in
        var c = Double(k)
        for _ in 0..<depth { c *= 2.0 / 3.0 }
        return max(minWidth, Int(c.rounded(.up)))
    }

    static func capacity(level: Int, levels: Int) -> Int { capacities[min(63, levels - 1 - level)] }
}

/// One sketch. Level 0 is unsorted; higher levels are kept sorted.
public struct KLLSketch: Sendable, Equatable {
    public internal(set) var levels: [[Double]] = [[]]
    public internal(set) var count: UInt64 = 0
    var seed: UInt64 = 0x9e37_79b9_7f4a_7c15

    public init() {}

    var retained: Int { levels.reduce(0) { $0 + $1.count } }

    var capacity: Int { (0..<levels.count).reduce(0) { $0 + KLL.capacity(level: $1, levels: levels.count) } }

    public mutating func insert(_ x: Double) {
        levels[0].append(x)
        count += 1
        if levels[0].count >= KLL.capacity(level: 0, levels: levels.count) { compress() }
    }

    public mutating func merge(_ other: KLLSketch) {
        guard other.count > 0 else { return }
        while levels.count < other.levels.count { levels.append([]) }
        levels[0].append(contentsOf: other.levels[0])
        for h in 1..<max(1, other.levels.count) where h < other.levels.count {
            levels[h] = KLLSketch.mergeSorted(levels[h], other.levels[h])
        }
        count += other.count
        seed ^= other.seed &* 0xbf58_476d_1ce4_e5b9
        compress()
    }

    /// Compacts the lowest over-full level until every level is within its capacity.
    mutating func compress() {
        var h = 0
        while h < levels.count {
            if levels[h].count >= KLL.capacity(level: h, levels: levels.count) {
                if h + 1 == levels.count { levels.append([]) }
                var items = levels[h]
                if h == 0 { items.sort() }
                // An odd item stays behind so that weight is conserved exactly.
                var keep: [Double] = []
                if items.count % 2 == 1 { keep.append(items.removeFirst()) }
                let offset = Int(nextCoin())
                var promoted: [Double] = []
                promoted.reserveCapacity(items.count / 2)
                var i = offset
                while i < items.count {
                    promoted.append(items[i])
                    i += 2
                }
                levels[h] = keep
                levels[h + 1] = KLLSketch.mergeSorted(levels[h + 1], promoted)
                h = 0
                continue
            }
            h += 1
        }
    }

    /// splitmix64; one bit per compaction.
    mutating func nextCoin() -> UInt64 {
        seed &+= 0x9e37_79b9_7f4a_7c15
        return StableHash.mix(seed) >> 63
    }

    static func mergeSorted(_ a: [Double], _ b: [Double]) -> [Double] {
        if a.isEmpty { return b }
        if b.isEmpty { return a }
        var out: [Double] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0, j = 0
        while i < a.count && j < b.count {
            if a[i] <= b[j] { out.append(a[i]); i += 1 } else { out.append(b[j]); j += 1 }
        }
        out.append(contentsOf: a[i...])
        out.append(contentsOf: b[j...])
        return out
    }

    /// The smallest retained value whose weighted rank reaches `q · count` (q in [0, 1]);
    /// nil for an empty sketch.
    public func quantile(_ q: Double) -> Double? {
        guard count > 0 else { return nil }
        var weighted: [(Double, UInt64)] = []
        weighted.reserveCapacity(retained)
        for (h, level) in levels.enumerated() {
            for x in level { weighted.append((x, 1 << UInt64(h))) }
        }
        weighted.sort { $0.0 < $1.0 }
        let target = max(1, UInt64((q * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for (x, w) in weighted {
            seen += w
            if seen >= target { return x }
        }
        return weighted.last?.0
    }
}

/// Sketches by handle, with a free list of handles so tiles can come and go.
public struct KLLStore: Sendable {
    var sketches: [KLLSketch] = []
    var free: [UInt32] = []

    public init() {}

    public static let none = UInt32.max

    mutating func allocate() -> UInt32 {
        if let h = free.popLast() { return h }
        sketches.append(KLLSketch())
        return UInt32(sketches.count - 1)
    }

    mutating func release(_ h: UInt32) {
        guard h != KLLStore.none else { return }
        sketches[Int(h)] = KLLSketch()
        free.append(h)
    }

    public func serialize(into w: inout ByteWriter) {
        w.write(UInt64(sketches.count))
        for s in sketches {
            w.write(s.count)
            w.write(s.seed)
            w.write(arrays: s.levels)
        }
        w.write(array: free)
    }

    public init(from r: inout ByteReader) throws {
        let n = try r.count(limit: Int(UInt32.max))
        sketches.reserveCapacity(n)
        for _ in 0..<n {
            var s = KLLSketch()
            s.count = try r.read()
            s.seed = try r.read()
            s.levels = try r.readArrays()
            if s.levels.isEmpty { s.levels = [[]] }
            sketches.append(s)
        }
        free = try r.readArray()
    }
}

/// `approx_percentile`: one KLL sketch serves every percentile asked of the same field and window;
/// output mode `i` is the i-th of `percentiles`.
public struct PercentileKernel: AggregateKernel {
    public var store = KLLStore()
    public let percentiles: [Double]

    public init(percentiles: [Double]) { self.percentiles = percentiles }

    public var empty: UInt32 { KLLStore.none }

    public mutating func load(_ column: Column?, count: Int, into inputs: inout [Double]) {
        loadNumbers(column, count: count, into: &inputs)
    }

    public mutating func update(_ p: inout UInt32, _ x: Double, time: Micros) {
        if p == KLLStore.none { p = store.allocate() }
        store.sketches[Int(p)].insert(x)
    }

    public mutating func merge(_ into: inout UInt32, _ from: UInt32) {
        guard from != KLLStore.none else { return }
        if into == KLLStore.none { into = store.allocate() }
        let other = store.sketches[Int(from)]
        store.sketches[Int(into)].merge(other)
    }

    public mutating func release(_ p: UInt32) { store.release(p) }

    public mutating func finalize(_ p: UInt32, mode: Int) -> UInt64? {
        guard p != KLLStore.none else { return nil }
        return store.sketches[Int(p)].quantile(percentiles[mode])?.bitPattern
    }

    public func serialize(into w: inout ByteWriter) { store.serialize(into: &w) }
    public mutating func restore(from r: inout ByteReader) throws { store = try KLLStore(from: &r) }
    public var storageBytes: Int {
        store.sketches.reduce(store.sketches.capacity * MemoryLayout<KLLSketch>.stride) { total, s in
            total + s.levels.reduce(s.levels.capacity * 8) { $0 + $1.capacity * 8 }
        }
    }
}
