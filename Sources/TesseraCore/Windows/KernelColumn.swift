import CPrefetch

/// Where a kernel keeps its partials: on a tile ring (tile partials by slot plus one window
/// partial per entity for each window it serves), or per entity for the lifetime.
struct Placement: Sendable, Hashable {
    /// Index of the tile ring, or nil for a lifetime kernel.
    var ring: Int?
    /// Field the kernel reads, nil for a plain `count`.
    var field: Int?
    /// Index of the filter in the view's distinct predicates.
    var filter: Int?
    /// The generation of its features (`FeatureSpec.generation`): generations never share partials.
    var generation = 0
}

/// A feature computed by a kernel: which window partial, which finalize mode, which output column.
struct KernelOutput: Sendable {
    var feature: Int
    var window: Int
    var mode: Int
}

/// One kernel instance and all its partials, structure-of-arrays: `tiles[slot]`, and
/// `windows[entity · windowCount + j]` (an entity's windows side by side).
struct KernelColumn<K: AggregateKernel>: Sendable {
    var kernel: K
    let placement: Placement
    /// For a ring kernel: the ring-window index of each window partial (ascending).
    /// For a lifetime kernel: `[0]`, the lifetime partial.
    let ringWindows: [Int]
    let outputs: [KernelOutput]

    var tiles: [K.Partial] = []
    var windows: [K.Partial] = []

    // Per batch.
    var inputs: [K.Input] = []
    var active: [Bool] = []

    init(kernel: K, placement: Placement, ringWindows: [Int], outputs: [KernelOutput]) {
        self.kernel = kernel
        self.placement = placement
        self.ringWindows = ringWindows
        self.outputs = outputs
    }

    var windowCount: Int { ringWindows.count }

    mutating func addEntities(upTo n: Int) {
        let needed = n * windowCount
        if windows.count < needed { windows.append(contentsOf: repeatElement(kernel.empty, count: needed - windows.count)) }
    }

    /// Loads the batch's inputs and marks the rows this kernel aggregates.
    mutating func prepare(_ batch: ColumnBatch, entities: [UInt32], filters: [[Bool]]) {
        let n = batch.count
        let column = placement.field.map { batch.columns[$0] }
        kernel.load(column, count: n, into: &inputs)
        var flags = self.active
        self.active = []
        defer { self.active = flags }
        if flags.count != n {
            flags.removeAll(keepingCapacity: true)
            flags.append(contentsOf: repeatElement(false, count: n))
        }
        let none = EntityIndex.noEntity
        let filter = placement.filter
        flags.withUnsafeMutableBufferPointer { active in
            entities.withUnsafeBufferPointer { entities in
                for i in 0..<n { active[i] = entities[i] != none }
            }
            if let f = filter {
                filters[f].withUnsafeBufferPointer { selected in
                    for i in 0..<n { active[i] = active[i] && selected[i] }
                }
            }
            if let column, !column.validity.allSet {
                column.validity.words.withUnsafeBufferPointer { words in
                    for i in 0..<n { active[i] = active[i] && (words[i >> 6] >> UInt64(i & 63)) & 1 != 0 }
                }
            }
        }
    }

    /// Phase 2: applies a plan to this kernel's partials and writes its outputs to `values`
    /// (feature-major: feature f's emission e at `f · emissions + e`).
    mutating func execute(_ plan: Plan, longestWindow: Int, emissions: Int,
                          values: UnsafeMutablePointer<UInt64>, valid: UnsafeMutablePointer<Bool>) {
        let empty = kernel.empty
        if let r = placement.ring {
            for s in plan.created[r] {
                if Int(s) == tiles.count { tiles.append(empty) } else { tiles[Int(s)] = empty }
            }
        }
        // Move the partials out of `self` so the loops below work on plain buffers while the
        // kernel (which may own arenas) is mutated.
        var tiles = self.tiles, windows = self.windows
        let inputs = self.inputs, active = self.active
        self.tiles = []
        self.windows = []
        defer {
            self.tiles = tiles
            self.windows = windows
        }
        let nw = windowCount
        let ring = placement.ring
        let ringWindows = self.ringWindows, outputs = self.outputs
        let entity = plan.entity.buffer, time = plan.time.buffer, emission = plan.emission.buffer
        let finalRow = plan.finalRow.buffer
        let slots = plan.slot.buffer + (ring ?? 0) * plan.rows
        let firsts = plan.firstWindow.buffer + (ring ?? 0) * plan.rows
        tiles.withUnsafeMutableBufferPointer { tiles in
        windows.withUnsafeMutableBufferPointer { windows in
        inputs.withUnsafeBufferPointer { inputs in
        active.withUnsafeBufferPointer { active in
                var step = 0
                let rows = plan.rows
                for i in 0..<rows {
                    // Cold entities' partials are a cache miss each: ask for them a few rows ahead.
                    if i &+ 8 < rows {
                        let ahead = entity[i &+ 8]
                        if ahead != EntityIndex.noEntity { tessera_prefetch(windows.baseAddress! + Int(ahead) &* nw) }
                        if ring != nil, slots[i &+ 8] != TileRing.none { tessera_prefetch(tiles.baseAddress! + Int(slots[i &+ 8])) }
                    }
                    while step < plan.steps.count && plan.steps[step].beforeRow == i {
                        Self.run(plan.steps[step], &kernel, placement, ringWindows, outputs, plan, longestWindow, tiles, windows, emissions, values, valid)
                        step += 1
                    }
                    let e = Int(entity[i])
                    if active[i] {
                        let x = inputs[i], t = time[i]
                        if ring != nil {
                            let s = slots[i]
                            if s != TileRing.none { kernel.update(&tiles[Int(s)], x, time: t) }
                            let first = Int(firsts[i])
                            for j in 0..<nw where ringWindows[j] >= first {
                                kernel.update(&windows[e &* nw &+ j], x, time: t)
                            }
                        } else {
                            kernel.update(&windows[e], x, time: t)
                        }
                    }
                    if finalRow[i] {
                        let at = Int(emission[i])
                        for o in outputs {
                            let out = o.feature &* emissions &+ at
                            if let v = kernel.finalize(windows[e &* nw &+ o.window], mode: o.mode) {
                                values[out] = v
                                valid[out] = true
                            }
                        }
                    }
                }
                while step < plan.steps.count {
                    Self.run(plan.steps[step], &kernel, placement, ringWindows, outputs, plan, longestWindow, tiles, windows, emissions, values, valid)
                    step += 1
                }
        }}}}
    }

