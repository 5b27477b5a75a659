import CIntrinsics

/// `approx_percentile` over sliding windows: a window's values are a multiset that tiles are
/// added to and subtracted from, so a tile leaving costs its own values, never a rebuild.
///
/// - **Exact** while the window holds at most `exactLimit` values: they are kept sorted and the
///   q-quantile is the nearest-rank value `sorted[⌈q·n⌉ − 1]`.
/// - Above that, **relative-error buckets** (as in DDSketch, Masson et al. 2019): value x counts in
///   bucket ⌈log_γ(|x|/ε)⌉ (signed), γ = (1 + α)/(1 − α), and a quantile is answered with its
///   bucket's midpoint 2εγⁱ/(γ + 1): within **α = 1 % relative error** of the exact nearest-rank
///   quantile (values of magnitude at most ε = 10⁻⁹ count as 0). Bucket counts are exact, so
///   subtracting a tile leaves exactly the counts of the remaining values.
///
/// Each tile keeps its values (8 bytes each) so that it can be subtracted again.
public enum Quantiles {
    public static let exactLimit = 2_048
    public static let relativeError = 0.01
    public static let zeroMagnitude = 1e-9
    static let gamma = (1 + relativeError) / (1 - relativeError)
    static let logGamma = tessera_log(gamma)

    /// The bucket of a value: 0 for |x| ≤ ε, else ±⌈log_γ(|x|/ε)⌉.
    @inline(__always)
    public static func bucket(_ x: Double) -> Int {
        let m = abs(x)
        guard m > zeroMagnitude else { return 0 }
        let i = max(1, Int((tessera_log(m / zeroMagnitude) / logGamma).rounded(.up)))
        return x < 0 ? -i : i
    }

    /// The value a bucket answers with: its midpoint in relative terms.
    public static func representative(_ bucket: Int) -> Double {
        guard bucket != 0 else { return 0 }
        let m = zeroMagnitude * 2 * tessera_exp(Double(abs(bucket)) * logGamma) / (gamma + 1)
        return bucket < 0 ? -m : m
    }
}

/// The values of one window.
struct QuantileBag: Sendable, Equatable {
    private(set) var count = 0
    /// Sorted, while exact.
    private var exact: [Double] = []
    private(set) var bucketed = false
    /// Bucket `lo + i` holds `counts[i]` values.
    private var lo = 0
    private var counts: [UInt32] = []

    init() {}

    mutating func add(_ x: Double) {
        count += 1
        if !bucketed {
            if count <= Quantiles.exactLimit {
                exact.insert(x, at: Self.insertionPoint(exact, x))
                return
            }
            // Too many to keep: count them by bucket from now on.
            bucketed = true
            let values = exact
            exact = []
            for v in values { bump(Quantiles.bucket(v), by: 1) }
        }
        bump(Quantiles.bucket(x), by: 1)
    }

    /// Removes one occurrence of a value added earlier.
    mutating func remove(_ x: Double) {
        count -= 1
        if !bucketed {
            let i = Self.insertionPoint(exact, x, after: false)
            precondition(i < exact.count && exact[i] == x, "a removed value was never added")
            exact.remove(at: i)
            return
        }
        bump(Quantiles.bucket(x), by: -1)
        if count == 0 { self = QuantileBag() }
    }

    private mutating func bump(_ b: Int, by delta: Int32) {
        if counts.isEmpty { lo = b }
        if b < lo {
            counts.insert(contentsOf: repeatElement(0, count: lo - b), at: 0)
            lo = b
        } else if b >= lo + counts.count {
            counts.append(contentsOf: repeatElement(0, count: b - lo - counts.count + 1))
        }
        counts[b - lo] = UInt32(Int64(counts[b - lo]) + Int64(delta))
    }

    /// The first index whose value is greater than `x` (`after`), or not less than it.
    private static func insertionPoint(_ sorted: [Double], _ x: Double, after: Bool = true) -> Int {
        var a = 0, b = sorted.count
        while a < b {
            let mid = (a + b) >> 1
            if after ? sorted[mid] <= x : sorted[mid] < x { a = mid + 1 } else { b = mid }
        }
        return a
    }

    /// The nearest-rank q-quantile, q in [0, 1]; nil when empty.
    func quantile(_ q: Double) -> Double? {
        guard count > 0 else { return nil }
        let rank = min(count, max(1, Int((q * Double(count)).rounded(.up))))
        if !bucketed { return exact[rank - 1] }
        var seen = 0
        for (i, c) in counts.enumerated() {
            seen += Int(c)
            if seen >= rank { return Quantiles.representative(lo + i) }
        }
        return Quantiles.representative(lo + counts.count - 1)
    }

