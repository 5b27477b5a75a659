import CIntrinsics

/// `approx_count_distinct` over sliding windows without merging per-tile sketches.
///
/// - **Exact** while an entity's distinct values on the ring number at most `HLL.exactLimit`: an
///   open-addressing set of the values' hashes (their top 40 bits), each with the latest tile it
///   was seen in (`ExactSet`). Every tile counts the values whose latest tile it is; a window's
///   count is the sum of its tiles' counts, kept incrementally and invertible like `count`. Exact
///   up to 40-bit hash collisions (probability below n²/2⁴¹: 2⁻¹⁷ for a set of 4 096 values).
/// - **HyperLogLog** above that (2¹² registers, relative standard error 1.04/√4096 ≈ 1.6 %,
///   Ertl's estimator): one sketch per entity whose registers remember the tiles that set them
///   (`SlidingHLL`), so each window's registers are exactly those of a HyperLogLog of the values
///   in that window, updated as tiles leave, in O(1) amortised per value and hop.
public enum HLL {
    public static let precision = 12
    public static let registers = 1 << precision
    /// Bits of a value's hash the sketch reads: the top 40, the bits an exact set keeps, so that
    /// a sketch made from a set is the sketch of its values.
    public static let hashBits = 40
    /// Largest register value: the hash bits after the index, plus one.
    public static let maxRank = hashBits - precision + 1
    /// The stated accuracy of the sketch: relative standard error of an estimate.
    public static let relativeStandardError = 1.04 / Double(registers).squareRoot()
    /// Distinct values per entity and ring counted exactly; beyond, the sketch.
    public static let exactLimit = 4_096

    /// The register a hash goes to and its rank (leading zeros of the rest of its top `hashBits`
    /// bits, plus one).
    @inline(__always)
    static func register(_ hash: UInt64) -> (index: Int, rank: UInt8) {
        let index = Int(hash >> UInt64(64 - precision))
        let rest = hash << UInt64(precision)
        return (index, UInt8(Swift.min(rest.leadingZeroBitCount + 1, maxRank)))
    }

    /// Ertl's improved raw estimator (2017) from the register histogram `c[0...maxRank]`; it needs
    /// no empirical bias tables.
    static func estimate(histogram c: UnsafeBufferPointer<UInt16>) -> Double {
        let m = Double(registers)
        let q = maxRank - 1
        var z = m * tau(1 - Double(c[q + 1]) / m)
        for k in stride(from: q, through: 1, by: -1) { z = 0.5 * (z + Double(c[k])) }
        z += m * sigma(Double(c[0]) / m)
        return m * m * 0.721_347_520_444_481_7 / z  // α∞ = 1 / (2 ln 2)
    }

    /// σ(x) = x + Σ_{k≥1} x^(2^k) · 2^(k−1)
    static func sigma(_ x0: Double) -> Double {
        if x0 == 1 { return .infinity }
        var x = x0, y = 1.0, z = x0
        while true {
            x *= x
            let previous = z
            z += x * y
            y += y
            if z == previous { return z }
        }
    }

    /// τ(x) = (1 − x − Σ_{k≥1} (1 − x^(2^−k))² · 2^−k) / 3
    static func tau(_ x0: Double) -> Double {
        if x0 == 0 || x0 == 1 { return 0 }
        var x = x0, y = 1.0, z = 1 - x0
        while true {
            x = x.squareRoot()
            let previous = z
            y *= 0.5
            z -= (1 - x) * (1 - x) * y
            if z == previous { return z / 3 }
        }
    }
}

/// The record field of a distinct kernel: where its set or sketch is.
struct DistinctHandle: BitwiseCopyable, Sendable {
    /// Exact mode: the set's block in its size class. Sketch mode: the sketch's index.
    var block: UInt32
    /// Exact mode: occupied slots (values whose tile is gone included, until the set is rebuilt).
    var used: UInt32
    /// Exact mode: values whose latest tile is still on the ring.
    var live: UInt32
    /// Exact mode: the set holds `4 << sizeClass` slots.
    var sizeClass: UInt8
    var mode: UInt8
    var reserved: UInt16 = 0

    static let emptyMode: UInt8 = 0, exact: UInt8 = 1, sketch: UInt8 = 2
    static let empty = DistinctHandle(block: 0, used: 0, live: 0, sizeClass: 0, mode: 0)
}

