/// An entity's tiles on one ring, oldest first, as a circular buffer: inline in the entity's
/// record while they fit (most entities have one or two non-empty tiles; a ring of large tiles
/// has none inline), else in a block from the ring's store of one of the size classes 1, 2, 3,
/// 4, 6, 8, 12, … tiles (`RingStore.capacity`).
/// Only non-empty (entity, tile) pairs exist.
struct DequeHeader: BitwiseCopyable, Sendable {
    var block: UInt32
    var head: UInt32
    var count: UInt32
    /// 0: inline in the record; c ≥ 1: block `block` of the ring's class-c slab.
    var sizeClass: UInt8
    var reserved: UInt8 = 0
    var reserved2: UInt16 = 0

    static let empty = DequeHeader(block: 0, head: 0, count: 0, sizeClass: 0)
}

/// Tiles of one deque by position (0 = oldest), valid until the deque changes.
struct DequeView {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    let head: Int
    let count: Int
    let stride: Int
    /// Compact tiles (`RingLayout.baseOffset`): the tile their 4-byte indices count from.
    let compact: Bool
    let firstTile: Int64

    /// Tile at position `p` (0 ≤ p ≤ count, count < capacity when p = count).
    @inline(__always)
    func tile(_ p: Int) -> UnsafeMutableRawPointer {
        let i = head &+ p
        return base + (i >= capacity ? i &- capacity : i) &* stride
    }

    @inline(__always)
    func index(_ p: Int) -> Int64 {
        compact ? firstTile &+ Int64(tile(p).load(as: UInt32.self)) : tile(p).load(as: Int64.self)
    }

    /// The position of tile `k`, if the entity has it (binary search).
    func position(of k: Int64) -> Int? {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if index(mid) < k { lo = mid + 1 } else { hi = mid }
        }
        return lo < count && index(lo) == k ? lo : nil
    }
}

/// What hot loops need of a ring, trivially copyable: its layout and where each size class's
/// blocks are (valid for a batch: the store refreshes `slots` when it creates or copies a slab).
struct RingCore: BitwiseCopyable, @unchecked Sendable {  // plain pointers into the ring store, valid for the batch
    let layout: RingLayout
    /// Per size class (index c ≥ 1): the class's slab.
    let slots: UnsafeMutablePointer<SlabCore>
    /// Per size class: the tiles its blocks hold (`RingStore.capacities`), read instead of computed.
    let capacities: UnsafePointer<Int>

    @inline(__always)
    func header(_ record: UnsafeMutableRawPointer) -> DequeHeader {
        record.load(fromByteOffset: layout.dequeOffset, as: DequeHeader.self)
    }

    @inline(__always)
    func view(_ record: UnsafeMutableRawPointer) -> DequeView { view(record, header(record)) }

    @inline(__always)
    func view(_ record: UnsafeMutableRawPointer, _ h: DequeHeader) -> DequeView {
        let compact = layout.baseOffset >= 0
        let firstTile = compact ? record.load(fromByteOffset: layout.baseOffset, as: Int64.self) : 0
        if h.sizeClass == 0 {
            return DequeView(base: record + layout.inlineOffset, capacity: layout.inlineCapacity, head: Int(h.head),
                             count: Int(h.count), stride: layout.tileStride, compact: compact, firstTile: firstTile)
        }
        return DequeView(base: slots[Int(h.sizeClass)].pointer(h.block), capacity: capacities[Int(h.sizeClass)],
                         head: Int(h.head), count: Int(h.count), stride: layout.tileStride, compact: compact, firstTile: firstTile)
    }
}

/// The tile blocks and roster of one ring.
struct RingStore: Sendable {
    let layout: RingLayout
    /// Per size class (index c ≥ 1): blocks of `capacity(ofClass: c)` tiles.
    private(set) var blocks: [Slab?]
    var roster = Roster()
    /// The `RingCore.slots` table.
    private var slots: SlabTable

    init(layout: RingLayout) {
        self.layout = layout
        blocks = Array(repeating: nil, count: RingStore.classes)
        slots = SlabTable()
    }

