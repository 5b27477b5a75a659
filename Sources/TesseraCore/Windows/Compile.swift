/// The aggregate families, one kernel type each.
enum Family: UInt8, Sendable, Hashable {
    case count, moments, max, min, first, last, distinct, quantile

    init(_ a: Aggregate) {
        switch a {
        case .count: self = .count
        case .sum, .mean, .variance, .stddev: self = .moments
        case .min: self = .min
        case .max: self = .max
        case .first: self = .first
        case .last: self = .last
        case .approxCountDistinct: self = .distinct
        case .approxPercentile: self = .quantile
        }
    }

    var isSelection: Bool { self == .min || self == .max || self == .first || self == .last }
}

/// A kernel by family and index, and one of its windows.
struct KernelRef: Sendable, BitwiseCopyable {
    var family: Family
    var index: Int
    var window: Int
}

/// A fixed list of kernel references in program memory.
struct RefList: BitwiseCopyable, @unchecked Sendable, RandomAccessCollection {  // points into immutable program memory
    let base: UnsafePointer<KernelRef>?
    let count: Int
    var startIndex: Int { 0 }
    var endIndex: Int { count }
    @inline(__always) subscript(i: Int) -> KernelRef { base.unsafelyUnwrapped[i] }

    init(_ refs: [KernelRef], in memory: ProgramMemory) {
        base = refs.isEmpty ? nil : memory.values(refs)
        count = refs.count
    }
}

/// The kernels of a view, one array per family (so each call is specialised for its kernel).
struct KernelSet: Sendable {
    var counts: [CountKernel] = []
    var moments: [MomentsKernel] = []
    var maxes: [SelectionKernel<MaxRule>] = []
    var mins: [SelectionKernel<MinRule>] = []
    var firsts: [SelectionKernel<FirstRule>] = []
    var lasts: [SelectionKernel<LastRule>] = []
    var distincts: [DistinctKernel] = []
    var quantiles: [QuantileKernel] = []

    func shape(_ family: Family, _ i: Int) -> KernelShape {
        switch family {
        case .count: counts[i].shape
        case .moments: moments[i].shape
        case .max: maxes[i].shape
        case .min: mins[i].shape
        case .first: firsts[i].shape
        case .last: lasts[i].shape
        case .distinct: distincts[i].shape
        case .quantile: quantiles[i].shape
        }
    }

    /// Every kernel, family by family, in a fixed order (the order of their saved state).
    var all: [(Family, Int)] {
        counts.indices.map { (.count, $0) } + moments.indices.map { (.moments, $0) } + maxes.indices.map { (.max, $0) }
            + mins.indices.map { (.min, $0) } + firsts.indices.map { (.first, $0) } + lasts.indices.map { (.last, $0) }
            + distincts.indices.map { (.distinct, $0) } + quantiles.indices.map { (.quantile, $0) }
    }

}

/// One output of a count or distinct count kernel: the Int64 at `offset` in the record (a
/// distinct count's sketch publishes its estimates there), copied into column `feature` of the
/// emission row; never null.
struct CountOutput: BitwiseCopyable, Sendable {
    var feature: Int32
    var offset: Int32
}

/// One output of a moments or selection kernel: the partial at `offset` in the record (merged, for
/// a selection over a sliding window, with the front's at `front`), read into column `feature` of
/// the emission row.
struct ValueOutput: BitwiseCopyable, Sendable {
    enum Kind: BitwiseCopyable, Sendable {
        /// A moments partial read in this mode (a variance or standard deviation reads one with
        /// sums of squares; a sum or mean only its `Sums`).
        case moments(MomentsPartial.Mode)
        /// The value of a selection kernel (`merge(front, back)`, see `SelectionKernel`).
        case max, min, first, last
    }
    var kind: Kind
    var feature: Int32
    var offset: Int32
    /// A selection's front partial, or -1 (a lifetime selection has none; moments).
    var front: Int32 = -1
}

