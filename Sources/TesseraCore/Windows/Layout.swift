/// How a view's state is laid out in memory, computed from its spec.
///
/// Every entity has one fixed-size **record** (`stride` bytes, a multiple of 8) holding everything
/// an event of that entity touches besides its tiles: the emission bookkeeping, each ring's tile
/// deque header and window state, every window partial, every lifetime partial, and the first
/// tile(s) of a ring whose tiles are small inline. Tiles beyond the inline ones live in a per-ring
/// block the record points to (see `TileDeque`). A tile is a fixed-size **tile record**: its
/// index (8 bytes, or 4 relative to the deque's base with a 4-byte partial beside it), then one
/// partial per kernel of the ring.
///
///     record = [header 32 B][ring 0: deque 16 B, (base,) window starts, pivots][kernel fields …]
///              [ring 0 inline tiles] … [lifetime partials] … (generation 1 …)
///
/// Fields are laid out generation by generation (`FeatureSpec.generation`), so the layout of the
/// features a checkpoint knew is a prefix of the current one: restoring state saved before
/// features were added copies each saved record and fills the rest from the empty template.
///
/// Everything here is trivially copyable (lists live in the program's `ProgramMemory`).
struct ViewLayout: BitwiseCopyable, @unchecked Sendable {  // points into immutable program memory
    /// Bytes per entity record.
    let stride: Int
    /// A record with every partial empty.
    let template: UnsafeRawPointer
    let rings: UnsafePointer<RingLayout>?
    let ringCount: Int
    /// The record bytes of each generation's prefix: `prefix[g]` covers generations 0…g.
    let prefix: IntList

    /// Header: the epoch (UInt32) and index (UInt32) of the entity's latest emission in the
    /// batch being applied, its int64 key (single int64 join key), then the time of its latest
    /// emission and the created timestamp its sink gave it (`Micros.min` and 0 before its first
    /// emission) — 32 bytes. The last two make the entity's current row, which the online store is
    /// rewritten from when it lost its data.
    static let epochOffset = 0
    static let emissionOffset = 4
    static let keyOffset = 8
    static let emittedAtOffset = 16
    static let createdOffset = 24
    static let headerBytes = 32

    @inline(__always)
    func ring(_ r: Int) -> RingLayout { rings.unsafelyUnwrapped[r] }
}

/// One tile ring: the tiles of one hop (and generation), shared by every window with that hop.
struct RingLayout: BitwiseCopyable, @unchecked Sendable {  // points into immutable program memory
    let hop: Micros
    /// Window lengths served by the ring, ascending; the last is the longest.
    let windows: IntList
    let generation: Int
    /// Record offset of the `DequeHeader`.
    let dequeOffset: Int
    /// Per window: record offset of its start (UInt32: tiles at the deque's front outside the
    /// window); -1 for the longest window, whose start is always the front.
    let startOffsets: IntList
    /// Per window: record offset of its pivot (Int64, see `SelectionKernel`), or -1 when no
    /// min/max/first/last kernel uses the window.
    let pivotOffsets: IntList
    /// Record offset of the inline tiles and how many fit there.
    let inlineOffset: Int
    let inlineCapacity: Int
    /// Bytes per tile record (a multiple of 8); the tile index is at offset 0: an Int64, or, when
    /// `baseOffset` ≥ 0, a UInt32 relative to the deque's base tile (an Int64 at `baseOffset` in
    /// the record), which leaves the tile's other 4 bytes to a 4-byte partial.
    let tileStride: Int
    let baseOffset: Int
    /// A tile record with every partial empty (its index is set on creation).
    let tileTemplate: UnsafeRawPointer

    var longest: Int { windows.count - 1 }

    /// The first window (index into `windows`) that still contains tile `k` at stream time `t`,
    /// or `windows.count` when the tile is outside all of them.
    @inline(__always)
    func firstWindowContaining(tile k: Int64, at t: Micros) -> Int {
        let end = (k &+ 1) &* hop
        var w = 0
        while w < windows.count && end &+ Int64(windows[w]) <= t { w += 1 }
        return w
    }

    /// Whether window `w` contains tile `k` at stream time `t`.
    @inline(__always)
    func contains(window w: Int, tile k: Int64, at t: Micros) -> Bool {
        (k &+ 1) &* hop &+ Int64(windows[w]) > t
    }
}

/// Bytes of a partial written into a template at an offset.
extension Array where Element == UInt8 {
    mutating func store<T: BitwiseCopyable>(_ value: T, at offset: Int) {
        precondition(offset + MemoryLayout<T>.size <= count)
        withUnsafeMutableBytes { $0.storeBytes(of: value, toByteOffset: offset, as: T.self) }
    }
}

/// Builds a layout field by field, then freezes it into program memory.
struct LayoutBuilder {
    let memory: ProgramMemory
    var stride = ViewLayout.headerBytes
    var template: [UInt8]
    var rings: [Ring] = []
    var prefix: [Int] = []

    struct Ring {
        var hop: Micros
        var windows: [Micros]
        var generation: Int
        var dequeOffset = 0
        var startOffsets: [Int] = []
        var pivotOffsets: [Int] = []
        var inlineOffset = 0
        var inlineCapacity = 1
        var tileStride = 8
        var tileTemplate: [UInt8] = Array(repeating: 0, count: 8)
        var baseOffset = -1
        /// A free 4-byte slot in the tile record, or -1.
        var spare = -1
    }

