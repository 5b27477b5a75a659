import CPrefetch

/// The windowed aggregation of one feature view over one partition.
///
/// Emissions are *open* while stream time stays at their time (more events at that time may
/// still change them) and *closed* once it moves on. The closed stream is the same however the
/// input is cut into batches, and however often the state is checkpointed and restored.
///
/// A batch is applied in two phases (see `Plan`). Phase 1 walks the rows in arrival order:
/// resolves each row's entity and its tile on every ring, crosses the tile boundaries that stream
/// time passes (in time order), and numbers the emissions — one per entity and stream time, an
/// accepted row always emitting its entity's row and a tile leaving a window emitting at that
/// boundary. Phase 2 runs kernel by kernel over the rows: update tile and window partials, rebuild
/// a window from the entity's remaining tiles when a tile leaves it, and finalise each emitted
/// value where its emission's last writer stands.
public struct ViewAggregator: Sendable {
    public let spec: ViewSpec
    var entities: EntityIndex
    var rings: [TileRing]
    /// The generation of each ring's features (see `FeatureSpec.generation`).
    var ringGenerations: [Int] = []
    var kernels = KernelSet()
    var predicates: [Predicate]
    /// The stream time this view has processed up to; `.min` before the first event.
    public internal(set) var clock: Micros = .min

    /// Per entity: the time and serial number of its latest emission (to coalesce equal times
    /// within a batch). Serial numbers count every emission this view ever made.
    var emitted: [LastEmission] = []
    struct LastEmission: BitwiseCopyable, Sendable {
        var time: Micros
        var serial: Int64
        static let never = LastEmission(time: .min, serial: -1)
    }
    var firstSerial: Int64 = 0

    /// Emissions produced since the caller last cleared them.
    public internal(set) var emissions: EmissionBatch

    // Scratch, kept to avoid allocating per batch.
    var plan = Plan()
    var ids: [UInt32] = []
    var filterResults: [[Bool]] = []
    var predicateScratch: [[UInt8]] = []
    var boundaries: [Boundary] = []
    /// Per new emission: its last writer, a row (≥ 0) or an emit-group entry (−1 − index).
    var lastWriter: [Int] = []
    var values: [UInt64] = []
    var valid: [Bool] = []
    var firstNew = 0
    /// Emissions before this index are closed; `pendingClosers` says by which row.
    var closedUpTo = 0
    var pendingClosers: [(Int, Int32)] = []

    /// Entities whose row at the current stream time is still open (part of the state).
    var openEntities: [UInt32] = []

    /// Per ring and window: whether a kernel there rebuilds its window from the remaining tiles
    /// when a tile leaves (invertible kernels subtract the tile instead).
    var rebuilds: [[Bool]] = []

    struct Boundary {
        var time: Micros
        var ring: Int
        var window: Int
        var tile: Int64
    }

