/// The windowed aggregation of one feature view over one partition.
///
/// Per row: resolve the entity, find (or create) its tile on every ring, update the tile partials
/// and the running window partials of every kernel, mark the entity dirty. When stream time moves
/// on, dirty entities are emitted at the old time, then every tile boundary crossed is processed
/// in time order: entities whose non-empty tile leaves a window get that window rebuilt from their
/// remaining tiles and are emitted at the boundary (expiry emissions).
public struct ViewAggregator: Sendable {
    public let spec: ViewSpec
    var entities: EntityIndex
    var rings: [TileRing]
    var kernels = KernelSet()
    var predicates: [Predicate]
    /// The stream time this view has processed up to; `.min` before the first event.
    public internal(set) var clock: Micros = .min

    var dirtyEpoch: [UInt32] = []
    var epoch: UInt32 = 1
    var dirty: [UInt32] = []

    /// Emissions produced since the caller last cleared them.
    public internal(set) var emissions: EmissionBatch

    // Scratch, kept to avoid allocating per batch.
    var ids: [UInt32] = []
    var filterResults: [[Bool]] = []
    var rowSlot: [UInt32]
    var rowFirstWindow: [Int]
    var slotScratch: [UInt32] = []
    var boundaries: [Boundary] = []

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

        // Rings: one per hop, serving every window length with that hop.
        var hops: [Micros] = []
        var lengths: [Micros: Set<Micros>] = [:]
        for f in spec.features {
            if case .sliding(let w, let h) = f.window {
                if lengths[h] == nil { hops.append(h) }
                lengths[h, default: []].insert(w)
            }
        }
        rings = hops.map { TileRing(hop: $0, windows: lengths[$0]!.sorted()) }
        rowSlot = Array(repeating: TileRing.none, count: rings.count)
        rowFirstWindow = Array(repeating: 0, count: rings.count)