    init(memory: ProgramMemory) {
        self.memory = memory
        template = Array(repeating: 0, count: ViewLayout.headerBytes)
        // No emission yet: an epoch no batch ever has.
        template.store(UInt32.max, at: ViewLayout.epochOffset)
        template.store(Micros.min, at: ViewLayout.emittedAtOffset)
    }

    /// Room for `count` values of `T` (rounded up to 8 bytes) in the record, holding `empty`.
    mutating func record<T: BitwiseCopyable>(_ empty: T, count: Int = 1) -> Int {
        let offset = stride
        let size = (MemoryLayout<T>.stride * count + 7) & ~7
        stride += size
        template.append(contentsOf: repeatElement(0, count: size))
        for i in 0..<count { template.store(empty, at: offset + i * MemoryLayout<T>.stride) }
        return offset
    }

    /// Room for `T` in the tile records of ring `r`, holding `empty` in its template.
    mutating func tile<T: BitwiseCopyable>(ring r: Int, _ empty: T) -> Int {
        let offset = rings[r].tileStride
        let size = (MemoryLayout<T>.stride + 7) & ~7
        rings[r].tileStride += size
        rings[r].tileTemplate.append(contentsOf: repeatElement(0, count: size))
        rings[r].tileTemplate.store(empty, at: offset)
        return offset
    }

    /// Room for a 4-byte partial in the tile records of ring `r` (beside a compact index if free).
    mutating func tile32(ring r: Int, _ empty: UInt32) -> Int {
        let offset: Int
        if rings[r].spare >= 0 {
            offset = rings[r].spare
            rings[r].spare = -1
        } else {
            offset = rings[r].tileStride
            rings[r].tileStride += 8
            rings[r].tileTemplate.append(contentsOf: repeatElement(0, count: 8))
            rings[r].spare = offset + 4
        }
        rings[r].tileTemplate.store(empty, at: offset)
        return offset
    }

    /// A ring; `compact` when its tiles hold their index in 4 bytes (worth it when a kernel has a
    /// 4-byte partial to put beside it).
    mutating func addRing(hop: Micros, windows: [Micros], generation: Int, compact: Bool) -> Int {
        rings.append(Ring(hop: hop, windows: windows, generation: generation))
        let r = rings.count - 1
        rings[r].dequeOffset = record(DequeHeader.empty)
        if compact {
            rings[r].baseOffset = record(Int64(0))
            rings[r].spare = 4
        }
        rings[r].startOffsets = windows.indices.map { $0 == windows.count - 1 ? -1 : record(UInt64(0)) }
        rings[r].pivotOffsets = Array(repeating: -1, count: windows.count)
        return r
    }

    /// The pivot of window `w` of ring `r` (allocated the first time a selection kernel needs it).
    mutating func pivot(ring r: Int, window w: Int) -> Int {
        if rings[r].pivotOffsets[w] < 0 { rings[r].pivotOffsets[w] = record(Int64.min) }
        return rings[r].pivotOffsets[w]
    }

    /// Places the inline tiles of ring `r` once its tile record is complete: two small tiles, one
    /// of at most a cache line, none of a larger one (an entity with more tiles than fit inline
    /// leaves the room unused, and an entity's first tile in a one-tile block costs no more).
    mutating func finishRing(_ r: Int) {
        let tileStride = rings[r].tileStride
        let inline = tileStride <= 32 ? 2 : tileStride <= 64 ? 1 : 0
        rings[r].inlineCapacity = inline
        rings[r].inlineOffset = record(UInt64(0), count: inline * tileStride / 8)
    }

    func freeze() -> ViewLayout {
        let frozen = rings.map { d in
            RingLayout(hop: d.hop, windows: memory.list(d.windows.map { Int($0) }), generation: d.generation,
                       dequeOffset: d.dequeOffset, startOffsets: memory.list(d.startOffsets), pivotOffsets: memory.list(d.pivotOffsets),
                       inlineOffset: d.inlineOffset, inlineCapacity: d.inlineCapacity, tileStride: d.tileStride,
                       baseOffset: d.baseOffset, tileTemplate: memory.bytes(d.tileTemplate))
        }
        return ViewLayout(stride: stride, template: memory.bytes(template), rings: frozen.isEmpty ? nil : memory.values(frozen),
                          ringCount: frozen.count, prefix: memory.list(prefix))
    }
}

/// Which window partial and output mode a feature reads from its kernel.
struct KernelOutput: Sendable, Hashable, BitwiseCopyable {
    var feature: Int
    /// Index into the kernel's windows.
    var window: Int
    var mode: Int
}

/// What every kernel knows about where it lives (trivially copyable: lists in program memory).
struct KernelShape: BitwiseCopyable, @unchecked Sendable {  // points into immutable program memory
    /// Index of the tile ring, or -1 for a lifetime kernel.
    let ring: Int
    /// Field the kernel reads, -1 for a plain `count`.
    let field: Int
    /// Index of the filter in the view's distinct predicates, or -1.
    let filter: Int
    /// The generation of its features: generations never share state.
    let generation: Int
    /// Per kernel window: the ring window it is (ascending). A lifetime kernel has one window, 0.
    let ringWindows: IntList
    /// Per kernel window: the record offset of its partial (or handle).
    let windowOffsets: IntList
    /// Offset of the kernel's partial in its ring's tile record; -1 for a lifetime kernel.
    let tileOffset: Int
    let outputs: UnsafePointer<KernelOutput>
    let outputCount: Int

    var isLifetime: Bool { ring < 0 }

    /// The kernel window that is ring window `w`, if the kernel serves it.
    func kernelWindow(_ w: Int) -> Int? {
        for j in 0..<ringWindows.count where ringWindows[j] == w { return j }
        return nil
    }
}
