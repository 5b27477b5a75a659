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

    /// A slot's tile and its place in its entity's list. Kept together (one cache line holds a
    /// slot's links) because tiles are found by walking these lists.
    struct Link: BitwiseCopyable, Sendable {
        var tile: Int64
        var entity: UInt32
        var prev: UInt32
        var next: UInt32
        var reserved: UInt32 = 0
    }

    /// An entity's oldest and newest slot.
    struct Ends: BitwiseCopyable, Sendable {
        var oldest: UInt32
        var newest: UInt32
    }

    var links: [Link] = []
    var free: [UInt32] = []
    var ends: [Ends] = []

    var roster = Roster()

    static let none = UInt32.max

    init(hop: Micros, windows: [Micros]) {
        self.hop = hop
        self.windows = windows
    }

    var liveSlots: Int { links.count - free.count }

    var memory: Int {
        links.capacity * MemoryLayout<Link>.stride + free.capacity * 4 + ends.capacity * MemoryLayout<Ends>.stride + roster.memory
    }

    mutating func addEntities(upTo n: Int) {
        if ends.count < n { ends.append(contentsOf: repeatElement(Ends(oldest: TileRing.none, newest: TileRing.none), count: n - ends.count)) }
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
        let last = ends[Int(e)].newest
        if last != TileRing.none {
            let lastTile = links[Int(last)].tile
            if lastTile == k { return (last, false) }
            if lastTile < k { return (insert(entity: e, tile: k, after: last), true) }
            // A late event: walk back to the tile or to where it belongs.
            var p = links[Int(last)].prev
            while p != TileRing.none && links[Int(p)].tile > k { p = links[Int(p)].prev }
            if p != TileRing.none && links[Int(p)].tile == k { return (p, false) }
            return (insert(entity: e, tile: k, after: p), true)
        }
        return (insert(entity: e, tile: k, after: TileRing.none), true)
    }

    /// Links a new slot after `prev` (or first when `prev` is none).
    private mutating func insert(entity e: UInt32, tile k: Int64, after prev: UInt32) -> UInt32 {
        let next = prev == TileRing.none ? ends[Int(e)].oldest : links[Int(prev)].next
        let link = Link(tile: k, entity: e, prev: prev, next: next)
        let s: UInt32
        if let reused = free.popLast() {
            s = reused
            links[Int(s)] = link
        } else {
            s = UInt32(links.count)
            links.append(link)
        }
        if prev == TileRing.none { ends[Int(e)].oldest = s } else { links[Int(prev)].next = s }
        if next == TileRing.none { ends[Int(e)].newest = s } else { links[Int(next)].prev = s }
        roster.append(slot: s, tile: k)
        return s
    }

    /// Unlinks an expired slot (always its entity's oldest) and makes it reusable.
    mutating func remove(slot s: UInt32) {
        let link = links[Int(s)]
        let e = Int(link.entity)
        if link.prev == TileRing.none { ends[e].oldest = link.next } else { links[Int(link.prev)].next = link.next }
        if link.next == TileRing.none { ends[e].newest = link.prev } else { links[Int(link.next)].prev = link.prev }
        free.append(s)
    }

    func serialize(into w: inout ByteWriter) {
        w.write(array: links)
        w.write(array: free)
        w.write(array: ends)
        roster.serialize(into: &w)
    }

    mutating func restore(from r: inout ByteReader) throws {
        links = try r.readArray()
        free = try r.readArray()
        ends = try r.readArray()
        roster = try Roster(from: &r)
        let n = UInt32(links.count)
        let inRange = { (s: UInt32) in s == TileRing.none || s < n }
        guard free.allSatisfy({ $0 < n }), links.allSatisfy({ inRange($0.prev) && inRange($0.next) }),
              ends.allSatisfy({ inRange($0.oldest) && inRange($0.newest) }) else {
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