    var memory: Int { exact.capacity * 8 + counts.capacity * 4 }

    func serialize(into w: inout ByteWriter) {
        w.write(UInt64(count))
        w.write(bucketed)
        w.write(Int64(lo))
        w.write(array: exact)
        w.write(array: counts)
    }

    init(from r: inout ByteReader) throws {
        count = try r.count(limit: Int(Int64.max))
        bucketed = try r.read()
        lo = Int(try r.read(Int64.self))
        exact = try r.readArray()
        counts = try r.readArray()
        let held = bucketed ? counts.reduce(0) { $0 + Int($1) } : exact.count
        guard held == count, zip(exact, exact.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw StateFormatError(description: "a percentile window is corrupt")
        }
    }
}

/// A tile's values, in a block of `4 << c` doubles: the tile partial of a quantile kernel.
struct ValueList: BitwiseCopyable {
    var block: UInt32
    var count: UInt32

    static let empty = ValueList(block: 0, count: 0)

    /// The size class holding `n` values (n ≥ 1).
    @inline(__always)
    static func sizeClass(holding n: Int) -> Int {
        var c = 0
        while (4 << c) < n { c += 1 }
        return c
    }
}

/// What a quantile kernel stores besides its record and tile fields: tiles' values by size
/// class, and the window bags (a window's record field holds its bag's index + 1; 0: empty).
struct QuantileStore: Sendable {
    var lists: [Slab?] = Array(repeating: nil, count: 32)
    var bags: [QuantileBag] = []
    var freeBags: [UInt32] = []

    mutating func makeUnique() {
        for c in lists.indices where lists[c] != nil { lists[c]!.makeUnique() }
    }

    mutating func slab(_ c: Int) {
        if lists[c] == nil { lists[c] = Slab(itemBytes: (4 << c) * 8) }
    }

    var memory: Int {
        lists.reduce(0) { $0 + ($1?.memory ?? 0) } + bags.reduce(bags.capacity * MemoryLayout<QuantileBag>.stride) { $0 + $1.memory }
    }
    /// The bytes in use (see `Slab.usedBytes`).
    var usedBytes: Int {
        lists.reduce(0) { $0 + ($1?.usedBytes ?? 0) } + bags.reduce(bags.count * MemoryLayout<QuantileBag>.stride) { $0 + $1.memory }
    }

    func serialize(into w: inout ByteWriter) {
        for c in lists.indices {
            if let slab = lists[c] {
                w.write(UInt8(c + 1))
                slab.serialize(into: &w)
            }
        }
        w.write(UInt8(0))
        w.write(UInt64(bags.count))
        for b in bags { b.serialize(into: &w) }
        w.write(array: freeBags)
    }

    mutating func restore(from r: inout ByteReader) throws {
        while true {
            let c = Int(try r.read(UInt8.self))
            if c == 0 { break }
            guard c <= lists.count, lists[c - 1] == nil else { throw StateFormatError(description: "percentile values are corrupt") }
            var slab = Slab(itemBytes: (4 << (c - 1)) * 8)
            try slab.restore(from: &r)
            lists[c - 1] = slab
        }
        let n = try r.count(limit: 1 << 28)
        bags = try (0..<n).map { _ in try QuantileBag(from: &r) }
        freeBags = try r.readArray()
        guard freeBags.allSatisfy({ Int($0) < n }) else { throw StateFormatError(description: "percentile windows are corrupt") }
    }
}

struct QuantileKernel: Sendable {
    let shape: KernelShape
    /// Percentiles asked of it (output mode i is the i-th).
    let percentiles: IntList
    /// Index of its store in the view.
    let store: Int
    var inputs = KernelInputs.none

    init(shape: KernelShape, percentiles: IntList, store: Int) {
        self.shape = shape
        self.percentiles = percentiles
        self.store = store
    }

    mutating func prepare(_ batch: ColumnBatch, entities: UnsafePointer<UInt32>, filters: [[Bool]], buffers: KernelInputs) {
        inputs = buffers
        markActive(shape, batch, entities: entities, filters: filters, into: inputs.active)
        loadNumbers(batch.columns[shape.field], count: batch.count, into: inputs.values)
    }