    /// A boundary step: rebuild the windows that lost a tile, or write a group of emissions.
    private static func run(_ step: Plan.Step, _ kernel: inout K, _ placement: Placement, _ ringWindows: [Int],
                            _ outputs: [KernelOutput], _ plan: Plan, _ longestWindow: Int,
                            _ tiles: UnsafeMutableBufferPointer<K.Partial>, _ windows: UnsafeMutableBufferPointer<K.Partial>,
                            _ emissions: Int, _ values: UnsafeMutablePointer<UInt64>, _ valid: UnsafeMutablePointer<Bool>) {
        let nw = ringWindows.count
        switch step.kind {
        case .expire:
            guard step.ring == placement.ring else { return }
            if let j = ringWindows.firstIndex(of: step.window) {
                for k in step.from..<step.to {
                    let x = plan.expiries[k]
                    if k &+ 8 < step.to {
                        let ahead = plan.expiries[k &+ 8]
                        tessera_prefetch(windows.baseAddress! + (Int(ahead.entity) &* nw &+ j))
                        tessera_prefetch(tiles.baseAddress! + Int(ahead.slot))
                    }
                    let w = Int(x.entity) &* nw &+ j
                    if K.isInvertible {
                        kernel.retract(&windows[w], tiles[Int(x.slot)])
                        continue
                    }
                    kernel.release(windows[w])
                    var partial = kernel.empty
                    for s in plan.remaining[Int(x.from)..<Int(x.to)] { kernel.merge(&partial, tiles[Int(s)]) }
                    windows[w] = partial
                }
            }
            if step.window == longestWindow {
                let empty = kernel.empty
                for x in plan.expiries[step.from..<step.to] {
                    kernel.release(tiles[Int(x.slot)])
                    tiles[Int(x.slot)] = empty
                }
            }
        case .emit:
            for g in plan.emits[step.from..<step.to] where g.isFinal {
                let e = Int(g.entity)
                for o in outputs {
                    let out = o.feature &* emissions &+ Int(g.emission)
                    if let v = kernel.finalize(windows[e &* nw &+ o.window], mode: o.mode) {
                        values[out] = v
                        valid[out] = true
                    }
                }
            }
        }
    }

    /// Appends this kernel's outputs for `count` emissions to the feature columns.
    func materialize(count: Int, values: UnsafePointer<UInt64>, valid: UnsafePointer<Bool>, into features: inout [Column]) {
        for o in outputs {
            let bits = UnsafeBufferPointer(start: values + o.feature * count, count: count)
            let flags = UnsafeBufferPointer(start: valid + o.feature * count, count: count)
            switch features[o.feature].type {
            case .int64:
                bits.withMemoryRebound(to: Int64.self) { features[o.feature].ints.append(contentsOf: $0) }
            case .float64:
                bits.withMemoryRebound(to: Double.self) { features[o.feature].doubles.append(contentsOf: $0) }
            case .bool:
                features[o.feature].ints.reserveCapacity(features[o.feature].ints.count + count)
                for b in bits { features[o.feature].ints.append(b != 0 ? 1 : 0) }
            case .string:
                // Strings append their bytes and validity together.
                for i in 0..<count {
                    if flags[i] { kernel.appendString(code: bits[i], to: &features[o.feature]) } else { features[o.feature].appendNull() }
                }
                continue
            }
            features[o.feature].validity.append(contentsOf: flags)
        }
    }

    func serialize(into w: inout ByteWriter) {
        kernel.serialize(into: &w)
        w.write(array: tiles)
        w.write(array: windows)
    }

    mutating func restore(from r: inout ByteReader) throws {
        try kernel.restore(from: &r)
        tiles = try r.readArray()
        windows = try r.readArray()
        guard windows.count % windowCount == 0 else { throw StateFormatError(description: "kernel state does not match the view") }
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
    var extrema: [KernelColumn<ExtremumKernel>] = []
    var moments: [KernelColumn<MomentsKernel>] = []
    var picks: [KernelColumn<PickKernel>] = []
    var distincts: [KernelColumn<DistinctKernel>] = []
    var percentiles: [KernelColumn<PercentileKernel>] = []

    mutating func forEach<V: KernelVisitor>(_ v: inout V) {
        for i in counts.indices { v.visit(&counts[i]) }
        for i in sums.indices { v.visit(&sums[i]) }
        for i in extrema.indices { v.visit(&extrema[i]) }
        for i in moments.indices { v.visit(&moments[i]) }
        for i in picks.indices { v.visit(&picks[i]) }
        for i in distincts.indices { v.visit(&distincts[i]) }
        for i in percentiles.indices { v.visit(&percentiles[i]) }
    }
}