    public init(spec: ViewSpec) {
        self.spec = spec
        entities = EntityIndex(keyTypes: spec.keyTypes)
        emissions = EmissionBatch(keyTypes: spec.keyTypes, featureTypes: spec.features.map { spec.outputType(of: $0) })

        // Features in state order: by generation (features added to a running view come after
        // the ones whose state was saved, and never share their tiles or partials).
        let order = spec.features.indices.sorted { (spec.features[$0].generation, $0) < (spec.features[$1].generation, $1) }

        // Rings: one per hop (and generation), serving every window length with that hop.
        struct RingKey: Hashable { var hop: Micros; var generation: Int }
        var hops: [RingKey] = []
        var lengths: [RingKey: Set<Micros>] = [:]
        for f in order.map({ spec.features[$0] }) {
            if case .sliding(let w, let h) = f.window {
                let key = RingKey(hop: h, generation: f.generation)
                if lengths[key] == nil { hops.append(key) }
                lengths[key, default: []].insert(w)
            }
        }
        rings = hops.map { TileRing(hop: $0.hop, windows: lengths[$0]!.sorted()) }
        ringGenerations = hops.map(\.generation)

        // Kernels: one per (family, ring, field, filter); features that agree share it.
        var predicates: [Predicate] = []
        struct Key: Hashable { var family: Family; var placement: Placement }
        struct Pending { var key: Key; var windows: Set<Int> = []; var outputs: [KernelOutput] = []; var percentiles: [Double] = [] }
        var pending: [Pending] = []
        var byKey: [Key: Int] = [:]
        for index in order {
            let f = spec.features[index]
            var filter: Int?
            if let p = f.filter {
                if let existing = predicates.firstIndex(of: p) { filter = existing } else { predicates.append(p); filter = predicates.count - 1 }
            }
            var ring: Int?
            var window = 0
            if case .sliding(let w, let h) = f.window {
                ring = hops.firstIndex(of: RingKey(hop: h, generation: f.generation))!
                window = rings[ring!].windows.firstIndex(of: w)!
            }
            let key = Key(family: Family(f.aggregate), placement: Placement(ring: ring, field: f.field, filter: filter, generation: f.generation))
            let k: Int
            if let existing = byKey[key] { k = existing } else {
                k = pending.count
                byKey[key] = k
                pending.append(Pending(key: key))
            }
            var mode = (f.aggregate == .stddev || f.aggregate == .mean) ? 1 : 0
            if f.aggregate == .approxPercentile {
                let p = f.percentile ?? 0.5
                if let m = pending[k].percentiles.firstIndex(of: p) { mode = m } else {
                    pending[k].percentiles.append(p)
                    mode = pending[k].percentiles.count - 1
                }
            }
            pending[k].windows.insert(window)
            pending[k].outputs.append(KernelOutput(feature: index, window: window, mode: mode))
        }
        self.predicates = predicates
        for p in pending {
            let ringWindows = p.key.placement.ring == nil ? [0] : p.windows.sorted()
            let outputs = p.outputs.map { KernelOutput(feature: $0.feature, window: ringWindows.firstIndex(of: $0.window)!, mode: $0.mode) }
            let fieldType = p.key.placement.field.map { spec.schema.types[$0] } ?? .int64
            func column<K: AggregateKernel>(_ kernel: K) -> KernelColumn<K> {
                KernelColumn(kernel: kernel, placement: p.key.placement, ringWindows: ringWindows, outputs: outputs)
            }
            switch p.key.family {
            case .count: kernels.counts.append(column(CountKernel()))
            case .sum: kernels.sums.append(column(SumKernel()))
            case .min: kernels.extrema.append(column(ExtremumKernel(isMax: false)))
            case .max: kernels.extrema.append(column(ExtremumKernel(isMax: true)))
            case .moments: kernels.moments.append(column(MomentsKernel()))
            case .first: kernels.picks.append(column(PickKernel(isLast: false, type: fieldType)))
            case .last: kernels.picks.append(column(PickKernel(isLast: true, type: fieldType)))
            case .distinct: kernels.distincts.append(column(DistinctKernel()))
            case .percentile: kernels.percentiles.append(column(PercentileKernel(percentiles: p.percentiles)))
            }
        }
        var v = RebuildVisitor(rebuilds: rings.map { Array(repeating: false, count: $0.windows.count) })
        kernels.forEach(&v)
        rebuilds = v.rebuilds
    }

    enum Family: Hashable {
        case count, sum, min, max, moments, first, last, distinct, percentile
        init(_ a: Aggregate) {
            switch a {
            case .count: self = .count
            case .sum, .mean: self = .sum
            case .min: self = .min
            case .max: self = .max
            case .variance, .stddev: self = .moments
            case .first: self = .first
            case .last: self = .last
            case .approxCountDistinct: self = .distinct
            case .approxPercentile: self = .percentile
            }
        }
    }

    public var entityCount: Int { entities.count }

    /// The join-key values of an entity id that appears in `emissions`.
    public func key(of entity: UInt32) -> [Value] { entities.key(of: entity) }

    // MARK: - Applying a batch