/// A view compiled for the core: its layout, its kernels (empty), its filters, and which kernels
/// act when a tile leaves a window or a ring.
struct ViewProgram: @unchecked Sendable {  // its pointers point into `memory`, immutable once compiled
    /// Holds every list the layout, the kernels and the tables below point into.
    let memory: ProgramMemory
    var layout: ViewLayout
    var kernels: KernelSet
    var predicates: [Predicate]
    /// Stores the kernels need: one per distinct and quantile kernel, a dictionary per
    /// first/last of a string field.
    var distinctStores = 0, quantileStores = 0, dictionaries = 0
    /// Per ring window (`windowBase[r] + w`): kernels (not selections) that lose a tile leaving
    /// the window, and the selection kernels of the window (they split together).
    var expiries: UnsafePointer<RefList>?
    var selections: UnsafePointer<RefList>?
    var windowBase: [Int]
    /// Per ring: kernels that own storage per tile (freed when the tile leaves the ring), and the
    /// selection kernels (told when a tile is created).
    var owners: UnsafePointer<RefList>?
    var selectors: UnsafePointer<RefList>?
    /// Per feature: its output type.
    var types: [ValueType]
    /// The outputs of every kernel but the percentiles', flattened into two lists that `finalize`
    /// runs through (a plain read of a partial or two each, instead of a loop per kernel over its
    /// outputs): the counts (a copy each), then the others, each list in feature order.
    var countOutputs: UnsafePointer<CountOutput>?
    var countOutputCount = 0
    var valueOutputs: UnsafePointer<ValueOutput>?
    var valueOutputCount = 0