/// An exact set in its block: the base tile (Int64), then `4 << sizeClass` slots of 8 bytes, each
/// a value's key (the top 40 bits of its hash, never 0; 0 is an empty slot) over the latest tile it
/// was seen in, relative to the base, in 24 bits. A set is rebuilt on a new base before a tile
/// would not fit (windows span at most 2²⁰ tiles).
struct ExactSet {
    let raw: UnsafeMutableRawPointer
    let mask: Int

    static let stampBits = 24
    static let headerBytes = 8
    /// How far below the tile it is made for a set's base is put (late tiles come before it).
    static let slack: Int64 = 1 << 20

    /// Bytes of a set of class `c`.
    static func bytes(sizeClass c: Int) -> Int { headerBytes + (4 << c) * 8 }

    @inline(__always)
    init(_ raw: UnsafeMutableRawPointer, sizeClass: UInt8) {
        self.raw = raw
        mask = (4 &<< Int(sizeClass)) &- 1
    }

    /// The key of a value's hash.
    @inline(__always)
    static func key(_ hash: UInt64) -> UInt64 { Swift.max(hash >> UInt64(64 - HLL.hashBits), 1) }

    /// A hash with the key's bits (what a sketch made from the set reads).
    @inline(__always)
    static func hash(ofKey key: UInt64) -> UInt64 { key << UInt64(64 - HLL.hashBits) }

    @inline(__always)
    var base: Int64 { raw.load(as: Int64.self) }

    @inline(__always)
    var slots: UnsafeMutablePointer<UInt64> { (raw + ExactSet.headerBytes).assumingMemoryBound(to: UInt64.self) }

    /// The slot holding `key`, or the empty slot where it goes.
    @inline(__always)
    func find(_ key: UInt64) -> Int {
        var s = Int(truncatingIfNeeded: key) & mask
        while slots[s] != 0 && slots[s] &>> UInt64(ExactSet.stampBits) != key { s = (s &+ 1) & mask }
        return s
    }

    @inline(__always)
    func key(at s: Int) -> UInt64 { slots[s] &>> UInt64(ExactSet.stampBits) }

    @inline(__always)
    func stamp(at s: Int) -> Int64 { base &+ Int64(slots[s] & (1 << UInt64(ExactSet.stampBits) - 1)) }

    /// Whether tile `k` can be stored relative to the base.
    @inline(__always)
    func fits(_ k: Int64) -> Bool { k >= base && k &- base < 1 << ExactSet.stampBits }

    @inline(__always)
    func store(_ key: UInt64, stamp k: Int64, at s: Int) {
        slots[s] = key &<< UInt64(ExactSet.stampBits) | UInt64(k &- base)
    }
}

/// What a distinct kernel stores besides its record and tile fields: the exact sets by size class
/// (blocks of `4 << c` slots) and the sketches.
struct DistinctStore: Sendable {
    private(set) var sets: [Slab?] = Array(repeating: nil, count: 12)
    private(set) var sketches: [SlidingHLL] = []
    private(set) var freeSketches: [UInt32] = []
    /// Sketch i's register cells are block i.
    private var cells = Slab(itemBytes: SlidingHLL.blockBytes)
    /// Where each size class's sets are (and, at `cellsSlot`, the sketches' cells), for hot loops.
    private var table = SlabTable()
    static let cellsSlot = 16

    var cores: UnsafePointer<SlabCore> { UnsafePointer(table.cores) }