    /// Aggregates the rows of `batch` for which `accepted[i]` (`streamTimes[i]` is the partition's
    /// stream time after row `i`), then moves the clock to `end`, crossing the boundaries on the
    /// way. New emissions are appended to `emissions`. Returns the rows without an entity key.
    mutating func apply(_ batch: ColumnBatch?, accepted: [Bool], streamTimes: [Micros], end: Micros, closeAll: Bool = false) -> [Int] {
        let n = batch?.count ?? 0
        var missingKey: [Int] = []
        plan.reset(rows: n, rings: rings.count)
        firstNew = emissions.count
        closedUpTo = firstNew
        defer { firstSerial += Int64(emissions.count - firstNew) }
        lastWriter.removeAll(keepingCapacity: true)
        // Rows left open by the previous batch (at the current stream time) continue here: they
        // may still change at this time, and close when stream time moves on.
        if !openEntities.isEmpty && (n > 0 || end > clock || closeAll) {
            let groupStart = plan.emits.count
            for e in openEntities {
                let (index, isNew) = emission(of: e, at: clock)
                if isNew {
                    lastWriter[Int(index)] = -1 - plan.emits.count
                    plan.emits.append(Plan.GroupEmission(entity: e, emission: index, isFinal: false, beforeRow: 0))
                }
            }
            plan.steps.append(Plan.Step(kind: .emit, beforeRow: 0, ring: 0, window: 0, from: groupStart, to: plan.emits.count))
            openEntities.removeAll(keepingCapacity: true)
        }
        if let batch {
            let added = entities.resolve(batch, keyFields: spec.keyFields, use: accepted, into: &ids)
            if added > 0 { addEntities() }
            for i in 0..<n where accepted[i] && ids[i] == EntityIndex.noEntity { missingKey.append(i) }
            planRows(batch, streamTimes: streamTimes)
        }
        if end > clock { planBoundaries(through: end, beforeRow: n) }
        lastWriter.withUnsafeBufferPointer { lastWriter in
            for i in 0..<n {
                let e = plan.emission[i]
                plan.finalRow[i] = e >= 0 && lastWriter[Int(e)] == i
            }
        }
        for g in plan.emits.indices { plan.emits[g].isFinal = lastWriter[Int(plan.emits[g].emission)] == -1 - g }
        // Rows at the final stream time stay open unless the run ends here.
        if closeAll {
            close(upTo: clock + 1, by: Int32(n))
        } else {
            for i in closedUpTo..<emissions.count { openEntities.append(emissions.entityIds[i]) }
        }
        emissions.closers.append(contentsOf: repeatElement(-1, count: emissions.count - emissions.closers.count))
        for (i, row) in pendingClosers { emissions.closers[i] = row }
        pendingClosers.removeAll(keepingCapacity: true)

        let count = emissions.count - firstNew
        if let batch, n > 0 { prepareKernels(batch) }
        if count > 0 || !plan.steps.isEmpty { execute(count: count) }
        for r in rings.indices {
            for s in plan.retired[r] { rings[r].remove(slot: s) }
        }
        return missingKey
    }

    // MARK: Phase 1

    private mutating func planRows(_ batch: ColumnBatch, streamTimes: [Micros]) {
        let n = batch.count
        let entity = plan.entity.buffer, time = plan.time.buffer, emission = plan.emission.buffer
        let slots = plan.slot.buffer, firsts = plan.firstWindow.buffer
        for i in 0..<n {
            let e = ids[i]
            let t = batch.eventTimes[i]
            entity[i] = e
            time[i] = t
            // Stream time is the partition's: a row this view cannot key still moves it.
            let now = streamTimes[i]
            if now > clock { planBoundaries(through: now, beforeRow: i) }
            guard e != EntityIndex.noEntity else {
                emission[i] = -1
                for r in rings.indices { slots[r &* n &+ i] = TileRing.none; firsts[r &* n &+ i] = 0 }
                continue
            }
            for r in rings.indices {
                let k = Time.floorDiv(t, rings[r].hop)
                let first = rings[r].firstWindowContaining(tile: k, at: now)
                firsts[r &* n &+ i] = UInt8(truncatingIfNeeded: first)
                if first < rings[r].windows.count {
                    let (slot, created) = rings[r].slot(entity: e, tile: k)
                    if created { plan.created[r].append(slot) }
                    slots[r &* n &+ i] = slot
                } else {
                    slots[r &* n &+ i] = TileRing.none
                }
            }
            let (index, _) = self.emission(of: e, at: now)
            lastWriter[Int(index)] = i
            emission[i] = index
        }
    }

