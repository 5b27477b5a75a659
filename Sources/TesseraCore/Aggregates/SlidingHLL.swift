import CIntrinsics

/// A HyperLogLog whose registers remember the tiles that set them (a "sliding HyperLogLog",
/// after Chabchoub and Hébrail): per register, the list of (tile, rank) pairs that could still be
/// its value for some window — tiles ascending, ranks strictly descending (an older pair with a
/// rank no larger than a newer one's can never matter again). A window's register is the rank of
/// the register's first pair inside the window, so each window's registers equal those of a
/// HyperLogLog of exactly the window's values. Per tile, a list of the registers that got a pair
/// there says what changes when the tile leaves a window. Each window keeps its register values,
/// their histogram and a cached estimate.
///
/// Registers are 32-byte cells in a block of the store (`cells`), one cache line's half each:
/// the pair count, the value in each window (up to `maxWindows`), and up to six pairs (tile
/// relative to `base` in 26 bits, rank in 6); a register with more pairs keeps them in `spill`.
/// A lifetime sketch (`sliding` false) is a plain HyperLogLog: values only.
struct SlidingHLL: Sendable {
    let windows: Int
    let sliding: Bool
    /// Pair tiles are stored relative to `base`.
    private(set) var base: Int64
    /// Pairs held, over all registers.
    private(set) var pairs = 0
    /// Per window, the count of registers at each value 0…maxRank (stride 64).
    private var histograms: [UInt16]
    /// Per window, the estimate, or NaN when it must be recomputed.
    private var estimates: [Double]
    /// Per tile, the registers that got a pair there (the tile's partial holds its index + 1).
    private var lists = RegisterLists()
    private var freeLists: [UInt32] = []
    /// The list created last (index into `lists`, -1: none yet): how many registers a tile's
    /// list gets, to size the next one (a hint, not saved).
    private var newestList = -1
    /// Pairs of registers with more than fit in their cell.
    private var spill: [Int: [UInt32]] = [:]

    static let stampBits = 26
    static let cellBytes = 32
    static let blockBytes = HLL.registers * cellBytes
    static let maxWindows = 7
    static let inlinePairs = 6
    static let spilled: UInt8 = 255

    init(windows: Int, sliding: Bool, base: Int64, cells: UnsafeMutableRawPointer) {
        precondition(windows <= SlidingHLL.maxWindows)
        self.windows = windows
        self.sliding = sliding
        self.base = base - (1 << 23)
        histograms = Array(repeating: 0, count: windows * 64)
        for j in 0..<windows { histograms[j * 64] = UInt16(HLL.registers) }
        estimates = Array(repeating: 0, count: windows)
        cells.initializeMemory(as: UInt8.self, repeating: 0, count: SlidingHLL.blockBytes)
    }

    var memory: Int {
        histograms.capacity * 2 + estimates.capacity * 8 + lists.memory
            + spill.reduce(spill.capacity * 16) { $0 + $1.value.capacity * 4 }
    }

    @inline(__always) private static func cell(_ cells: UnsafeMutableRawPointer, _ r: Int) -> UnsafeMutableRawPointer {
        cells + r &* cellBytes
    }
    @inline(__always) private static func value(_ cell: UnsafeMutableRawPointer, _ j: Int) -> UInt8 {
        cell.load(fromByteOffset: 1 &+ j, as: UInt8.self)
    }

    /// Sets a register's value in window `j`; returns whether it changed.
    @inline(__always) @discardableResult
    private mutating func set(_ cell: UnsafeMutableRawPointer, window j: Int, to v: UInt8) -> Bool {
        let old = SlidingHLL.value(cell, j)
        guard old != v else { return false }
        cell.storeBytes(of: v, toByteOffset: 1 &+ j, as: UInt8.self)
        histograms[j &* 64 &+ Int(old)] &-= 1
        histograms[j &* 64 &+ Int(v)] &+= 1
        estimates[j] = .nan
        return true
    }

    /// The pairs of a register (in its cell or spilled), for reading and editing in place.
    @inline(__always)
    private mutating func withPairs<R>(_ cell: UnsafeMutableRawPointer, register r: Int,
                                       _ body: (UnsafeMutablePointer<UInt32>, inout Int, Int) -> R) -> R {
        let n = cell.load(as: UInt8.self)
        if n != SlidingHLL.spilled {
            var count = Int(n)
            let result = body((cell + 8).assumingMemoryBound(to: UInt32.self), &count, SlidingHLL.inlinePairs)
            cell.storeBytes(of: UInt8(count), as: UInt8.self)
            return result
        }
        var list = spill.removeValue(forKey: r) ?? []
        var count = list.count
        list.append(contentsOf: repeatElement(0, count: 2))
        let result = list.withUnsafeMutableBufferPointer { body($0.baseAddress!, &count, $0.count) }
        list.removeLast(list.count - count)
        spill[r] = list
        return result
    }