    init() { table.cores[DistinctStore.cellsSlot] = cells.core }

    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&table) { table = SlabTable() }
        for c in sets.indices where sets[c] != nil {
            sets[c]!.makeUnique()
            table.cores[c] = sets[c]!.core
        }
        cells.makeUnique()
        table.cores[DistinctStore.cellsSlot] = cells.core
    }

    /// The register cells of sketch `i`.
    @inline(__always)
    func cells(_ i: UInt32) -> UnsafeMutableRawPointer { table.cores[DistinctStore.cellsSlot].pointer(i) }

    /// A new sketch and its cells; returns its index.
    mutating func allocateSketch(windows: Int, sliding: Bool, base: Int64) -> UInt32 {
        let index: UInt32
        if let reused = freeSketches.popLast() {
            index = reused
            sketches[Int(index)] = SlidingHLL(windows: windows, sliding: sliding, base: base, cells: cells(index))
        } else {
            index = cells.allocate()
            precondition(Int(index) == sketches.count)
            sketches.append(SlidingHLL(windows: windows, sliding: sliding, base: base, cells: cells(index)))
        }
        return index
    }

    mutating func releaseSketch(_ i: UInt32) {
        sketches[Int(i)] = SlidingHLL(windows: 0, sliding: false, base: 0, cells: cells(i))
        freeSketches.append(i)
    }

    /// Returns whether a window's registers changed.
    @discardableResult
    mutating func insert(sketch i: UInt32, _ hash: UInt64, stamp: Int64, list: inout UInt32, contains: (Int) -> Bool) -> Bool {
        let c = cells(i)
        return sketches[Int(i)].insert(hash, stamp: stamp, list: &list, cells: c, contains: contains)
    }

    /// A register list for a tile of sketch `i` with room for `capacity` registers (its handle).
    mutating func makeList(sketch i: UInt32, capacity: Int) -> UInt32 { sketches[Int(i)].makeList(capacity: capacity) }

    /// Returns whether the window's registers changed.
    mutating func expire(sketch i: UInt32, list: UInt32, stamp: Int64, window j: Int) -> Bool {
        let c = cells(i)
        return sketches[Int(i)].expire(list: list, stamp: stamp, window: j, cells: c)
    }

    mutating func drop(sketch i: UInt32, list: UInt32, stamp: Int64) {
        let c = cells(i)
        sketches[Int(i)].drop(list: list, stamp: stamp, cells: c)
    }

    mutating func estimate(sketch i: UInt32, window j: Int) -> Double { sketches[Int(i)].estimate(window: j) }

    /// Whether window `j` of sketch `i` changed since it was last estimated.
    @inline(__always)
    func isStale(sketch i: UInt32, window j: Int) -> Bool { sketches[Int(i)].isStale(window: j) }

    /// An exact set.
    @inline(__always)
    func set(_ h: DistinctHandle) -> ExactSet { ExactSet(table.cores[Int(h.sizeClass)].pointer(h.block), sizeClass: h.sizeClass) }

    /// A new set of class `c`, empty, stamps relative to `base`.
    mutating func allocateSet(class c: Int, base: Int64) -> UInt32 {
        let bytes = ExactSet.bytes(sizeClass: c)
        if sets[c] == nil {
            sets[c] = Slab(itemBytes: bytes)
            table.cores[c] = sets[c]!.core
        }
        let block = sets[c]!.allocate()
        let raw = table.cores[c].pointer(block)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        raw.storeBytes(of: base, as: Int64.self)
        return block
    }

    mutating func releaseSet(_ h: DistinctHandle) { sets[Int(h.sizeClass)]!.release(h.block) }

    var memory: Int {
        sets.reduce(cells.memory) { $0 + ($1?.memory ?? 0) } + sketches.reduce(sketches.capacity * MemoryLayout<SlidingHLL>.stride) { $0 + $1.memory }
    }
    /// The bytes in use (see `Slab.usedBytes`).
    var usedBytes: Int {
        sets.reduce(cells.usedBytes) { $0 + ($1?.usedBytes ?? 0) } + sketches.reduce(sketches.count * MemoryLayout<SlidingHLL>.stride) { $0 + $1.memory }
    }

    func serialize(into w: inout ByteWriter) {
        for c in sets.indices {
            if let slab = sets[c] {
                w.write(UInt8(c + 1))
                slab.serialize(into: &w)
            }
        }
        w.write(UInt8(0))
        w.write(UInt64(sketches.count))
        for s in sketches { s.serialize(into: &w) }
        w.write(array: freeSketches)
        cells.serialize(into: &w)
    }

    mutating func restore(from r: inout ByteReader) throws {
        while true {
            let c = Int(try r.read(UInt8.self))
            if c == 0 { break }
            guard c <= sets.count, sets[c - 1] == nil else { throw StateFormatError(description: "distinct sets are corrupt") }
            var slab = Slab(itemBytes: ExactSet.bytes(sizeClass: c - 1))
            try slab.restore(from: &r)
            sets[c - 1] = slab
            table.cores[c - 1] = slab.core
        }
        let n = try r.count(limit: 1 << 24)
        sketches = try (0..<n).map { _ in try SlidingHLL(from: &r) }
        freeSketches = try r.readArray()
        try cells.restore(from: &r)
        table.cores[DistinctStore.cellsSlot] = cells.core
        guard freeSketches.allSatisfy({ Int($0) < n }), Int(cells.highWater) == n, cells.free.isEmpty else {
            throw StateFormatError(description: "distinct sketches are corrupt")
        }
    }
}

