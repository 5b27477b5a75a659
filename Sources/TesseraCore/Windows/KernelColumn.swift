/// Where a kernel keeps its partials: on a tile ring (tile partials by slot plus one window
/// partial per entity for each window it serves), or per entity for the lifetime.
struct Placement: Sendable, Hashable {
    /// Index of the tile ring, or nil for a lifetime kernel.
    var ring: Int?
    /// Field the kernel reads, nil for a plain `count`.
    var field: Int?
    /// Index of the filter in the view's distinct predicates.
    var filter: Int?
}

/// A feature computed by a kernel: which window partial, which finalize mode, which output column.
struct KernelOutput: Sendable {
    var feature: Int
    var window: Int
    var mode: Int
}

/// One kernel instance and all its partials, structure-of-arrays: `tiles[slot]` and
/// `windows[j][entity]` are flat arrays of fixed-size partials.
struct KernelColumn<K: AggregateKernel>: Sendable {
    var kernel: K
    let placement: Placement
    /// For a ring kernel: the ring-window index of each window partial array (ascending).
    /// For a lifetime kernel: `[0]`, one partial array.
    let ringWindows: [Int]
    var outputs: [KernelOutput]

    var tiles: [K.Partial] = []
    var windows: [[K.Partial]]

    // Per batch.
    var inputs: [K.Input] = []
    var active: [Bool] = []

    init(kernel: K, placement: Placement, ringWindows: [Int], outputs: [KernelOutput]) {
        self.kernel = kernel
        self.placement = placement
        self.ringWindows = ringWindows
        self.outputs = outputs
        windows = Array(repeating: [], count: ringWindows.count)
    }

    mutating func addEntities(upTo n: Int) {
        let empty = kernel.empty
        for j in windows.indices where windows[j].count < n {
            windows[j].append(contentsOf: repeatElement(empty, count: n - windows[j].count))
        }
    }

    mutating func initTile(_ s: UInt32) {
        if Int(s) == tiles.count { tiles.append(kernel.empty) } else { tiles[Int(s)] = kernel.empty }
    }

    mutating func releaseTile(_ s: UInt32) {
        kernel.release(tiles[Int(s)])
        tiles[Int(s)] = kernel.empty
    }

    /// Loads the batch's inputs and marks the rows this kernel aggregates.
    mutating func prepare(_ batch: ColumnBatch, entities: [UInt32], filters: [[Bool]]) {
        let n = batch.count
        let column = placement.field.map { batch.columns[$0] }
        kernel.load(column, count: n, into: &inputs)
        active.removeAll(keepingCapacity: true)
        for i in 0..<n {
            var on = entities[i] != EntityIndex.noEntity
            if on, let f = placement.filter { on = filters[f][i] }
            if on, let column { on = column.validity[i] }
            active.append(on)
        }
    }

    @inline(__always)
    mutating func apply(row i: Int, entity e: Int, time t: Micros, slot: UInt32, firstWindow: Int) {
        guard active[i] else { return }
        let x = inputs[i]
        if placement.ring == nil {
            kernel.update(&windows[0][e], x, time: t)
            return
        }
        if slot != TileRing.none { kernel.update(&tiles[Int(slot)], x, time: t) }
        for j in ringWindows.indices where ringWindows[j] >= firstWindow {
            kernel.update(&windows[j][e], x, time: t)
        }
    }

    /// Rebuilds the window partial of `entity` for ring window `w` from `slots`.
    mutating func recompute(window w: Int, entity e: Int, slots: [UInt32]) {
        guard let j = ringWindows.firstIndex(of: w) else { return }
        kernel.release(windows[j][e])
        var partial = kernel.empty
        for s in slots { kernel.merge(&partial, tiles[Int(s)]) }
        windows[j][e] = partial
    }

    mutating func finalize(entities: [UInt32], into features: inout [Column]) {
        for o in outputs {
            for e in entities {
                kernel.finalize(windows[o.window][Int(e)], mode: o.mode, into: &features[o.feature])
            }
        }
    }

    func serialize(into w: inout ByteWriter) {
        kernel.serialize(into: &w)
        w.write(array: tiles)
        w.write(arrays: windows)
    }

    mutating func restore(from r: inout ByteReader) throws {
        try kernel.restore(from: &r)
        tiles = try r.readArray()
        let restored: [[K.Partial]] = try r.readArrays()
        guard restored.count == windows.count else { throw StateFormatError(description: "kernel state does not match the view") }
        windows = restored
    }
}

/// Something done to every kernel of a view, whatever its aggregate (a generic visitor, so each
/// call is specialised for the concrete kernel instead of dispatched dynamically).
protocol KernelVisitor {
    mutating func visit<K: AggregateKernel>(_ column: inout KernelColumn<K>)
}

/// The kernels of a view, one array per aggregate family.
struct KernelSet: Sendable {
    var counts: [KernelColumn<CountKernel>] = []
    var sums: [KernelColumn<SumKernel>] = []
    var means: [KernelColumn<MeanKernel>] = []
    var extrema: [KernelColumn<ExtremumKernel>] = []
    var moments: [KernelColumn<MomentsKernel>] = []
    var picks: [KernelColumn<PickKernel>] = []
    var distincts: [KernelColumn<DistinctKernel>] = []
    var percentiles: [KernelColumn<PercentileKernel>] = []

    @inline(__always)
    mutating func forEach<V: KernelVisitor>(_ v: inout V) {
        for i in counts.indices { v.visit(&counts[i]) }
        for i in sums.indices { v.visit(&sums[i]) }
        for i in means.indices { v.visit(&means[i]) }
        for i in extrema.indices { v.visit(&extrema[i]) }
        for i in moments.indices { v.visit(&moments[i]) }
        for i in picks.indices { v.visit(&picks[i]) }
        for i in distincts.indices { v.visit(&distincts[i]) }
        for i in percentiles.indices { v.visit(&percentiles[i]) }
    }
}