    /// Size classes 1…47: blocks of 1, 2, 3, 4, 6, 8, 12, … tiles, each class from 2 on about √2
    /// times the one before, so a deque's block is on average ~84 % full (powers of two leave ~69 %).
    static let classes = 48

    /// Tiles a block of class `c` ≥ 1 holds.
    @inline(__always)
    static func capacity(ofClass c: UInt8) -> Int {
        if c == 1 { return 1 }
        let k = Int(c) &- 2
        return (2 &+ (k & 1)) &<< (k &>> 1)
    }

    static func capacity(ofClass c: UInt8, inline: Int) -> Int { c == 0 ? inline : capacity(ofClass: c) }

    /// `capacity(ofClass:)` of every class (0 for class 0, whose capacity is the ring's inline one),
    /// for the hot loops' views; written once when first read, never after, and lives as long as
    /// the process.
    nonisolated(unsafe) static let capacities: UnsafePointer<Int> = {
        let table = UnsafeMutablePointer<Int>.allocate(capacity: classes)
        table[0] = 0
        for c in 1..<classes { table[c] = capacity(ofClass: UInt8(c)) }
        return UnsafePointer(table)
    }()

    var core: RingCore { RingCore(layout: layout, slots: slots.cores, capacities: RingStore.capacities) }