struct DistinctKernel: Sendable {
    let shape: KernelShape
    let handleOffset: Int
    /// Index of its store in the view.
    let store: Int
    var inputs = KernelInputs.none

    init(shape: KernelShape, handleOffset: Int, store: Int) {
        self.shape = shape
        self.handleOffset = handleOffset
        self.store = store
    }

    mutating func prepare(_ batch: ColumnBatch, entities: UnsafePointer<UInt32>, filters: [[Bool]], buffers: KernelInputs) {
        inputs = buffers
        markActive(shape, batch, entities: entities, filters: filters, into: inputs.active)
        let column = batch.columns[shape.field]
        let hashes = inputs.values.assumingMemoryBound(to: UInt64.self)
        let n = batch.count
        switch column.type {
        case .int64: for i in 0..<n { hashes[i] = StableHash.hash(int: column.ints[i]) }
        case .bool: for i in 0..<n { hashes[i] = StableHash.hash(bool: column.ints[i] != 0) }
        case .float64: for i in 0..<n { hashes[i] = StableHash.hash(double: column.doubles[i]) }
        case .string: for i in 0..<n { hashes[i] = column.withUTF8(at: i) { StableHash.hash(bytes: $0) } }
        }
        // 0 marks an empty slot.
        for i in 0..<n where hashes[i] == 0 { hashes[i] = 1 }
    }

    @inline(__always) private func handle(_ record: UnsafeMutableRawPointer) -> DistinctHandle {
        record.load(fromByteOffset: handleOffset, as: DistinctHandle.self)
    }
    @inline(__always) private func setHandle(_ h: DistinctHandle, _ record: UnsafeMutableRawPointer) {
        record.storeBytes(of: h, toByteOffset: handleOffset, as: DistinctHandle.self)
    }
    @inline(__always) private func add(_ delta: Int64, window j: Int, _ record: UnsafeMutableRawPointer) {
        let o = shape.windowOffsets[j]
        record.storeBytes(of: record.load(fromByteOffset: o, as: Int64.self) &+ delta, toByteOffset: o, as: Int64.self)
    }
    /// A tile's field (4 bytes): exact mode, how many values have it as their latest tile (at most
    /// `HLL.exactLimit` + 1); sketch mode, its register list's index + 1 (0: none yet).
    @inline(__always) private func field(_ tile: UnsafeMutableRawPointer) -> UInt32 {
        tile.load(fromByteOffset: shape.tileOffset, as: UInt32.self)
    }
    @inline(__always) private func setField(_ v: UInt32, _ tile: UnsafeMutableRawPointer) {
        tile.storeBytes(of: v, toByteOffset: shape.tileOffset, as: UInt32.self)
    }
    @inline(__always) private func add(_ delta: Int64, tile: UnsafeMutableRawPointer) {
        setField(UInt32(truncatingIfNeeded: Int64(field(tile)) &+ delta), tile)
    }

    // MARK: Updates

    /// The common case, on raw memory: an exact set that takes the value without growing. Returns
    /// false, having changed nothing, when the row needs `update` (a new set, a rebuild, a sketch).
    @inline(__always)
    func updateInPlace(_ i: Int, now: Micros, _ record: UnsafeMutableRawPointer, _ tiles: UnsafePointer<TileRef>,
                       _ rings: UnsafePointer<RingCore>, cores: UnsafePointer<SlabCore>) -> Bool {
        guard inputs.active[i] else { return true }
        guard shape.ring >= 0 else { return false }
        let t = tiles[shape.ring]
        guard let tile = t.pointer else { return true }
        var h = handle(record)
        guard h.mode == DistinctHandle.exact else { return false }
        let key = ExactSet.key(inputs.bits(i))
        let set = ExactSet(cores[Int(h.sizeClass)].pointer(h.block), sizeClass: h.sizeClass)
        guard set.fits(t.index) else { return false }
        let s = set.find(key)
        if set.slots[s] != 0 {
            let seen = set.stamp(at: s)
            if seen >= t.index { return true }  // already counted in a later (or this) tile
            let ring = rings[shape.ring]
            let view = ring.view(record)
            if seen >= view.index(0) {
                // Seen in an older tile still on the ring: the value moves from it to this one.
                add(-1, tile: view.tile(view.position(of: seen)!))
                for j in 0..<shape.ringWindows.count where ring.layout.contains(window: shape.ringWindows[j], tile: seen, at: now) {
                    add(-1, window: j, record)
                }
            } else {
                guard Int(h.live) < HLL.exactLimit else { return false }
                h.live += 1  // its tile is gone: counted afresh
            }
            set.store(key, stamp: t.index, at: s)
        } else {
            guard Int(h.live) < HLL.exactLimit, (Int(h.used) + 1) * 4 <= (set.mask + 1) * 3 else { return false }
            set.store(key, stamp: t.index, at: s)
            h.used += 1
            h.live += 1
        }
        add(1, tile: tile)
        for j in 0..<shape.ringWindows.count where shape.ringWindows[j] >= t.first { add(1, window: j, record) }
        setHandle(h, record)
        return true
    }