        // Kernels: one per (family, ring, field, filter); features that agree share it.
        var predicates: [Predicate] = []
        struct Key: Hashable { var family: Family; var placement: Placement }
        struct Pending { var key: Key; var windows: Set<Int> = []; var outputs: [KernelOutput] = []; var percentiles: [Double] = [] }
        var pending: [Pending] = []
        var byKey: [Key: Int] = [:]
        for (index, f) in spec.features.enumerated() {
            var filter: Int?
            if let p = f.filter {
                if let existing = predicates.firstIndex(of: p) { filter = existing } else { predicates.append(p); filter = predicates.count - 1 }
            }
            var ring: Int?
            var window = 0
            if case .sliding(let w, let h) = f.window {
                ring = hops.firstIndex(of: h)!
                window = rings[ring!].windows.firstIndex(of: w)!
            }
            let key = Key(family: Family(f.aggregate), placement: Placement(ring: ring, field: f.field, filter: filter))
            let k: Int
            if let existing = byKey[key] { k = existing } else {
                k = pending.count
                byKey[key] = k
                pending.append(Pending(key: key))
            }
            var mode = f.aggregate == .stddev ? 1 : 0
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
            case .mean: kernels.means.append(column(MeanKernel()))
            case .min: kernels.extrema.append(column(ExtremumKernel(isMax: false)))
            case .max: kernels.extrema.append(column(ExtremumKernel(isMax: true)))
            case .moments: kernels.moments.append(column(MomentsKernel()))
            case .first: kernels.picks.append(column(PickKernel(isLast: false, type: fieldType)))
            case .last: kernels.picks.append(column(PickKernel(isLast: true, type: fieldType)))
            case .distinct: kernels.distincts.append(column(DistinctKernel()))
            case .percentile: kernels.percentiles.append(column(PercentileKernel(percentiles: p.percentiles)))
            }
        }
    }

    enum Family: Hashable {
        case count, sum, mean, min, max, moments, first, last, distinct, percentile
        init(_ a: Aggregate) {
            switch a {
            case .count: self = .count
            case .sum: self = .sum
            case .mean: self = .mean
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

    // MARK: - Ingest

    /// Aggregates the rows of `batch` for which `accepted[i]`; `streamTimes[i]` is the partition's
    /// stream time after row `i`. Returns the rows that have no entity key (null join key).
    mutating func ingest(_ batch: ColumnBatch, accepted: [Bool], streamTimes: [Micros]) -> [Int] {
        let n = batch.count
        let added = entities.resolve(batch, keyFields: spec.keyFields, use: accepted, into: &ids)
        if added > 0 { addEntities() }
        var missingKey: [Int] = []
        for i in 0..<n where accepted[i] && ids[i] == EntityIndex.noEntity { missingKey.append(i) }

        filterResults.removeAll(keepingCapacity: true)
        for p in predicates {
            var selected: [Bool] = []
            p.evaluate(on: batch, into: &selected)
            filterResults.append(selected)
        }
        var prepare = PrepareVisitor(batch: batch, entities: ids, filters: filterResults)
        kernels.forEach(&prepare)

        for i in 0..<n {
            let e = ids[i]
            if e == EntityIndex.noEntity { continue }
            let now = streamTimes[i]
            if now > clock { advance(to: now) }
            let t = batch.eventTimes[i]
            for r in rings.indices {
                let k = Time.floorDiv(t, rings[r].hop)
                let first = rings[r].firstWindowContaining(tile: k, at: now)
                rowFirstWindow[r] = first
                if first < rings[r].windows.count {
                    let (slot, created) = rings[r].slot(entity: e, tile: k)
                    if created {
                        var v = InitTileVisitor(ring: r, slot: slot)
                        kernels.forEach(&v)
                    }
                    rowSlot[r] = slot
                } else {
                    rowSlot[r] = TileRing.none
                }
            }
            var apply = ApplyVisitor(row: i, entity: Int(e), time: t, slots: rowSlot, firstWindows: rowFirstWindow)
            kernels.forEach(&apply)
            markDirty(e)
        }
        return missingKey
    }

    /// Moves this view's clock to `time`: emits what is dirty at the old time, then processes
    /// every tile boundary in `(clock, time]`. Entities changed at exactly `time` stay dirty.
    mutating func advance(to time: Micros) {
        guard time > clock else { return }
        flush(at: clock)
        if clock != .min { expire(through: time) }
        clock = time
    }

    /// Emits whatever is still dirty (the end of a batch, or before a checkpoint).
    mutating func flushPending() { flush(at: clock) }

    private mutating func expire(through time: Micros) {
        boundaries.removeAll(keepingCapacity: true)
        for r in rings.indices {
            let ring = rings[r]
            let live = ring.roster.range
            guard !live.isEmpty else { continue }
            for (w, length) in ring.windows.enumerated() {
                // Tile k leaves window w at (k + 1)·hop + length.
                let lo = max(Time.floorDiv(clock - length, ring.hop), live.lowerBound)
                let hi = min(Time.floorDiv(time - length, ring.hop) - 1, live.upperBound - 1)
                guard lo <= hi else { continue }
                for k in lo...hi where ring.roster.bucket(k) != nil {
                    boundaries.append(Boundary(time: (k + 1) * ring.hop + length, ring: r, window: w, tile: k))
                }
            }
        }
        guard !boundaries.isEmpty else { return }
        boundaries.sort { ($0.time, $0.ring, $0.window) < ($1.time, $1.ring, $1.window) }
        var i = 0
        while i < boundaries.count {
            let at = boundaries[i].time
            while i < boundaries.count && boundaries[i].time == at {
                expire(boundaries[i])
                i += 1
            }
            if at < time { flush(at: at) }
        }
    }

    /// Tile `b.tile` leaves window `b.window` of ring `b.ring`: rebuild the window of each entity
    /// holding that tile from its later tiles; free the tiles once they leave the longest window.
    private mutating func expire(_ b: Boundary) {
        guard let bucket = rings[b.ring].roster.bucket(b.tile) else { return }
        for s in bucket {
            let e = rings[b.ring].slotEntity[Int(s)]
            rings[b.ring].slots(of: e, fromTile: b.tile + 1, into: &slotScratch)
            var v = RecomputeVisitor(ring: b.ring, window: b.window, entity: Int(e), slots: slotScratch)
            kernels.forEach(&v)
            markDirty(e)
        }
        if b.window == rings[b.ring].windows.count - 1 {
            for s in bucket {
                var v = ReleaseTileVisitor(ring: b.ring, slot: s)
                kernels.forEach(&v)
                rings[b.ring].remove(slot: s)
            }
            rings[b.ring].roster.drop(below: b.tile + 1)
        }
    }

    @inline(__always)
    private mutating func markDirty(_ e: UInt32) {
        if dirtyEpoch[Int(e)] != epoch {
            dirtyEpoch[Int(e)] = epoch
            dirty.append(e)
        }
    }

    private mutating func flush(at time: Micros) {
        guard !dirty.isEmpty else { return }
        for e in dirty {
            emissions.eventTimes.append(time)
            emissions.entityIds.append(e)
            entities.appendKey(e, to: &emissions.keys)
        }
        var v = FinalizeVisitor(entities: dirty, features: emissions.features)
        emissions.features = []
        kernels.forEach(&v)
        emissions.features = v.features
        dirty.removeAll(keepingCapacity: true)
        epoch &+= 1
        if epoch == 0 {
            for i in dirtyEpoch.indices { dirtyEpoch[i] = 0 }
            epoch = 1
        }
    }

    private mutating func addEntities() {
        let n = entities.count
        for r in rings.indices { rings[r].addEntities(upTo: n) }
        dirtyEpoch.append(contentsOf: repeatElement(0, count: n - dirtyEpoch.count))
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
        var bytes = entities.memory + dirtyEpoch.capacity * 4
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
        var v = SerializeVisitor(writer: w)
        var copy = kernels
        copy.forEach(&v)
        w = v.writer
    }

    init(spec: ViewSpec, from r: inout ByteReader) throws {
        self.init(spec: spec)
        try r.expect("view")
        let fingerprint = try r.read(String.self)
        guard fingerprint == spec.fingerprint else {
            throw StateMismatchError(view: spec.name, saved: fingerprint, current: spec.fingerprint)
        }
        clock = try r.read()
        entities = try EntityIndex(keyTypes: spec.keyTypes, from: &r)
        let ringCount = try r.count(limit: 1024)
        guard ringCount == rings.count else { throw StateFormatError(description: "view \(spec.name): ring count differs") }
        for i in rings.indices { try rings[i].restore(from: &r) }
        var v = RestoreVisitor(reader: r)
        kernels.forEach(&v)
        if let error = v.error { throw error }
        r = v.reader
        dirtyEpoch = Array(repeating: 0, count: entities.count)
    }
}

/// Restoring state saved under another definition of the view.
public struct StateMismatchError: Error, Sendable, CustomStringConvertible {
    public var view: String
    public var saved: String
    public var current: String
    public var description: String {
        "the saved state of view \(view) was computed with another definition; rebuild it (delete the view's state and replay or backfill).\nsaved:\n\(saved)\ncurrent:\n\(current)"
    }
}

// MARK: - Visitors

private struct GrowVisitor: KernelVisitor {
    let count: Int
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) { c.addEntities(upTo: count) }
}

private struct InitTileVisitor: KernelVisitor {
    let ring: Int
    let slot: UInt32
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) {
        if c.placement.ring == ring { c.initTile(slot) }
    }
}