    /// The emission (relative to this batch) of `e` at `time`: shared with an earlier change of
    /// the same entity at the same time in this batch, or new.
    private mutating func emission(of e: UInt32, at time: Micros) -> (index: Int32, isNew: Bool) {
        let last = emitted[Int(e)]
        if last.time == time && last.serial >= firstSerial {
            return (Int32(last.serial - firstSerial), false)
        }
        let index = Int32(emissions.count - firstNew)
        emissions.eventTimes.append(time)
        emissions.entityIds.append(e)
        emitted[Int(e)] = LastEmission(time: time, serial: firstSerial + Int64(index))
        lastWriter.append(0)
        return (index, true)
    }

    /// Marks every emission of this batch with a time before `time` as closed by input row `row`.
    private mutating func close(upTo time: Micros, by row: Int32) {
        while closedUpTo < emissions.count && emissions.eventTimes[closedUpTo] < time {
            pendingClosers.append((closedUpTo, row))
            closedUpTo += 1
        }
    }

    /// Crosses every tile boundary in `(clock, time]`, in time order, as steps before `row`.
    private mutating func planBoundaries(through time: Micros, beforeRow row: Int) {
        defer {
            clock = time
            close(upTo: time, by: Int32(row))
        }
        guard clock != .min else { return }
        boundaries.removeAll(keepingCapacity: true)
        for r in rings.indices {
            let live = rings[r].roster.range
            guard !live.isEmpty else { continue }
            let hop = rings[r].hop
            for (w, length) in rings[r].windows.enumerated() {
                // Tile k leaves window w at (k + 1)·hop + length.
                let lo = max(Time.floorDiv(clock - length, hop), live.lowerBound)
                let hi = min(Time.floorDiv(time - length, hop) - 1, live.upperBound - 1)
                guard lo <= hi else { continue }
                for k in lo...hi where rings[r].roster.bucket(k) != nil {
                    boundaries.append(Boundary(time: (k + 1) * hop + length, ring: r, window: w, tile: k))
                }
            }
        }
        guard !boundaries.isEmpty else { return }
        boundaries.sort { ($0.time, $0.ring, $0.window) < ($1.time, $1.ring, $1.window) }
        var i = 0
        while i < boundaries.count {
            let at = boundaries[i].time
            let groupStart = plan.emits.count
            while i < boundaries.count && boundaries[i].time == at {
                planExpiry(boundaries[i], beforeRow: row)
                i += 1
            }
            plan.steps.append(Plan.Step(kind: .emit, beforeRow: row, ring: 0, window: 0, from: groupStart, to: plan.emits.count))
        }
    }

    /// Tile `b.tile` leaves window `b.window`: every entity holding it changes at `b.time`.
    private mutating func planExpiry(_ b: Boundary, beforeRow row: Int) {
        guard let bucket = rings[b.ring].roster.bucket(b.tile) else { return }
        let from = plan.expiries.count
        let rebuild = rebuilds[b.ring][b.window]
        for (i, s) in bucket.enumerated() {
            // The bucket's slots belong to scattered entities: start their loads early, the slot's
            // link 16 slots ahead, its entity's bookkeeping 8 ahead.
            if i &+ 16 < bucket.count {
                rings[b.ring].links.withUnsafeBufferPointer { tessera_prefetch($0.baseAddress! + Int(bucket[i &+ 16])) }
            }
            if i &+ 8 < bucket.count {
                let ahead = Int(rings[b.ring].links[Int(bucket[i &+ 8])].entity)
                emitted.withUnsafeBufferPointer { tessera_prefetch($0.baseAddress! + ahead) }
                if rebuild { rings[b.ring].ends.withUnsafeBufferPointer { tessera_prefetch($0.baseAddress! + ahead) } }
            }
            let e = rings[b.ring].links[Int(s)].entity
            let start = plan.remaining.count
            var t = rebuild ? rings[b.ring].ends[Int(e)].newest : TileRing.none
            while t != TileRing.none && rings[b.ring].links[Int(t)].tile > b.tile {
                plan.remaining.append(t)
                t = rings[b.ring].links[Int(t)].prev
            }
            plan.expiries.append(Plan.Expiry(entity: e, slot: s, from: Int32(start), to: Int32(plan.remaining.count)))
            // Only this boundary's group can have emitted `e` at this time already (rows at
            // this time come after it), and then `e` is listed in the group.
            let (index, isNew) = emission(of: e, at: b.time)
            if isNew {
                lastWriter[Int(index)] = -1 - plan.emits.count
                plan.emits.append(Plan.GroupEmission(entity: e, emission: index, isFinal: false, beforeRow: Int32(row)))
            }
        }
        plan.steps.append(Plan.Step(kind: .expire, beforeRow: row, ring: b.ring, window: b.window, from: from, to: plan.expiries.count))
        if b.window == rings[b.ring].windows.count - 1 {
            plan.retired[b.ring].append(contentsOf: bucket)
            rings[b.ring].roster.drop(below: b.tile + 1)
        }
    }