    /// Moves a full register's pairs out of its cell.
    private mutating func spillRegister(_ cell: UnsafeMutableRawPointer, register r: Int) {
        let n = Int(cell.load(as: UInt8.self))
        let pairs = (cell + 8).assumingMemoryBound(to: UInt32.self)
        spill[r] = (0..<n).map { pairs[$0] }
        cell.storeBytes(of: SlidingHLL.spilled, as: UInt8.self)
    }

    /// Starts loading the cell a value's register is in.
    @inline(__always)
    static func prefetch(_ hash: UInt64, cells: UnsafeMutableRawPointer) {
        tessera_prefetch(cell(cells, HLL.register(hash).index))
    }

    /// Adds a value seen in tile `stamp`; `contains(j)` says whether window j holds the tile.
    /// `list` is the tile's register-list handle (0: none yet), updated when a list is created.
    /// Returns whether a window's registers changed (its estimate with them).
    @discardableResult
    mutating func insert(_ hash: UInt64, stamp k: Int64, list: inout UInt32, cells: UnsafeMutableRawPointer, contains: (Int) -> Bool) -> Bool {
        let (r, rho) = HLL.register(hash)
        let cell = SlidingHLL.cell(cells, r)
        guard sliding else { return rho > SlidingHLL.value(cell, 0) && set(cell, window: 0, to: rho) }
        if k - base < 0 || k - base >= 1 << SlidingHLL.stampBits { rebase(around: k, cells: cells) }
        let ek = UInt32(k - base)
        if cell.load(as: UInt8.self) == UInt8(SlidingHLL.inlinePairs) { spillRegister(cell, register: r) }
        let outcome: (created: Bool, removed: Int)? = withPairs(cell, register: r) { pairs, n, capacity -> (Bool, Int)? in
            var i = n - 1
            while i >= 0 && pairs[i] >> 6 > ek { i -= 1 }
            // A newer pair at least as high: this value can never be a register's maximum.
            if i + 1 < n && UInt8(pairs[i + 1] & 63) >= rho { return nil }
            var position: Int
            var created = false
            if i >= 0 && pairs[i] >> 6 == ek {
                if UInt8(pairs[i] & 63) >= rho { return nil }
                pairs[i] = ek << 6 | UInt32(rho)
                position = i
            } else {
                precondition(n < capacity)
                var p = n
                while p > i + 1 {
                    pairs[p] = pairs[p - 1]
                    p -= 1
                }
                pairs[i + 1] = ek << 6 | UInt32(rho)
                n += 1
                position = i + 1
                created = true
            }
            // Older pairs with a rank no higher than this one are dominated.
            var d = position - 1
            while d >= 0 && UInt8(pairs[d] & 63) <= rho { d -= 1 }
            let removed = position - 1 - d
            if removed > 0 {
                for p in (d + 1)..<(n - removed) { pairs[p] = pairs[p + removed] }
                n -= removed
            }
            return (created, removed)
        }
        guard let (created, removed) = outcome else { return false }
        pairs += (created ? 1 : 0) - removed
        if created {
            if list == 0 {
                // Room for about as many registers as the tile before got: a busy entity's list
                // would otherwise grow (and allocate) a dozen times while its tile fills.
                let previous = newestList >= 0 && newestList < lists.count ? lists.count(newestList) : 0
                list = makeList(capacity: previous + previous / 2 + 4)
            }
            lists.append(Int(list) - 1, UInt16(r))
        }
        var changed = false
        for j in 0..<windows where contains(j) && rho > SlidingHLL.value(cell, j) { changed = set(cell, window: j, to: rho) || changed }
        return changed
    }

    /// A new (empty) register list for a tile, with room for `capacity` registers; returns its
    /// handle (index + 1), for the tile's partial.
    mutating func makeList(capacity: Int) -> UInt32 {
        let room = min(capacity, HLL.registers)
        let index: Int
        if let reused = freeLists.popLast() {
            index = Int(reused)
            lists.reset(index, capacity: room)
        } else {
            index = lists.make(capacity: room)
        }
        newestList = index
        return UInt32(index + 1)
    }