    private func addToBag(_ x: Double, window j: Int, _ record: UnsafeMutableRawPointer, _ store: inout QuantileStore) {
        let o = shape.windowOffsets[j]
        var b = record.load(fromByteOffset: o, as: UInt64.self)
        if b == 0 {
            if let reused = store.freeBags.popLast() {
                b = UInt64(reused) + 1
            } else {
                store.bags.append(QuantileBag())
                b = UInt64(store.bags.count)
            }
            record.storeBytes(of: b, toByteOffset: o, as: UInt64.self)
        }
        store.bags[Int(b) - 1].add(x)
    }

    func update(_ i: Int, _ record: UnsafeMutableRawPointer, _ tiles: UnsafePointer<TileRef>, store: inout QuantileStore) {
        guard inputs.active[i] else { return }
        let x = inputs.double(i)
        guard shape.ring >= 0 else { return addToBag(x, window: 0, record, &store) }
        let t = tiles[shape.ring]
        guard let tile = t.pointer else { return }
        // The tile keeps its values; every window holding the tile gets the value.
        var list = tile.load(fromByteOffset: shape.tileOffset, as: ValueList.self)
        let n = Int(list.count)
        if n == 0 || (n & (n - 1) == 0 && n >= 4) {
            let c = ValueList.sizeClass(holding: n + 1)
            store.slab(c)
            let block = store.lists[c]!.allocate()
            if n > 0 {
                let old = ValueList.sizeClass(holding: n)
                store.lists[c]!.pointer(block).copyMemory(from: store.lists[old]!.pointer(list.block), byteCount: n * 8)
                store.lists[old]!.release(list.block)
            }
            list.block = block
        }
        store.lists[ValueList.sizeClass(holding: n + 1)]!.pointer(list.block).storeBytes(of: x, toByteOffset: n * 8, as: Double.self)
        list.count += 1
        tile.storeBytes(of: list, toByteOffset: shape.tileOffset, as: ValueList.self)
        for j in 0..<shape.ringWindows.count where shape.ringWindows[j] >= t.first { addToBag(x, window: j, record, &store) }
    }

    /// Tile `tile` leaves kernel window `j`: its values leave the window's bag.
    func expire(_ record: UnsafeMutableRawPointer, _ tile: UnsafeMutableRawPointer, window j: Int, store: inout QuantileStore) {
        let list = tile.load(fromByteOffset: shape.tileOffset, as: ValueList.self)
        guard list.count > 0 else { return }
        let o = shape.windowOffsets[j]
        let b = Int(record.load(fromByteOffset: o, as: UInt64.self)) - 1
        let values = store.lists[ValueList.sizeClass(holding: Int(list.count))]!.pointer(list.block).assumingMemoryBound(to: Double.self)
        for k in 0..<Int(list.count) { store.bags[b].remove(values[k]) }
        if store.bags[b].count == 0 {
            store.bags[b] = QuantileBag()
            store.freeBags.append(UInt32(b))
            record.storeBytes(of: UInt64(0), toByteOffset: o, as: UInt64.self)
        }
    }

    /// Tile `tile` leaves the ring: its values are freed.
    func drop(_ tile: UnsafeMutableRawPointer, store: inout QuantileStore) {
        let list = tile.load(fromByteOffset: shape.tileOffset, as: ValueList.self)
        guard list.count > 0 else { return }
        store.lists[ValueList.sizeClass(holding: Int(list.count))]!.release(list.block)
    }

    func finalize(_ record: UnsafeMutableRawPointer, window j: Int, mode: Int, store: QuantileStore) -> UInt64? {
        let b = record.load(fromByteOffset: shape.windowOffsets[j], as: UInt64.self)
        guard b > 0 else { return nil }
        return store.bags[Int(b) - 1].quantile(Double(bitPattern: UInt64(bitPattern: Int64(percentiles[mode]))))?.bitPattern
    }

    /// Whether a record's bags and a tile's values point at storage this kernel has.
    func isValid(record: UnsafeMutableRawPointer, store: QuantileStore) -> Bool {
        (0..<shape.windowOffsets.count).allSatisfy { Int(record.load(fromByteOffset: shape.windowOffsets[$0], as: UInt64.self)) <= store.bags.count }
    }

    func isValid(tile: UnsafeMutableRawPointer, store: QuantileStore) -> Bool {
        let list = tile.load(fromByteOffset: shape.tileOffset, as: ValueList.self)
        guard list.count > 0 else { return true }
        let c = ValueList.sizeClass(holding: Int(list.count))
        guard c < store.lists.count, let slab = store.lists[c] else { return false }
        return list.block < slab.highWater
    }
}