    // MARK: Phase 2

    private mutating func prepareKernels(_ batch: ColumnBatch) {
        while filterResults.count < predicates.count { filterResults.append([]) }
        for (i, p) in predicates.enumerated() {
            p.evaluate(on: batch, into: &filterResults[i], scratch: &predicateScratch)
        }
        var prepare = PrepareVisitor(batch: batch, entities: ids, filters: filterResults)
        kernels.forEach(&prepare)
    }

    private mutating func execute(count: Int) {
        let features = spec.features.count
        values.removeAll(keepingCapacity: true)
        values.append(contentsOf: repeatElement(0, count: features * count))
        valid.removeAll(keepingCapacity: true)
        valid.append(contentsOf: repeatElement(false, count: features * count))
        var v = ExecuteVisitor(plan: plan, longest: rings.map { $0.windows.count - 1 }, count: count, values: [], valid: [])
        swap(&v.values, &values)
        swap(&v.valid, &valid)
        kernels.forEach(&v)
        entities.appendKeys(emissions.entityIds[firstNew...], to: &emissions.keys)
        var m = MaterializeVisitor(count: count, values: v.values, valid: v.valid, features: emissions.features)
        emissions.features = []
        kernels.forEach(&m)
        emissions.features = m.features
        swap(&v.values, &values)
        swap(&v.valid, &valid)
    }

    private mutating func addEntities() {
        let n = entities.count
        for r in rings.indices { rings[r].addEntities(upTo: n) }
        emitted.append(contentsOf: repeatElement(.never, count: n - emitted.count))
        var v = GrowVisitor(count: n)
        kernels.forEach(&v)
    }

    public mutating func removeAllEmissions() { emissions.removeAll() }

    // MARK: - Introspection

    /// Sizes of the aggregation state, for benchmarks and `tessera inspect`.
    public struct Footprint: Sendable {
        public var entities: Int
        /// Non-empty (entity, tile) pairs across rings.
        public var tiles: Int
        /// Bytes held by the state's arrays (their capacity, not just their count).
        public var bytes: Int
    }

    public var footprint: Footprint {
        var bytes = entities.memory + emitted.capacity * MemoryLayout<LastEmission>.stride
        var tiles = 0
        for r in rings {
            tiles += r.liveSlots
            bytes += r.memory
        }
        var v = MemoryVisitor()
        var copy = kernels
        copy.forEach(&v)
        return Footprint(entities: entities.count, tiles: tiles, bytes: bytes + v.bytes)
    }

    // MARK: - State

    func serialize(into w: inout ByteWriter) {
        w.write("view")
        w.write(spec.fingerprint)
        w.write(clock)
        entities.serialize(into: &w)
        w.write(UInt64(rings.count))
        for r in rings { r.serialize(into: &w) }
        // The visitor takes the buffer over and hands it back (a copy would share it and make
        // the first append copy everything written so far).
        var v = SerializeVisitor(writer: ByteWriter())
        swap(&v.writer, &w)
        var copy = kernels
        copy.forEach(&v)
        swap(&v.writer, &w)
        w.write(array: openEntities)
    }

    /// The fingerprint a serialized view starts with (to match it with its current definition).
    static func savedFingerprint(_ r: ByteReader) throws -> String {
        var r = r
        try r.expect("view")
        return try r.read(String.self)
    }

