/// Entities grouped by tile index, for the tile indices that may still be in a window: a ring
/// buffer of buckets covering `base ..< base + count`. When stream time crosses the boundary where
/// tile `k` leaves a window, bucket `k` says which entities change. Buckets keep their capacity
/// when recycled, so steady state allocates nothing.
struct Roster: Sendable {
    private(set) var base: Int64 = 0
    private(set) var count = 0
    private var start = 0
    private var buckets: [[UInt32]] = []

    init() {}

    var range: Range<Int64> { base..<base + Int64(count) }

    var memory: Int { buckets.reduce(buckets.capacity * 8) { $0 + $1.capacity * 4 } }

    private func position(_ k: Int64) -> Int { (start + Int(k - base)) & (buckets.count - 1) }

    mutating func append(entity: UInt32, tile k: Int64) {
        if count == 0 { base = k; start = 0 }
        if k < base {
            // A late event's tile, older than every live one: extend the range downwards.
            let extra = Int(base - k)
            if count + extra > buckets.count { grow(to: count + extra) }
            start = (start - extra) & (buckets.count - 1)
            base = k
            count += extra
        }
        let needed = Int(k - base) + 1
        if needed > count {
            if needed > buckets.count { grow(to: needed) }
            // A new newest bucket: room for about as many entities as the one before it got, so
            // that it does not grow (and allocate) a dozen times while its tile fills.
            let previous = count > 0 ? buckets[position(base + Int64(count) - 1)].count : 0
            count = needed
            buckets[position(k)].reserveCapacity(previous + previous / 4)
        }
        buckets[position(k)].append(entity)
    }

    func bucket(_ k: Int64) -> [UInt32]? {
        guard range.contains(k) else { return nil }
        let b = buckets[position(k)]
        return b.isEmpty ? nil : b
    }

    /// Whether every entity listed is below `n` (restoring state).
    func entities(below n: UInt32) -> Bool {
        buckets.allSatisfy { $0.allSatisfy { $0 < n } }
    }

    /// Drops every bucket below `k`.
    mutating func drop(below k: Int64) {
        while count > 0 && base < k {
            buckets[start].removeAll(keepingCapacity: true)
            start = (start + 1) & (buckets.count - 1)
            base += 1
            count -= 1
        }
        if count == 0 { base = max(base, k) }
    }

    private mutating func grow(to needed: Int) {
        var capacity = max(8, buckets.count)
        while capacity < needed { capacity *= 2 }
        var fresh = [[UInt32]](repeating: [], count: capacity)
        for i in 0..<count { fresh[i] = buckets[(start + i) & (buckets.count - 1)] }
        buckets = fresh
        start = 0
    }

    func serialize(into w: inout ByteWriter) {
        w.write(base)
        w.write(UInt64(count))
        for i in 0..<count { w.write(array: buckets[(start + i) & (buckets.count - 1)]) }
    }

    init(from r: inout ByteReader) throws {
        base = try r.read()
        let n = try r.count(limit: 1 << 24)
        for i in 0..<n {
            let b: [UInt32] = try r.readArray()
            if i == 0 { grow(to: n) }
            buckets[i] = b
        }
        count = n
    }
}