    /// Whether row updates of this entity go to a sliding sketch (`updateSketch`).
    @inline(__always)
    func slidesSketch(_ record: UnsafeMutableRawPointer) -> Bool { shape.ring >= 0 && handle(record).mode == DistinctHandle.sketch }

    /// The update of an active row of an entity whose count is a sliding sketch: most rows of the
    /// busiest entities, so kept apart from the exact sets' growth and rebuilds.
    @inline(__always)
    func updateSketch(_ i: Int, _ record: UnsafeMutableRawPointer, _ t: TileRef, store: inout DistinctStore) {
        guard let tile = t.pointer else { return }
        let h = handle(record)
        var list = field(tile)
        let first = t.first, ringWindows = shape.ringWindows
        let changed = store.insert(sketch: h.block, inputs.bits(i), stamp: t.index, list: &list) { ringWindows[$0] >= first }
        setField(list, tile)
        if changed { publish(h, record, store: &store) }
    }

    func update(_ i: Int, now: Micros, _ record: UnsafeMutableRawPointer, _ tiles: UnsafePointer<TileRef>, _ rings: UnsafePointer<RingCore>,
                store: inout DistinctStore) {
        guard inputs.active[i] else { return }
        let hash = inputs.bits(i)
        guard shape.ring >= 0 else { return updateLifetime(hash, record, store: &store) }
        let r = shape.ring
        let t = tiles[r]
        guard let tile = t.pointer else { return }
        var h = handle(record)
        if h.mode == DistinctHandle.sketch { return updateSketch(i, record, t, store: &store) }
        let ring = rings[r]
        if h.mode == DistinctHandle.emptyMode {
            h = newSet(base: t.index - ExactSet.slack, &store)
        } else if !store.set(h).fits(t.index) {
            let front = ring.view(record).index(0)
            h = rebuilt(h, front: front, base: Swift.min(front, t.index) - ExactSet.slack, &store)
        }
        let key = ExactSet.key(hash)
        let set = store.set(h)
        let s = set.find(key)
        if set.slots[s] != 0 {
            let seen = set.stamp(at: s)
            if seen >= t.index { return }  // already counted in a later (or this) tile
            let view = ring.view(record)
            if seen >= view.index(0) {
                // Seen in an older tile still on the ring: the value moves from it to this one.
                let old = view.tile(view.position(of: seen)!)
                add(-1, tile: old)
                for j in 0..<shape.ringWindows.count where ring.layout.contains(window: shape.ringWindows[j], tile: seen, at: now) {
                    add(-1, window: j, record)
                }
            } else {
                h.live += 1  // its tile is gone: counted afresh
            }
            set.store(key, stamp: t.index, at: s)
        } else {
            set.store(key, stamp: t.index, at: s)
            h.used += 1
            h.live += 1
        }
        add(1, tile: tile)
        for j in 0..<shape.ringWindows.count where shape.ringWindows[j] >= t.first { add(1, window: j, record) }
        if Int(h.live) > HLL.exactLimit {
            h = toSketch(h, record, view: ring.view(record), ring: ring.layout, now: now, &store)
            publish(h, record, everyWindow: true, store: &store)
        } else if Int(h.used) * 4 > (set.mask + 1) * 3 {
            h = rebuilt(h, front: ring.view(record).index(0), base: set.base, &store)
        }
        setHandle(h, record)
    }