    /// Restores a view saved by `serialize`. `spec` is the current definition; features it adds
    /// to the saved ones start from empty state (`ViewSpec.reconciled(withSaved:)`).
    init(spec current: ViewSpec, from r: inout ByteReader) throws {
        try r.expect("view")
        let fingerprint = try r.read(String.self)
        let spec = fingerprint == current.fingerprint ? current : try current.reconciled(withSaved: fingerprint)
        self.init(spec: spec)
        // What was saved: the rings and kernels of the generations the saved state knew.
        let savedGeneration = spec.features.filter { fingerprint.contains("\n\($0.name) = ") }.map(\.generation).max() ?? 0
        clock = try r.read()
        entities = try EntityIndex(keyTypes: spec.keyTypes, from: &r)
        let ringCount = try r.count(limit: 1024)
        let saved = rings.indices.filter { ringGenerations[$0] <= savedGeneration }
        guard ringCount == saved.count else { throw StateFormatError(description: "view \(spec.name): ring count differs") }
        for i in saved { try rings[i].restore(from: &r) }
        var v = RestoreVisitor(reader: r, upToGeneration: savedGeneration)
        kernels.forEach(&v)
        if let error = v.error { throw error }
        r = v.reader
        openEntities = try r.readArray()
        guard openEntities.allSatisfy({ Int($0) < entities.count }) else { throw StateFormatError(description: "view \(spec.name): open rows name unknown entities") }
        // Added rings and kernels: empty partials for every known entity.
        for i in rings.indices where ringGenerations[i] > savedGeneration { rings[i].addEntities(upTo: entities.count) }
        var grow = GrowVisitor(count: entities.count)
        kernels.forEach(&grow)
        emitted = Array(repeating: .never, count: entities.count)
    }
}

/// Restoring state saved under a definition of the view that the new one cannot continue.
public struct StateMismatchError: Error, Sendable, CustomStringConvertible {
    public var view: String
    public var problems: [String]
    public var description: String {
        """
        the saved state of view \(view) cannot serve its new definition:
        \(problems.map { "  - " + $0 }.joined(separator: "\n"))
        Features can be added to a running view (they start from empty state; `tessera backfill` computes \
        their history), not changed, removed or reordered. Restore the previous definition, give a changed \
        feature a new name (it then starts from empty state), or rebuild the state: stop the workers, delete \
        the group's checkpoints (STATE_DIR/GROUP) and the view's offline files, and replay the topic (or run \
        `tessera backfill` over an archive of it).
        """
    }
}

// MARK: - Visitors

private struct GrowVisitor: KernelVisitor {
    let count: Int
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) { c.addEntities(upTo: count) }
}

private struct RebuildVisitor: KernelVisitor {
    var rebuilds: [[Bool]]
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) {
        guard let r = c.placement.ring, !K.isInvertible else { return }
        for w in c.ringWindows { rebuilds[r][w] = true }
    }
}

private struct PrepareVisitor: KernelVisitor {
    let batch: ColumnBatch
    let entities: [UInt32]
    let filters: [[Bool]]
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) {
        c.prepare(batch, entities: entities, filters: filters)
    }
}

private struct ExecuteVisitor: KernelVisitor {
    let plan: Plan
    let longest: [Int]
    let count: Int
    var values: [UInt64]
    var valid: [Bool]
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) {
        let longestWindow = c.placement.ring.map { longest[$0] } ?? -1
        values.withUnsafeMutableBufferPointer { values in
            valid.withUnsafeMutableBufferPointer { valid in
                c.execute(plan, longestWindow: longestWindow, emissions: count, values: values.baseAddress!, valid: valid.baseAddress!)
            }
        }
    }
}

private struct MaterializeVisitor: KernelVisitor {
    let count: Int
    let values: [UInt64]
    let valid: [Bool]
    var features: [Column]
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) {
        values.withUnsafeBufferPointer { values in
            valid.withUnsafeBufferPointer { valid in
                c.materialize(count: count, values: values.baseAddress!, valid: valid.baseAddress!, into: &features)
            }
        }
    }
}

private struct MemoryVisitor: KernelVisitor {
    var bytes = 0
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) {
        let stride = MemoryLayout<K.Partial>.stride
        bytes += (c.tiles.capacity + c.windows.capacity) * stride + c.kernel.storageBytes
    }
}

private struct SerializeVisitor: KernelVisitor {
    var writer: ByteWriter
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) { c.serialize(into: &writer) }
}

private struct RestoreVisitor: KernelVisitor {
    var reader: ByteReader
    /// Kernels of later generations were not saved (features added since): they stay empty.
    var upToGeneration: Int
    var error: (any Error)?
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) {
        guard error == nil, c.placement.generation <= upToGeneration else { return }
        do { try c.restore(from: &reader) } catch { self.error = error }
    }
}