    var memory: Int { blocks.reduce(roster.memory) { $0 + ($1?.memory ?? 0) } }
    /// The bytes in use (see `Slab.usedBytes`).
    var usedBytes: Int { blocks.reduce(roster.memory) { $0 + ($1?.usedBytes ?? 0) } }

    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&slots) { slots = SlabTable() }
        for c in blocks.indices where blocks[c] != nil {
            blocks[c]!.makeUnique()
            slots.cores[c] = blocks[c]!.core
        }
    }

    @inline(__always)
    func header(_ record: UnsafeMutableRawPointer) -> DequeHeader { core.header(record) }

    @inline(__always)
    func view(_ record: UnsafeMutableRawPointer) -> DequeView { core.view(record) }

    /// Inserts tile `k` (a fresh tile from the template) at position `q`, moving the tiles after it
    /// up; returns the new tile.
    mutating func insert(_ record: UnsafeMutableRawPointer, at q: Int, index k: Int64) -> UnsafeMutableRawPointer {
        var h = header(record)
        if Int(h.count) == RingStore.capacity(ofClass: h.sizeClass, inline: layout.inlineCapacity) {
            var c = h.sizeClass + 1
            while RingStore.capacity(ofClass: c) <= Int(h.count) { c += 1 }
            h = move(record, h, toClass: c)
        }
        if layout.baseOffset >= 0 {
            let o = layout.baseOffset
            if h.count == 0 {
                record.storeBytes(of: k &- RingStore.compactSlack, toByteOffset: o, as: Int64.self)
            } else {
                let d = k &- record.load(fromByteOffset: o, as: Int64.self)
                if d < 0 || d >= 1 << 32 { rebase(record, h, around: k) }
            }
        }
        let v = core.view(record, h)
        var p = Int(h.count)
        while p > q {
            v.tile(p).copyMemory(from: v.tile(p - 1), byteCount: layout.tileStride)
            p -= 1
        }
        h.count += 1
        record.storeBytes(of: h, toByteOffset: layout.dequeOffset, as: DequeHeader.self)
        let tile = v.tile(q)
        tile.copyMemory(from: layout.tileTemplate, byteCount: layout.tileStride)
        if v.compact {
            tile.storeBytes(of: UInt32(truncatingIfNeeded: k &- v.firstTile), as: UInt32.self)
        } else {
            tile.storeBytes(of: k, as: Int64.self)
        }
        return tile
    }

    /// How far below its first tile a compact deque's base is put (late tiles come before it).
    static let compactSlack: Int64 = 1 << 31

    /// Moves a compact deque's base so that tile `k` and every tile it has fit 4-byte indices (a
    /// deque spans at most a window and its lateness; this happens once per 2³¹ tiles).
    private func rebase(_ record: UnsafeMutableRawPointer, _ h: DequeHeader, around k: Int64) {
        let v = core.view(record, h)
        let lo = Swift.min(k, v.index(0)), hi = Swift.max(k, v.index(v.count - 1))
        let base = lo &- (1 << 30)
        precondition(hi - base < 1 << 32, "an entity's tiles on one ring span more than 2³² tiles")
        for p in 0..<v.count {
            v.tile(p).storeBytes(of: UInt32(truncatingIfNeeded: v.index(p) &- base), as: UInt32.self)
        }
        record.storeBytes(of: base, toByteOffset: layout.baseOffset, as: Int64.self)
    }

    /// Removes the oldest tile (the caller released what it owned), shrinking the block when
    /// it is mostly empty.
    mutating func popFront(_ record: UnsafeMutableRawPointer) {
        var h = header(record)
        precondition(h.count > 0)
        let capacity = RingStore.capacity(ofClass: h.sizeClass, inline: layout.inlineCapacity)
        h.head = Int(h.head) + 1 == capacity ? 0 : h.head + 1
        h.count -= 1
        if h.sizeClass > 0 {
            if Int(h.count) <= layout.inlineCapacity {
                h = move(record, h, toClass: 0)
            } else if h.sizeClass > 1 && Int(h.count) * 2 <= RingStore.capacity(ofClass: h.sizeClass - 1) {
                // Half of the next class down: a deque shrinking tile by tile does not move back and forth.
                h = move(record, h, toClass: h.sizeClass - 1)
            }
        }
        if h.count == 0 { h.head = 0 }
        record.storeBytes(of: h, toByteOffset: layout.dequeOffset, as: DequeHeader.self)
    }

    /// Moves the tiles into a deque of another size class (inline for 0), oldest at slot 0.
    private mutating func move(_ record: UnsafeMutableRawPointer, _ h: DequeHeader, toClass c: UInt8) -> DequeHeader {
        var moved = DequeHeader(block: 0, head: 0, count: h.count, sizeClass: c)
        if c > 0 {
            if blocks[Int(c)] == nil {
                blocks[Int(c)] = Slab(itemBytes: RingStore.capacity(ofClass: c) * layout.tileStride)
                slots.cores[Int(c)] = blocks[Int(c)]!.core
            }
            moved.block = blocks[Int(c)]!.allocate()
        }
        let from = core.view(record, h), to = core.view(record, moved)
        // Inline tiles and a block never overlap, so copying in order is safe.
        for p in 0..<Int(h.count) { to.tile(p).copyMemory(from: from.tile(p), byteCount: layout.tileStride) }
        if h.sizeClass > 0 { blocks[Int(h.sizeClass)]!.release(h.block) }
        return moved
    }

    // MARK: - State

    func serialize(into w: inout ByteWriter) {
        for c in 1..<blocks.count {
            if let slab = blocks[c] {
                w.write(UInt8(c))
                slab.serialize(into: &w)
            }
        }
        w.write(UInt8(0))
        roster.serialize(into: &w)
    }

    mutating func restore(from r: inout ByteReader) throws {
        while true {
            let c = Int(try r.read(UInt8.self))
            if c == 0 { break }
            guard c < blocks.count, blocks[c] == nil else { throw StateFormatError(description: "tile blocks are corrupt") }
            var slab = Slab(itemBytes: RingStore.capacity(ofClass: UInt8(c)) * layout.tileStride)
            try slab.restore(from: &r)
            blocks[c] = slab
            slots.cores[c] = slab.core
        }
        roster = try Roster(from: &r)
    }

    /// Whether a record's deque header can be used (restoring state): its block exists and its
    /// positions are in range.
    func isValid(_ h: DequeHeader) -> Bool {
        let capacity = RingStore.capacity(ofClass: h.sizeClass, inline: layout.inlineCapacity)
        guard Int(h.sizeClass) < blocks.count, h.count <= UInt32(capacity), h.head < UInt32(Swift.max(capacity, 1)) else { return false }
        if h.sizeClass == 0 { return true }
        guard let slab = blocks[Int(h.sizeClass)] else { return false }
        return h.block < slab.highWater
    }
}