    /// Tile `k`, with register list `list`, leaves window `j`: its registers fall to their next
    /// pair. Returns whether the window's registers changed.
    @discardableResult
    mutating func expire(list: UInt32, stamp k: Int64, window j: Int, cells: UnsafeMutableRawPointer) -> Bool {
        guard list > 0 else { return false }
        let l = Int(list) - 1
        let ek = UInt32(truncatingIfNeeded: k - base)
        var changed = false
        for e in 0..<lists.count(l) {
            let r = lists.register(l, e)
            let cell = SlidingHLL.cell(cells, r)
            let next: UInt8? = withPairs(cell, register: r) { pairs, n, _ in
                var i = 0
                while i < n && pairs[i] >> 6 < ek { i += 1 }
                guard i < n, pairs[i] >> 6 == ek else { return nil }  // dominated since
                return i + 1 < n ? UInt8(pairs[i + 1] & 63) : 0
            }
            if let next, set(cell, window: j, to: next) { changed = true }
        }
        return changed
    }

    /// Tile `k`, with register list `list`, leaves the ring: its pairs (each its register's
    /// oldest) are removed and the list freed.
    mutating func drop(list: UInt32, stamp k: Int64, cells: UnsafeMutableRawPointer) {
        guard list > 0 else { return }
        let l = Int(list) - 1
        let ek = UInt32(truncatingIfNeeded: k - base)
        var removed = 0
        for e in 0..<lists.count(l) {
            let r = lists.register(l, e)
            let cell = SlidingHLL.cell(cells, r)
            removed += withPairs(cell, register: r) { pairs, n, _ in
                guard n > 0, pairs[0] >> 6 == ek else { return 0 }
                for p in 0..<(n - 1) { pairs[p] = pairs[p + 1] }
                n -= 1
                return 1
            }
            if cell.load(as: UInt8.self) == SlidingHLL.spilled, let rest = spill[r], rest.count < SlidingHLL.inlinePairs {
                // Back into the cell.
                spill[r] = nil
                for (i, e) in rest.enumerated() { cell.storeBytes(of: e, toByteOffset: 8 + 4 * i, as: UInt32.self) }
                cell.storeBytes(of: UInt8(rest.count), as: UInt8.self)
            }
        }
        pairs -= removed
        lists.free(l)
        freeLists.append(list - 1)
    }

    /// Moves `base` so that `k` and every pair fit the 26-bit relative tiles.
    private mutating func rebase(around k: Int64, cells: UnsafeMutableRawPointer) {
        var lo = k, hi = k
        let oldBase = base
        for r in 0..<HLL.registers {
            let cell = SlidingHLL.cell(cells, r)
            withPairs(cell, register: r) { pairs, n, _ in
                for p in 0..<n {
                    lo = min(lo, oldBase + Int64(pairs[p] >> 6))
                    hi = max(hi, oldBase + Int64(pairs[p] >> 6))
                }
            }
        }
        let newBase = lo - (1 << 22)
        precondition(hi - newBase < 1 << SlidingHLL.stampBits, "a window spans more tiles than a sliding sketch can hold")
        let shift = UInt32(truncatingIfNeeded: base - newBase)
        for r in 0..<HLL.registers {
            let cell = SlidingHLL.cell(cells, r)
            withPairs(cell, register: r) { pairs, n, _ in
                for p in 0..<n { pairs[p] = ((pairs[p] >> 6) &+ shift) << 6 | (pairs[p] & 63) }
            }
        }
        base = newBase
    }

    @inline(__always)
    func isStale(window j: Int) -> Bool { estimates[j].isNaN }

    mutating func estimate(window j: Int) -> Double {
        if estimates[j].isNaN {
            estimates[j] = histograms.withUnsafeBufferPointer {
                HLL.estimate(histogram: UnsafeBufferPointer(rebasing: $0[j * 64..<j * 64 + HLL.maxRank + 1]))
            }
        }
        return estimates[j]
    }

    func serialize(into w: inout ByteWriter) {
        w.write(UInt64(windows))
        w.write(sliding)
        w.write(base)
        w.write(UInt64(pairs))
        w.write(array: histograms)
        w.write(array: estimates)
        lists.serialize(into: &w)
        w.write(array: freeLists)
        let spilled = spill.keys.sorted()
        w.write(UInt64(spilled.count))
        for r in spilled {
            w.write(UInt64(r))
            w.write(array: spill[r]!)
        }
    }

    init(from r: inout ByteReader) throws {
        windows = try r.count(limit: SlidingHLL.maxWindows)
        sliding = try r.read()
        base = try r.read()
        pairs = try r.count(limit: Int(Int32.max))
        histograms = try r.readArray()
        estimates = try r.readArray()
        lists = try RegisterLists(from: &r)
        freeLists = try r.readArray()
        let n = try r.count(limit: HLL.registers)
        for _ in 0..<n {
            let register = try r.count(limit: HLL.registers - 1)
            spill[register] = try r.readArray()
        }
        guard histograms.count == windows * 64, estimates.count == windows,
              lists.registers(below: HLL.registers),
              freeLists.allSatisfy({ Int($0) < lists.count }) else {
            throw StateFormatError(description: "a distinct-count sketch is corrupt")
        }
    }
}