    /// Starts loading the set slot (exact mode) or register cell (sketch) row `i` will touch.
    @inline(__always)
    func prefetch(_ i: Int, _ record: UnsafeMutableRawPointer, cores: UnsafePointer<SlabCore>) {
        guard inputs.active[i] else { return }
        let h = handle(record)
        if h.mode == DistinctHandle.exact {
            let set = ExactSet(cores[Int(h.sizeClass)].pointer(h.block), sizeClass: h.sizeClass)
            tessera_prefetch(set.slots + (Int(truncatingIfNeeded: ExactSet.key(inputs.bits(i))) & set.mask))
        } else if h.mode == DistinctHandle.sketch {
            SlidingHLL.prefetch(inputs.bits(i), cells: cores[DistinctStore.cellsSlot].pointer(h.block))
        }
    }

    private func updateLifetime(_ hash: UInt64, _ record: UnsafeMutableRawPointer, store: inout DistinctStore) {
        var h = handle(record)
        if h.mode == DistinctHandle.sketch {
            var none: UInt32 = 0
            if store.insert(sketch: h.block, hash, stamp: 0, list: &none, contains: { _ in true }) { publish(h, record, store: &store) }
            return
        }
        if h.mode == DistinctHandle.emptyMode { h = newSet(base: 0, &store) }
        let key = ExactSet.key(hash)
        let set = store.set(h)
        let s = set.find(key)
        if set.slots[s] != 0 { return }
        set.store(key, stamp: 0, at: s)
        h.used += 1
        h.live += 1
        add(1, window: 0, record)
        if Int(h.live) > HLL.exactLimit {
            h = toSketch(h, record, view: nil, ring: nil, now: 0, &store)
            publish(h, record, everyWindow: true, store: &store)
        } else if Int(h.used) * 4 > (set.mask + 1) * 3 {
            h = rebuilt(h, front: .min, base: 0, &store)
        }
        setHandle(h, record)
    }

    private func newSet(base: Int64, _ store: inout DistinctStore) -> DistinctHandle {
        DistinctHandle(block: store.allocateSet(class: 0, base: base), used: 0, live: 0, sizeClass: 0, mode: DistinctHandle.exact)
    }

    /// The set without the values whose tile is gone, in a block sized for what is left, its
    /// stamps relative to `base` (at most the front).
    private func rebuilt(_ h: DistinctHandle, front: Int64, base: Int64, _ store: inout DistinctStore) -> DistinctHandle {
        var c: UInt8 = 0
        while (4 << Int(c)) < 2 * (Int(h.live) + 1) { c += 1 }
        let handle = DistinctHandle(block: store.allocateSet(class: Int(c), base: base), used: 0, live: 0, sizeClass: c, mode: DistinctHandle.exact)
        let to = store.set(handle), from = store.set(h)
        var live: UInt32 = 0
        for s in 0...from.mask where from.slots[s] != 0 && from.stamp(at: s) >= front {
            let key = from.key(at: s), stamp = from.stamp(at: s)
            precondition(to.fits(stamp), "a window spans more tiles than an exact distinct set can hold")
            to.store(key, stamp: stamp, at: to.find(key))
            live += 1
        }
        store.releaseSet(h)
        return DistinctHandle(block: handle.block, used: live, live: live, sizeClass: c, mode: DistinctHandle.exact)
    }

