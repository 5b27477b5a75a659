/// The tiles of one hop size, shared by every window with that hop.
///
/// Only non-empty (entity, tile) pairs exist: each is a *slot* in a slab, linked into its entity's
/// list in tile order (oldest → newest). Kernels keep their tile partials in arrays indexed by
/// slot. A roster lists, per tile index, the slots that hold that tile; when stream time crosses
/// the boundary where tile `k` leaves a window, the roster of `k` says which entities change.
struct TileRing: Sendable {
    let hop: Micros
    /// Window lengths served by this ring, ascending.
    let windows: [Micros]
    var longest: Micros { windows[windows.count - 1] }

    // Slab, by slot.
    var slotEntity: [UInt32] = []
    var slotTile: [Int64] = []
    var slotPrev: [UInt32] = []
    var slotNext: [UInt32] = []
    var free: [UInt32] = []

    // Per entity: oldest and newest slot.
    var oldest: [UInt32] = []
    var newest: [UInt32] = []

    var roster = Roster()

    static let none = UInt32.max

    init(hop: Micros, windows: [Micros]) {
        self.hop = hop
        self.windows = windows
    }

    var liveSlots: Int { slotEntity.count - free.count }

    var memory: Int {
        slotEntity.capacity * 4 + slotTile.capacity * 8 + slotPrev.capacity * 4 + slotNext.capacity * 4
            + free.capacity * 4 + oldest.capacity * 4 + newest.capacity * 4 + roster.memory
    }

    mutating func addEntities(upTo n: Int) {
        while oldest.count < n {
            oldest.append(TileRing.none)
            newest.append(TileRing.none)
        }
    }

    /// The first window (index into `windows`) that still contains tile `k` at stream time `t`,
    /// or `windows.count` when the tile is outside all of them.
    @inline(__always)
    func firstWindowContaining(tile k: Int64, at t: Micros) -> Int {
        let end = (k + 1) * hop
        var w = 0
        while w < windows.count && end + windows[w] <= t { w += 1 }
        return w
    }

    /// The slot of tile `k` of `entity`, and whether it was just created (its partials must then
    /// be initialised by the caller).
    @inline(__always)
    mutating func slot(entity e: UInt32, tile k: Int64) -> (slot: UInt32, created: Bool) {
        let last = newest[Int(e)]
        if last != TileRing.none {
            let lastTile = slotTile[Int(last)]
            if lastTile == k { return (last, false) }
            if lastTile < k { return (insert(entity: e, tile: k, after: last), true) }
            // A late event: walk back to the tile or to where it belongs.
            var p = slotPrev[Int(last)]
            while p != TileRing.none && slotTile[Int(p)] > k { p = slotPrev[Int(p)] }
            if p != TileRing.none && slotTile[Int(p)] == k { return (p, false) }
            return (insert(entity: e, tile: k, after: p), true)
        }
        return (insert(entity: e, tile: k, after: TileRing.none), true)
    }

    /// Links a new slot after `prev` (or first when `prev` is none).
    private mutating func insert(entity e: UInt32, tile k: Int64, after prev: UInt32) -> UInt32 {
        let s: UInt32
        let next = prev == TileRing.none ? oldest[Int(e)] : slotNext[Int(prev)]
        if let reused = free.popLast() {
            s = reused
            slotEntity[Int(s)] = e
            slotTile[Int(s)] = k
            slotPrev[Int(s)] = prev
            slotNext[Int(s)] = next
        } else {
            s = UInt32(slotEntity.count)
            slotEntity.append(e)
            slotTile.append(k)
            slotPrev.append(prev)
            slotNext.append(next)
        }
        if prev == TileRing.none { oldest[Int(e)] = s } else { slotNext[Int(prev)] = s }
        if next == TileRing.none { newest[Int(e)] = s } else { slotPrev[Int(next)] = s }
        roster.append(slot: s, tile: k)
        return s
    }

    /// Unlinks an expired slot (always its entity's oldest) and makes it reusable.
    mutating func remove(slot s: UInt32) {
        let e = Int(slotEntity[Int(s)])
        let prev = slotPrev[Int(s)], next = slotNext[Int(s)]
        if prev == TileRing.none { oldest[e] = next } else { slotNext[Int(prev)] = next }
        if next == TileRing.none { newest[e] = prev } else { slotPrev[Int(next)] = prev }
        free.append(s)
    }

    /// Collects into `out` the slots of `entity` with tile index `>= from`, newest first.
    @inline(__always)
    func slots(of e: UInt32, fromTile from: Int64, into out: inout [UInt32]) {
        out.removeAll(keepingCapacity: true)
        var s = newest[Int(e)]
        while s != TileRing.none && slotTile[Int(s)] >= from {
            out.append(s)
            s = slotPrev[Int(s)]
        }
    }

    func serialize(into w: inout ByteWriter) {
        w.write(array: slotEntity)
        w.write(array: slotTile)
        w.write(array: slotPrev)
        w.write(array: slotNext)
        w.write(array: free)
        w.write(array: oldest)
        w.write(array: newest)
        roster.serialize(into: &w)
    }

    mutating func restore(from r: inout ByteReader) throws {
        slotEntity = try r.readArray()
        slotTile = try r.readArray()
        slotPrev = try r.readArray()
        slotNext = try r.readArray()
        free = try r.readArray()
        oldest = try r.readArray()
        newest = try r.readArray()
        roster = try Roster(from: &r)
        let n = slotEntity.count
        guard slotTile.count == n, slotPrev.count == n, slotNext.count == n, oldest.count == newest.count,
              free.allSatisfy({ Int($0) < n }) else {
            throw StateFormatError(description: "tile ring is corrupt")
        }
    }
}

/// Slots grouped by tile index, for the tile indices that may still be in a window:
/// a ring buffer of buckets covering `base ..< base + count`. Buckets keep their capacity when
/// recycled, so steady state allocates nothing.
struct Roster: Sendable {
    private(set) var base: Int64 = 0
    private(set) var count = 0
    private var start = 0
    private var buckets: [[UInt32]] = []

    init() {}

    var range: Range<Int64> { base..<base + Int64(count) }

    var memory: Int { buckets.reduce(buckets.capacity * 8) { $0 + $1.capacity * 4 } }

    private func position(_ k: Int64) -> Int { (start + Int(k - base)) & (buckets.count - 1) }

    mutating func append(slot: UInt32, tile k: Int64) {
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
            count = needed
        }
        buckets[position(k)].append(slot)
    }

    func bucket(_ k: Int64) -> [UInt32]? {
        guard range.contains(k) else { return nil }
        let b = buckets[position(k)]
        return b.isEmpty ? nil : b
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