    init(spec: ViewSpec) {
        let memory = ProgramMemory()
        self.memory = memory
        var builder = LayoutBuilder(memory: memory)
        var kernels = KernelSet()
        var predicates: [Predicate] = []
        var refs: [(Family, Int)] = []
        let order = spec.features.indices.sorted { (spec.features[$0].generation, $0) < (spec.features[$1].generation, $1) }
        let generations = Set(spec.features.map(\.generation)).sorted()
        for g in generations {
            let features = order.filter { spec.features[$0].generation == g }
            // Rings: one per hop, serving every window length with that hop.
            var hops: [Micros] = []
            var lengths: [Micros: Set<Micros>] = [:]
            for f in features {
                if case .sliding(let w, let h) = spec.features[f].window {
                    if lengths[h] == nil { hops.append(h) }
                    lengths[h, default: []].insert(w)
                }
            }
            // A ring with a distinct count (a 4-byte tile partial) keeps tile indices in 4 bytes beside it.
            var compact: Set<Micros> = []
            for f in features where Family(spec.features[f].aggregate) == .distinct {
                if case .sliding(_, let h) = spec.features[f].window { compact.insert(h) }
            }
            var ringOf: [Micros: Int] = [:]
            for h in hops { ringOf[h] = builder.addRing(hop: h, windows: lengths[h]!.sorted(), generation: g, compact: compact.contains(h)) }

            // Kernels: features that agree on family, field, filter and ring share one (a
            // selection kernel serves one window).
            struct Key: Hashable { var family: Family; var field: Int?; var filter: Int?; var ring: Int?; var window: Int }
            struct Pending { var key: Key; var windows: Set<Int> = []; var outputs: [(feature: Int, window: Int, mode: Int)] = []
                             var percentiles: [Double] = []; var squaredWindows: Set<Int> = [] }
            var pending: [Pending] = []
            var byKey: [Key: Int] = [:]
            for f in features {
                let feature = spec.features[f]
                var filter: Int?
                if let p = feature.filter {
                    if let existing = predicates.firstIndex(of: p) { filter = existing } else { predicates.append(p); filter = predicates.count - 1 }
                }
                var ring: Int?
                var window = 0
                if case .sliding(let w, let h) = feature.window {
                    ring = ringOf[h]!
                    window = builder.rings[ring!].windows.firstIndex(of: w)!
                }
                let family = Family(feature.aggregate)
                // A selection kernel serves one window; a sliding sketch at most `SlidingHLL.maxWindows`.
                let group = family.isSelection ? window : (family == .distinct ? window / SlidingHLL.maxWindows : 0)
                let key = Key(family: family, field: feature.field, filter: filter, ring: ring, window: group)
                let k: Int
                if let existing = byKey[key] { k = existing } else {
                    k = pending.count
                    byKey[key] = k
                    pending.append(Pending(key: key))
                }
                var mode = 0
                switch feature.aggregate {
                case .sum: mode = MomentsPartial.Mode.sum.rawValue
                case .mean: mode = MomentsPartial.Mode.mean.rawValue
                case .variance: mode = MomentsPartial.Mode.variance.rawValue; pending[k].squaredWindows.insert(window)
                case .stddev: mode = MomentsPartial.Mode.stddev.rawValue; pending[k].squaredWindows.insert(window)
                case .approxPercentile:
                    let p = feature.percentile ?? 0.5
                    if let m = pending[k].percentiles.firstIndex(of: p) { mode = m } else {
                        pending[k].percentiles.append(p)
                        mode = pending[k].percentiles.count - 1
                    }
                default: break
                }
                pending[k].windows.insert(window)
                pending[k].outputs.append((f, window, mode))
            }
            for p in pending {
                let ringWindows = p.key.ring == nil ? [0] : p.windows.sorted()
                let outputs = p.outputs.map { KernelOutput(feature: $0.feature, window: ringWindows.firstIndex(of: $0.window)!, mode: $0.mode) }
                var shape: KernelShape!
                func fields<T: BitwiseCopyable, U: BitwiseCopyable>(tile: T, window: U) {
                    place(tileOffset: p.key.ring.map { builder.tile(ring: $0, tile) } ?? -1, windowOffsets: ringWindows.map { _ in builder.record(window) })
                }
                func place(tileOffset: Int, windowOffsets: [Int]) {
                    shape = KernelShape(ring: p.key.ring ?? -1, field: p.key.field ?? -1, filter: p.key.filter ?? -1, generation: g,
                                        ringWindows: memory.list(ringWindows), windowOffsets: memory.list(windowOffsets),
                                        tileOffset: tileOffset, outputs: memory.values(outputs), outputCount: outputs.count)
                }
                switch p.key.family {
                case .count:
                    fields(tile: Int64(0), window: Int64(0))
                    kernels.counts.append(CountKernel(shape: shape))
                    refs.append((.count, kernels.counts.count - 1))
                case .moments:
                    // Sums of squares only where a variance or standard deviation reads them.
                    let squaredRing = ringWindows.map { p.squaredWindows.contains($0) }
                    let tileOffset = p.key.ring.map {
                        squaredRing.contains(true) ? builder.tile(ring: $0, MomentsPartial.zero) : builder.tile(ring: $0, MomentsPartial.Sums.zero)
                    } ?? -1
                    place(tileOffset: tileOffset, windowOffsets: squaredRing.map { $0 ? builder.record(MomentsPartial.zero) : builder.record(MomentsPartial.Sums.zero) })
                    let squared = ringWindows.enumerated().reduce(UInt64(0)) { $0 | (p.squaredWindows.contains($1.element) ? 1 << UInt64($1.offset) : 0) }
                    kernels.moments.append(MomentsKernel(shape: shape, squaredWindows: squared))
                    refs.append((.moments, kernels.moments.count - 1))
                case .max, .min, .first, .last:
                    let fieldType = spec.schema.types[p.key.field!]
                    var pivot = -1, start = -1, front = -1
                    if let r = p.key.ring {
                        pivot = builder.pivot(ring: r, window: ringWindows[0])
                        start = builder.rings[r].startOffsets[ringWindows[0]]
                    }
                    var dictionary = -1
                    if fieldType == .string && (p.key.family == .first || p.key.family == .last) {
                        dictionary = dictionaries
                        dictionaries += 1
                    }
                    func selection<R: SelectionRule>(_ rule: R.Type) -> SelectionKernel<R> {
                        fields(tile: R.empty, window: R.empty)
                        if p.key.ring != nil { front = builder.record(R.empty) }
                        return SelectionKernel(shape: shape, pivotOffset: pivot, startOffset: start, frontOffset: front, fieldType: fieldType,
                                               dictionary: dictionary)
                    }
                    switch p.key.family {
                    case .max:
                        kernels.maxes.append(selection(MaxRule.self))
                        refs.append((.max, kernels.maxes.count - 1))
                    case .min:
                        kernels.mins.append(selection(MinRule.self))
                        refs.append((.min, kernels.mins.count - 1))
                    case .first:
                        kernels.firsts.append(selection(FirstRule.self))
                        refs.append((.first, kernels.firsts.count - 1))
                    default:
                        kernels.lasts.append(selection(LastRule.self))
                        refs.append((.last, kernels.lasts.count - 1))
                    }
                case .distinct:
                    place(tileOffset: p.key.ring.map { builder.tile32(ring: $0, 0) } ?? -1, windowOffsets: ringWindows.map { _ in builder.record(Int64(0)) })
                    let handle = builder.record(DistinctHandle.empty)
                    kernels.distincts.append(DistinctKernel(shape: shape, handleOffset: handle, store: distinctStores))
                    distinctStores += 1
                    refs.append((.distinct, kernels.distincts.count - 1))
                case .quantile:
                    fields(tile: ValueList.empty, window: UInt64(0))
                    let percentiles = memory.list(p.percentiles.map { Int(Int64(bitPattern: $0.bitPattern)) })
                    kernels.quantiles.append(QuantileKernel(shape: shape, percentiles: percentiles, store: quantileStores))
                    quantileStores += 1
                    refs.append((.quantile, kernels.quantiles.count - 1))
                }
            }
            for h in hops { builder.finishRing(ringOf[h]!) }
            while builder.prefix.count < g { builder.prefix.append(builder.prefix.last ?? ViewLayout.headerBytes) }
            builder.prefix.append(builder.stride)
        }
        layout = builder.freeze()
        self.kernels = kernels
        self.predicates = predicates
        let rings = builder.rings
        windowBase = rings.indices.map { r in rings[..<r].reduce(0) { $0 + $1.windows.count } }
        var expiries = rings.map { Array(repeating: [KernelRef](), count: $0.windows.count) }
        var selections = expiries
        var owners = Array(repeating: [KernelRef](), count: rings.count)
        var selectors = owners
        for (family, i) in refs {
            let shape = kernels.shape(family, i)
            guard shape.ring >= 0 else { continue }
            let r = shape.ring
            for j in 0..<shape.ringWindows.count {
                let w = shape.ringWindows[j]
                if family.isSelection { selections[r][w].append(KernelRef(family: family, index: i, window: j)) } else {
                    expiries[r][w].append(KernelRef(family: family, index: i, window: j))
                }
            }
            if family == .distinct || family == .quantile { owners[r].append(KernelRef(family: family, index: i, window: 0)) }
            if family.isSelection { selectors[r].append(KernelRef(family: family, index: i, window: 0)) }
        }
        if !rings.isEmpty {
            self.expiries = memory.values(expiries.flatMap { $0 }.map { RefList($0, in: memory) })
            self.selections = memory.values(selections.flatMap { $0 }.map { RefList($0, in: memory) })
            self.owners = memory.values(owners.map { RefList($0, in: memory) })
            self.selectors = memory.values(selectors.map { RefList($0, in: memory) })
        }
        types = spec.features.map { spec.outputType(of: $0) }
        var counts: [CountOutput] = [], values: [ValueOutput] = []
        // A count's window fields hold its count, and so do a distinct count's in either mode (a
        // sketch publishes its estimates there).
        for shape in kernels.counts.map(\.shape) + kernels.distincts.map(\.shape) {
            for o in 0..<shape.outputCount {
                let out = shape.outputs[o]
                counts.append(CountOutput(feature: Int32(out.feature), offset: Int32(shape.windowOffsets[out.window])))
            }
        }
        for k in kernels.moments {
            for o in 0..<k.shape.outputCount {
                let out = k.shape.outputs[o]
                let mode = MomentsPartial.Mode(rawValue: out.mode)!
                precondition(mode == .sum || mode == .mean || k.squaredWindows & (1 << UInt64(out.window)) != 0,
                             "a variance reads a partial with sums of squares")
                values.append(ValueOutput(kind: .moments(mode), feature: Int32(out.feature), offset: Int32(k.shape.windowOffsets[out.window])))
            }
        }
        func selectionOutputs<R: SelectionRule>(_ kernels: [SelectionKernel<R>], _ kind: ValueOutput.Kind) {
            for k in kernels {
                for o in 0..<k.shape.outputCount {
                    values.append(ValueOutput(kind: kind, feature: Int32(k.shape.outputs[o].feature), offset: Int32(k.shape.windowOffsets[0]),
                                              front: k.shape.ring >= 0 ? Int32(k.frontOffset) : -1))
                }
            }
        }
        selectionOutputs(kernels.maxes, .max)
        selectionOutputs(kernels.mins, .min)
        selectionOutputs(kernels.firsts, .first)
        selectionOutputs(kernels.lasts, .last)
        counts.sort { $0.feature < $1.feature }
        values.sort { $0.feature < $1.feature }
        countOutputs = counts.isEmpty ? nil : memory.values(counts)
        countOutputCount = counts.count
        valueOutputs = values.isEmpty ? nil : memory.values(values)
        valueOutputCount = values.count
    }

    @inline(__always) func expiries(ring r: Int, window w: Int) -> RefList { expiries.unsafelyUnwrapped[windowBase[r] + w] }
    @inline(__always) func selections(ring r: Int, window w: Int) -> RefList { selections.unsafelyUnwrapped[windowBase[r] + w] }
    @inline(__always) func owners(ring r: Int) -> RefList { owners.unsafelyUnwrapped[r] }
    @inline(__always) func selectors(ring r: Int) -> RefList { selectors.unsafelyUnwrapped[r] }

    /// The record bytes state saved with features up to `generation` has.
    func stride(upTo generation: Int) -> Int {
        generation < layout.prefix.count ? layout.prefix[generation] : layout.stride
    }
}