    /// Too many distinct values to count exactly: the live values go into a sketch, oldest tile
    /// first, and every tile's count becomes its register list.
    private func toSketch(_ h: DistinctHandle, _ record: UnsafeMutableRawPointer, view: DequeView?,
                          ring: RingLayout?, now: Micros, _ store: inout DistinctStore) -> DistinctHandle {
        let from = store.set(h)
        let front = view.map { $0.index(0) } ?? .min
        var live: [(hash: UInt64, stamp: Int64)] = []
        live.reserveCapacity(Int(h.used))
        for s in 0...from.mask where from.slots[s] != 0 && from.stamp(at: s) >= front {
            live.append((ExactSet.hash(ofKey: from.key(at: s)), from.stamp(at: s)))
        }
        live.sort { $0.stamp < $1.stamp }
        store.releaseSet(h)
        let index = store.allocateSketch(windows: shape.ringWindows.count, sliding: shape.ring >= 0, base: live.first?.stamp ?? 0)
        var lists: [Int64: UInt32] = [:]
        lists.reserveCapacity(view?.count ?? 1)
        for (i, e) in live.enumerated() {
            if ring != nil && lists[e.stamp] == nil {
                // The first value of its tile (stamps ascend). Each value of a tile adds at most one
                // register to the tile's list: room for all of them.
                var end = i + 1
                while end < live.count && live[end].stamp == e.stamp { end += 1 }
                lists[e.stamp] = store.makeList(sketch: index, capacity: end - i)
            }
            var list = lists[e.stamp] ?? 0
            if let ring {
                let ringWindows = shape.ringWindows
                store.insert(sketch: index, e.hash, stamp: e.stamp, list: &list) { ring.contains(window: ringWindows[$0], tile: e.stamp, at: now) }
            } else {
                store.insert(sketch: index, e.hash, stamp: 0, list: &list) { _ in true }
            }
            lists[e.stamp] = list
        }
        if let view {
            for p in 0..<view.count {
                setField(lists[view.index(p)] ?? 0, view.tile(p))
            }
        }
        return DistinctHandle(block: index, used: 0, live: 0, sizeClass: 0, mode: DistinctHandle.sketch)
    }

    // MARK: Windows sliding

    /// Tile `tile` leaves kernel window `j`.
    func expire(_ record: UnsafeMutableRawPointer, _ tile: UnsafeMutableRawPointer, index k: Int64, window j: Int, store: inout DistinctStore) {
        let h = handle(record)
        switch h.mode {
        case DistinctHandle.exact:
            add(-Int64(field(tile)), window: j, record)
        case DistinctHandle.sketch:
            if store.expire(sketch: h.block, list: field(tile), stamp: k, window: j) { publish(h, record, store: &store) }
        default: break
        }
    }

    /// Tile `tile` (index `k`) leaves the ring (its last window); `last` when it is the entity's only tile.
    func drop(_ record: UnsafeMutableRawPointer, _ tile: UnsafeMutableRawPointer, index k: Int64, last: Bool, store: inout DistinctStore) {
        var h = handle(record)
        switch h.mode {
        case DistinctHandle.exact:
            h.live -= field(tile)
            if last {
                store.releaseSet(h)
                h = .empty
            }
        case DistinctHandle.sketch:
            store.drop(sketch: h.block, list: field(tile), stamp: k)
            if last {
                store.releaseSketch(h.block)
                h = .empty
                for j in 0..<shape.windowOffsets.count { record.storeBytes(of: Int64(0), toByteOffset: shape.windowOffsets[j], as: Int64.self) }
            }
        default: break
        }
        setHandle(h, record)
    }

    /// Writes a sketch's estimates, rounded, into the record's window fields, where the row's
    /// values are read from in both modes: those of the windows whose registers changed since
    /// they were last written, or all of them (`everyWindow`: a new sketch, a restored state).
    func publish(_ h: DistinctHandle, _ record: UnsafeMutableRawPointer, everyWindow: Bool = false, store: inout DistinctStore) {
        guard h.mode == DistinctHandle.sketch else { return }
        for j in 0..<shape.windowOffsets.count where everyWindow || store.isStale(sketch: h.block, window: j) {
            let estimate = Int64(store.estimate(sketch: h.block, window: j) + 0.5)
            record.storeBytes(of: estimate, toByteOffset: shape.windowOffsets[j], as: Int64.self)
        }
    }

    func publishAll(_ record: UnsafeMutableRawPointer, store: inout DistinctStore) {
        publish(handle(record), record, everyWindow: true, store: &store)
    }

    /// Whether a record's handle points at storage this kernel has (restoring state).
    func isValid(_ record: UnsafeMutableRawPointer, store: DistinctStore) -> Bool {
        let h = handle(record)
        switch h.mode {
        case DistinctHandle.emptyMode: return true
        case DistinctHandle.exact:
            guard Int(h.sizeClass) < store.sets.count, let slab = store.sets[Int(h.sizeClass)] else { return false }
            return h.block < slab.highWater && h.live <= h.used && Int(h.used) <= 4 << Int(h.sizeClass)
        case DistinctHandle.sketch:
            return Int(h.block) < store.sketches.count && store.sketches[Int(h.block)].windows == shape.ringWindows.count
        default: return false
        }
    }

}