private struct ReleaseTileVisitor: KernelVisitor {
    let ring: Int
    let slot: UInt32
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) {
        if c.placement.ring == ring { c.releaseTile(slot) }
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

private struct ApplyVisitor: KernelVisitor {
    let row: Int
    let entity: Int
    let time: Micros
    let slots: [UInt32]
    let firstWindows: [Int]
    @inline(__always)
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) {
        if let r = c.placement.ring {
            c.apply(row: row, entity: entity, time: time, slot: slots[r], firstWindow: firstWindows[r])
        } else {
            c.apply(row: row, entity: entity, time: time, slot: TileRing.none, firstWindow: 0)
        }
    }
}

private struct RecomputeVisitor: KernelVisitor {
    let ring: Int
    let window: Int
    let entity: Int
    let slots: [UInt32]
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) {
        if c.placement.ring == ring { c.recompute(window: window, entity: entity, slots: slots) }
    }
}

private struct FinalizeVisitor: KernelVisitor {
    let entities: [UInt32]
    var features: [Column]
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) {
        c.finalize(entities: entities, into: &features)
    }
}

private struct MemoryVisitor: KernelVisitor {
    var bytes = 0
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) {
        let stride = MemoryLayout<K.Partial>.stride
        bytes += c.tiles.capacity * stride
        for w in c.windows { bytes += w.capacity * stride }
        bytes += c.kernel.storageBytes
    }
}

private struct SerializeVisitor: KernelVisitor {
    var writer: ByteWriter
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) { c.serialize(into: &writer) }
}

private struct RestoreVisitor: KernelVisitor {
    var reader: ByteReader
    var error: (any Error)?
    mutating func visit<K: AggregateKernel>(_ c: inout KernelColumn<K>) {
        guard error == nil else { return }
        do { try c.restore(from: &reader) } catch { self.error = error }
    }
}
