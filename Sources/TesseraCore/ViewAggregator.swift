import CIntrinsics

/// The windowed aggregation of one feature view over one partition.
///
/// State is one record per entity (`ViewLayout`) plus each entity's tiles (`TileDeque`): an event
/// touches its entity's record, the newest tile of each ring, and whatever its sketches hold. A
/// batch is applied in one pass over its rows, in arrival order:
///
///     row ─▶ stream time moved? cross the tile boundaries on the way (time order):
///              every entity holding the leaving tile changes and emits at the boundary
///         ─▶ the row's entity: its emission, its tile on each ring, every kernel's update
///
/// Emissions are numbered as they are made (one per entity and stream time, in time order), and
/// an emission's values are written right after each change that makes or touches it, while the
/// entity's record is in cache (a later change at the same time writes them again).
///
/// Emissions are *open* while stream time stays at their time (more events at that time may
/// still change them) and *closed* once it moves on. The closed stream is the same however the
/// input is cut into batches, and however often the state is checkpointed and restored.
///
/// This file is long (~780 lines) on purpose: applying a batch, making emissions and crossing
/// tile boundaries share the record layout and the scratch buffers through `private` members and
/// `@inline(__always)` helpers, and are one hot loop; split over files they would need those
/// members widened to the module. The kernels, the layout and the rings live in their own files.
public struct ViewAggregator: Sendable {
    public let spec: ViewSpec
    let program: ViewProgram
    let layout: ViewLayout
    var keys: KeyIndex
    /// Entity records, indexed by entity id.
    var records: Slab
    var rings: [RingStore]
    var kernels: KernelSet
    var distinctStores: [DistinctStore]
    var quantileStores: [QuantileStore]
    var dictionaries: [StringDictionary]
    /// The stream time this view has processed up to; `.min` before the first event.
    public internal(set) var clock: Micros = .min
    /// No tile leaves a window before this time: every window's boundaries are multiples of its
    /// ring's hop, so it is the first multiple of a hop after `clock`.
    var nextBoundary: Micros = .min
    /// Numbers the batches: a record's emission index belongs to this batch when its epoch is this.
    var epoch: UInt32 = 0
    /// Entities whose row at the current stream time is still open (part of the state).
    var openEntities: [UInt32] = []

    /// Emissions produced since the caller last cleared them.
    public internal(set) var emissions: EmissionBatch

    // Per batch, kept to avoid allocating.
    var ids: [UInt32] = []
    var inputs = InputBuffers()
    var scratch: Scratch
    /// `scratch`'s buffers.
    var buffers: Buffers
    /// Where the records and rings are, for the batch being applied (see `makeUnique`).
    var recordCore: SlabCore
    /// Emissions made in this batch (in `scratch`), and how many of them are closed.
    var made = 0
    var closedUpTo = 0
    var filterResults: [[Bool]] = []
    var predicateScratch: [[UInt8]] = []
    var boundaries: [Boundary] = []

    struct Boundary {
        var time: Micros
        var ring: Int
        var window: Int
        var tile: Int64
    }

    /// Raw per-batch buffers: the rows' tiles, the ring cores, and this batch's emissions — time,
    /// entity, closer, key (single int64 join key) and values (column-major: feature f's values
    /// from `f · capacity` on, see `RowSlots`) — until they are materialised into `emissions`.
    /// Plain pointers (no reference counting, no exclusivity checks in the loops); `Scratch` owns
    /// the memory.
    struct Buffers: BitwiseCopyable, @unchecked Sendable {  // valid for the batch being applied, see `Scratch`
        var tiles: UnsafeMutablePointer<TileRef>
        var rings: UnsafeMutablePointer<RingCore>
        var times: UnsafeMutablePointer<Micros>
        var entities: UnsafeMutablePointer<UInt32>
        var closers: UnsafeMutablePointer<Int32>
        var keys: UnsafeMutablePointer<Int64>
        var values: UnsafeMutablePointer<UInt64>
        var valid: UnsafeMutablePointer<Bool>
        /// Per distinct store, where its exact sets are.
        var sets: UnsafeMutablePointer<UnsafePointer<SlabCore>>
        /// Emissions room is kept for.
        var capacity: Int
    }

    final class Scratch: @unchecked Sendable {  // used by one view value at a time (replaced when shared)
        private(set) var buffers: Buffers
        let features: Int

        init(rings: Int, features: Int, distincts: Int) {
            self.features = features
            buffers = Buffers(tiles: .allocate(capacity: max(1, rings)), rings: .allocate(capacity: max(1, rings)),
                              times: .allocate(capacity: 1), entities: .allocate(capacity: 1), closers: .allocate(capacity: 1),
                              keys: .allocate(capacity: 1), values: .allocate(capacity: 1), valid: .allocate(capacity: 1),
                              sets: .allocate(capacity: max(1, distincts)), capacity: 0)
            reserve(4_096, keeping: 0)
        }

        deinit {
            buffers.tiles.deallocate()
            buffers.rings.deallocate()
            buffers.times.deallocate()
            buffers.entities.deallocate()
            buffers.closers.deallocate()
            buffers.keys.deallocate()
            buffers.values.deallocate()
            buffers.valid.deallocate()
            buffers.sets.deallocate()
        }

        /// Room for `n` emissions, keeping the first `keep`.
        func reserve(_ n: Int, keeping keep: Int) {
            guard n > buffers.capacity else { return }
            let capacity = max(n, buffers.capacity * 2)
            func grow<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<T> {
                let q = UnsafeMutablePointer<T>.allocate(capacity: max(1, capacity))
                q.moveInitialize(from: p, count: keep)
                p.deallocate()
                return q
            }
            /// Each feature's first `keep` values move to the feature's column in the larger buffer.
            func regrow<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<T> {
                let q = UnsafeMutablePointer<T>.allocate(capacity: max(1, capacity * features))
                for f in 0..<features { (q + f * capacity).moveInitialize(from: p + f * buffers.capacity, count: keep) }
                p.deallocate()
                return q
            }
            var b = buffers
            b.times = grow(b.times)
            b.entities = grow(b.entities)
            b.closers = grow(b.closers)
            b.keys = grow(b.keys)
            b.values = regrow(b.values)
            b.valid = regrow(b.valid)
            b.capacity = capacity
            buffers = b
        }
    }

    public init(spec: ViewSpec) {
        self.spec = spec
        let program = ViewProgram(spec: spec)
        self.program = program
        layout = program.layout
        keys = KeyIndex(keyTypes: spec.keyTypes)
        records = Slab(itemBytes: program.layout.stride)
        recordCore = records.core
        rings = (0..<program.layout.ringCount).map { RingStore(layout: program.layout.ring($0)) }
        kernels = program.kernels
        distinctStores = Array(repeating: DistinctStore(), count: program.distinctStores)
        quantileStores = Array(repeating: QuantileStore(), count: program.quantileStores)
        dictionaries = Array(repeating: StringDictionary(), count: program.dictionaries)
        emissions = EmissionBatch(keyTypes: spec.keyTypes, featureTypes: program.types)
        scratch = Scratch(rings: program.layout.ringCount, features: spec.features.count, distincts: program.distinctStores)
        buffers = scratch.buffers
    }

    public var entityCount: Int { keys.count }

    /// The join-key values of an entity id that appears in `emissions`.
    public func key(of entity: UInt32) -> [Value] {
        var columns = spec.keyTypes.map(Column.init(type:))
        if keys.singleInt {
            columns[0].append(int: records.pointer(entity).load(fromByteOffset: ViewLayout.keyOffset, as: Int64.self))
        } else {
            keys.appendKey(entity, to: &columns)
        }
        return columns.map { $0.value(at: 0)! }
    }

    /// Whether a copy of this value (a checkpoint being written) shares its state: anything that
    /// writes to it — applying a batch, `currentRows` — first copies all of it.
    public mutating func isStateShared() -> Bool { records.isShared() }

    // MARK: - Applying a batch

    /// Gives this value its own storage where it shares some with a copy (a checkpoint being
    /// written), and refreshes the cores the hot loops use. Called before any write.
    private mutating func makeUnique() {
        records.makeUnique()
        recordCore = records.core
        keys.makeUnique()
        for r in rings.indices { rings[r].makeUnique() }
        for s in distinctStores.indices { distinctStores[s].makeUnique() }
        for s in quantileStores.indices { quantileStores[s].makeUnique() }
        if !isKnownUniquelyReferenced(&scratch) { scratch = Scratch(rings: rings.count, features: spec.features.count, distincts: distinctStores.count) }
        buffers = scratch.buffers
        for r in rings.indices { buffers.rings[r] = rings[r].core }
        for s in distinctStores.indices { buffers.sets[s] = distinctStores[s].cores }
    }

    /// Aggregates the rows of `batch` for which `accepted[i]` (`streamTimes[i]` is the partition's
    /// stream time after row `i`), then moves the clock to `end`, crossing the boundaries on the
    /// way. New emissions are appended to `emissions`. Accepted rows have every key field set.
    /// `lateness` is the source's allowed lateness (which tiles can still change).
    mutating func apply(_ batch: ColumnBatch?, accepted: [Bool], streamTimes: [Micros], end: Micros, lateness: Micros,
                        closeAll: Bool = false) {
        makeUnique()
        epoch = epoch == UInt32.max - 1 ? 0 : epoch + 1
        let n = batch?.count ?? 0
        made = 0
        closedUpTo = 0
        // Rows left open by the previous batch (at the current stream time) continue here: they
        // may still change at this time, and close when stream time moves on.
        if !openEntities.isEmpty && (n > 0 || end > clock || closeAll) {
            for e in openEntities {
                let record = recordCore.pointer(e)
                emit(e, at: clock, record)
                finalize(record)
            }
            openEntities.removeAll(keepingCapacity: true)
        }
        if let batch, n > 0 {
            let added = keys.resolve(batch, keyFields: spec.keyFields, use: accepted, into: &ids)
            if added > 0 { addEntities(added, batch) }
            prepareKernels(batch)
            aggregate(batch, streamTimes: streamTimes, lateness: lateness)
        }
        if end > clock { advance(to: end, closer: Int32(n), lateness: lateness) }
        // Rows at the final stream time stay open unless the run ends here.
        if closeAll {
            close(upTo: clock + 1, by: Int32(n))
        } else {
            for i in closedUpTo..<made { openEntities.append(buffers.entities[i]) }
        }
        materialize()
    }

    /// New entities: records from the template, with their key.
    private mutating func addEntities(_ added: Int, _ batch: ColumnBatch) {
        let first = keys.count - added
        for e in first..<keys.count {
            let id = records.allocate()
            precondition(Int(id) == e)
            records.pointer(id).copyMemory(from: layout.template, byteCount: layout.stride)
        }
        guard keys.singleInt else { return }
        let column = batch.columns[spec.keyFields[0]]
        for i in 0..<batch.count where ids[i] != KeyIndex.noEntity && Int(ids[i]) >= first {
            records.pointer(ids[i]).storeBytes(of: column.ints[i], toByteOffset: ViewLayout.keyOffset, as: Int64.self)
        }
    }

    private mutating func prepareKernels(_ batch: ColumnBatch) {
        while filterResults.count < program.predicates.count { filterResults.append([]) }
        for (i, p) in program.predicates.enumerated() {
            p.evaluate(on: batch, into: &filterResults[i], scratch: &predicateScratch)
        }
        let n = batch.count
        var slot = 0
        func next() -> KernelInputs {
            defer { slot += 1 }
            return inputs.inputs(slot, rows: n)
        }
        ids.withUnsafeBufferPointer { ids in
            let e = ids.baseAddress!
            for i in kernels.counts.indices { kernels.counts[i].prepare(batch, entities: e, filters: filterResults, buffers: next()) }
            for i in kernels.moments.indices { kernels.moments[i].prepare(batch, entities: e, filters: filterResults, buffers: next()) }
            for i in kernels.maxes.indices {
                var none = StringDictionary.empty
                kernels.maxes[i].prepare(batch, entities: e, filters: filterResults, buffers: next(), strings: &none)
            }
            for i in kernels.mins.indices {
                var none = StringDictionary.empty
                kernels.mins[i].prepare(batch, entities: e, filters: filterResults, buffers: next(), strings: &none)
            }
            for i in kernels.firsts.indices {
                let d = kernels.firsts[i].dictionary
                var strings = d >= 0 ? dictionaries[d] : StringDictionary.empty
                if d >= 0 { dictionaries[d] = StringDictionary.empty }  // the kernel holds the only reference while it interns
                kernels.firsts[i].prepare(batch, entities: e, filters: filterResults, buffers: next(), strings: &strings)
                if d >= 0 { dictionaries[d] = strings }
            }
            for i in kernels.lasts.indices {
                let d = kernels.lasts[i].dictionary
                var strings = d >= 0 ? dictionaries[d] : StringDictionary.empty
                if d >= 0 { dictionaries[d] = StringDictionary.empty }  // the kernel holds the only reference while it interns
                kernels.lasts[i].prepare(batch, entities: e, filters: filterResults, buffers: next(), strings: &strings)
                if d >= 0 { dictionaries[d] = strings }
            }
            for i in kernels.distincts.indices { kernels.distincts[i].prepare(batch, entities: e, filters: filterResults, buffers: next()) }
            for i in kernels.quantiles.indices { kernels.quantiles[i].prepare(batch, entities: e, filters: filterResults, buffers: next()) }
        }
    }

    /// Starts loading a whole record (its lines are scattered by the entity, not by the row).
    @inline(__always)
    private func prefetch(record: UnsafeMutableRawPointer) {
        var o = 0
        while o < layout.stride {
            tessera_prefetch(record + o)
            o &+= 64
        }
    }

    /// How many rows ahead a record is prefetched.
    static let distance = 16

    /// The row loop.
    private mutating func aggregate(_ batch: ColumnBatch, streamTimes: [Micros], lateness: Micros) {
        let n = batch.count
        let refs = buffers.tiles
        for i in 0..<n {
            let now = streamTimes[i]
            if now > clock { advance(to: now, closer: Int32(i), lateness: lateness) }
            // Cold entities' records are cache misses: ask for them some rows ahead, and for what
            // they point to (the newest tiles, the sets) once they have arrived.
            if i &+ Self.distance < n {
                let ahead = ids[i &+ Self.distance]
                if ahead != KeyIndex.noEntity { prefetch(record: recordCore.pointer(ahead)) }
            }
            if i &+ Self.distance / 2 < n {
                let ahead = ids[i &+ Self.distance / 2]
                if ahead != KeyIndex.noEntity { prefetchPointees(row: i &+ Self.distance / 2, recordCore.pointer(ahead)) }
            }
            let e = ids[i]
            guard e != KeyIndex.noEntity else { continue }
            let record = recordCore.pointer(e)
            emit(e, at: now, record)
            let t = batch.eventTimes[i]
            for r in 0..<rings.count { refs[r] = tile(for: e, record, ring: r, time: t, now: now) }
            update(row: i, time: t, now: now, record, refs)
            finalize(record)
        }
    }

    /// Starts loading the newest block tile of each ring and each exact set slot row `i` needs.
    @inline(__always)
    private func prefetchPointees(row i: Int, _ record: UnsafeMutableRawPointer) {
        for r in 0..<rings.count {
            let core = buffers.rings[r]
            let h = core.header(record)
            if h.sizeClass > 0 && h.count > 0 { tessera_prefetch(core.view(record, h).tile(Int(h.count) - 1)) }
        }
        for k in kernels.distincts.indices { kernels.distincts[k].prefetch(i, record, cores: buffers.sets[kernels.distincts[k].store]) }
    }

    /// The tile of event time `t` on ring `r` for an entity, created if needed (nil when the tile
    /// is outside every window of the ring).
    @inline(__always)
    private mutating func tile(for e: UInt32, _ record: UnsafeMutableRawPointer, ring r: Int, time t: Micros, now: Micros) -> TileRef {
        let core = buffers.rings[r]
        let ring = core.layout
        let view = core.view(record)
        // The common case, in the row loop: the event falls in the entity's newest tile.
        if view.count > 0 {
            let k = view.index(view.count - 1)
            let start = k &* ring.hop
            if t >= start && t &- start < ring.hop {
                return TileRef(pointer: view.tile(view.count - 1), index: k, first: ring.firstWindowContaining(tile: k, at: now),
                               position: view.count - 1)
            }
        }
        return otherTile(for: e, record, ring: r, time: t, now: now)
    }

    /// `tile(for:…)` for an event outside the entity's newest tile: a new tile, or a late event's.
    @inline(never)
    private mutating func otherTile(for e: UInt32, _ record: UnsafeMutableRawPointer, ring r: Int, time t: Micros, now: Micros) -> TileRef {
        let core = buffers.rings[r]
        let ring = core.layout
        let view = core.view(record)
        let k = Time.floorDiv(t, ring.hop)
        let first = ring.firstWindowContaining(tile: k, at: now)
        guard first < ring.windows.count else { return TileRef(pointer: nil, index: k, first: first, position: -1) }
        var q = 0
        if view.count > 0 {
            let newest = view.index(view.count - 1)
            if newest < k {
                q = view.count
            } else {
                // A late event: walk back to its tile or to where it belongs.
                var p = view.count - 2
                while p >= 0 && view.index(p) > k { p -= 1 }
                if p >= 0 && view.index(p) == k { return TileRef(pointer: view.tile(p), index: k, first: first, position: p) }
                q = p + 1
            }
        }
        let tile = rings[r].insert(record, at: q, index: k)
        rings[r].roster.append(entity: e, tile: k)
        // Windows that already left the tile behind count it among the tiles before their start.
        for w in 0..<first where ring.startOffsets[w] >= 0 {
            let o = ring.startOffsets[w]
            record.storeBytes(of: record.load(fromByteOffset: o, as: UInt32.self) + 1, toByteOffset: o, as: UInt32.self)
        }
        let selectors = program.selectors(ring: r)
        if selectors.count > 0 {
            let after = core.view(record)
            for s in selectors {
                switch s.family {
                case .max: kernels.maxes[s.index].created(record, after, position: q, index: k)
                case .min: kernels.mins[s.index].created(record, after, position: q, index: k)
                case .first: kernels.firsts[s.index].created(record, after, position: q, index: k)
                case .last: kernels.lasts[s.index].created(record, after, position: q, index: k)
                default: break
                }
            }
        }
        return TileRef(pointer: tile, index: k, first: first, position: q)
    }

    @inline(__always)
    private mutating func update(row i: Int, time t: Micros, now: Micros, _ record: UnsafeMutableRawPointer, _ refs: UnsafePointer<TileRef>) {
        let cores = UnsafePointer(buffers.rings)
        // Through buffer pointers: no bounds checks, and a kernel the compiler leaves out of line
        // is passed by address, not copied for each call.
        kernels.counts.withUnsafeBufferPointer { for k in $0.indices { $0[k].update(i, record, refs) } }
        kernels.moments.withUnsafeBufferPointer { for k in $0.indices { $0[k].update(i, record, refs) } }
        kernels.maxes.withUnsafeBufferPointer { for k in $0.indices { $0[k].update(i, time: t, record, refs, cores) } }
        kernels.mins.withUnsafeBufferPointer { for k in $0.indices { $0[k].update(i, time: t, record, refs, cores) } }
        kernels.firsts.withUnsafeBufferPointer { for k in $0.indices { $0[k].update(i, time: t, record, refs, cores) } }
        kernels.lasts.withUnsafeBufferPointer { for k in $0.indices { $0[k].update(i, time: t, record, refs, cores) } }
        // Kernels with stores of their own: touched only when the view has them (an access to an
        // empty array of stores would copy it).
        updateDistincts(row: i, now: now, record, refs)
        if !kernels.quantiles.isEmpty { updateQuantiles(row: i, record, refs) }
    }

    @inline(__always)
    private mutating func updateDistincts(row i: Int, now: Micros, _ record: UnsafeMutableRawPointer, _ refs: UnsafePointer<TileRef>) {
        let cores = UnsafePointer(buffers.rings)
        for k in kernels.distincts.indices {
            let kernel = kernels.distincts[k]
            if kernel.updateInPlace(i, now: now, record, refs, cores, cores: buffers.sets[kernel.store]) { continue }
            if kernel.slidesSketch(record) { updateSketch(k, row: i, record, refs) } else { updateDistinct(k, row: i, now: now, record, refs) }
        }
    }

    @inline(never)
    private mutating func updateSketch(_ k: Int, row i: Int, _ record: UnsafeMutableRawPointer, _ refs: UnsafePointer<TileRef>) {
        kernels.distincts.withUnsafeBufferPointer { kernels in
            let kernel = kernels.baseAddress.unsafelyUnwrapped + k
            kernel.pointee.updateSketch(i, record, refs[kernel.pointee.shape.ring], store: &distinctStores[kernel.pointee.store])
        }
    }

    /// A distinct update that allocates, rebuilds or turns a set into a sketch, or a lifetime sketch's.
    @inline(never)
    private mutating func updateDistinct(_ k: Int, row i: Int, now: Micros, _ record: UnsafeMutableRawPointer, _ refs: UnsafePointer<TileRef>) {
        let rings = UnsafePointer(buffers.rings)
        // Through a buffer pointer: the kernel is not copied for the call.
        kernels.distincts.withUnsafeBufferPointer { kernels in
            kernels[k].update(i, now: now, record, refs, rings, store: &distinctStores[kernels[k].store])
        }
    }

    @inline(never)
    private mutating func updateQuantiles(row i: Int, _ record: UnsafeMutableRawPointer, _ refs: UnsafePointer<TileRef>) {
        for k in kernels.quantiles.indices {
            kernels.quantiles[k].update(i, record, refs, store: &quantileStores[kernels.quantiles[k].store])
        }
    }

    // MARK: Emissions

    /// The emission of `e` at `time`: shared with an earlier change of the same entity at the same
    /// time in this batch, or new.
    @inline(__always)
    private mutating func emit(_ e: UInt32, at time: Micros, _ record: UnsafeMutableRawPointer) {
        if record.load(fromByteOffset: ViewLayout.epochOffset, as: UInt32.self) == epoch {
            let last = Int(record.load(fromByteOffset: ViewLayout.emissionOffset, as: UInt32.self))
            if last < made && buffers.times[last] == time && buffers.entities[last] == e { return }
        }
        let index = made
        if index == buffers.capacity {
            scratch.reserve(index + 1, keeping: index)
            buffers = scratch.buffers
        }
        let s = buffers
        s.times[index] = time
        s.entities[index] = e
        s.closers[index] = -1
        s.keys[index] = record.load(fromByteOffset: ViewLayout.keyOffset, as: Int64.self)
        made = index + 1
        record.storeBytes(of: epoch, toByteOffset: ViewLayout.epochOffset, as: UInt32.self)
        record.storeBytes(of: UInt32(index), toByteOffset: ViewLayout.emissionOffset, as: UInt32.self)
        record.storeBytes(of: time, toByteOffset: ViewLayout.emittedAtOffset, as: Int64.self)
    }

    /// Where one emission's values go in the column-major scratch: feature f at `f · stride`.
    struct RowSlots {
        let bits: UnsafeMutablePointer<UInt64>
        let present: UnsafeMutablePointer<Bool>
        let stride: Int

        @inline(__always)
        func put(_ f: Int, _ v: UInt64?) {
            bits[f &* stride] = v ?? 0
            present[f &* stride] = v != nil
        }

        @inline(__always)
        func put(_ f: Int, count v: UInt64) {
            bits[f &* stride] = v
            present[f &* stride] = true
        }

        @inline(__always)
        func put(_ o: KernelOutput, _ v: UInt64?) { put(o.feature, v) }
    }

    /// Writes the values of the entity's current emission (this batch's) from its state.
    @inline(__always)
    private mutating func finalize(_ record: UnsafeMutableRawPointer) {
        let index = Int(record.load(fromByteOffset: ViewLayout.emissionOffset, as: UInt32.self))
        let row = RowSlots(bits: buffers.values + index, present: buffers.valid + index, stride: buffers.capacity)
        if let counts = program.countOutputs {
            for i in 0..<program.countOutputCount {
                let op = counts[i]
                row.put(Int(op.feature), count: record.load(fromByteOffset: Int(op.offset), as: UInt64.self))
            }
        }
        if let values = program.valueOutputs {
            for i in 0..<program.valueOutputCount {
                let op = values[i]
                let at = record + Int(op.offset), f = Int(op.feature)
                switch op.kind {
                case .moments(let mode) where mode == .sum || mode == .mean:
                    let p = at.load(as: MomentsPartial.Sums.self)
                    row.put(f, MomentsPartial(count: p.count, sum: p.sum, squares: .zero).finalize(mode))
                case .moments(let mode):
                    row.put(f, at.load(as: MomentsPartial.self).finalize(mode))
                case .max: row.put(f, Self.selection(MaxRule.self, at, front: op.front, record))
                case .min: row.put(f, Self.selection(MinRule.self, at, front: op.front, record))
                case .first: row.put(f, Self.selection(FirstRule.self, at, front: op.front, record))
                case .last: row.put(f, Self.selection(LastRule.self, at, front: op.front, record))
                }
            }
        }
        if !kernels.quantiles.isEmpty { finalizeQuantiles(record, row) }
    }

    /// A selection kernel's value: its back partial at `at` merged with its front's at `front` (-1:
    /// a lifetime selection, which has only the one; see `SelectionKernel`).
    @inline(__always)
    private static func selection<R: SelectionRule>(_ rule: R.Type, _ at: UnsafeMutableRawPointer, front: Int32,
                                                     _ record: UnsafeMutableRawPointer) -> UInt64? {
        let back = at.load(as: R.Partial.self)
        return R.value(front < 0 ? back : R.merge(record.load(fromByteOffset: Int(front), as: R.Partial.self), back))
    }

    @inline(never)
    private func finalizeQuantiles(_ record: UnsafeMutableRawPointer, _ row: RowSlots) {
        for k in kernels.quantiles.indices {
            let kernel = kernels.quantiles[k]
            for o in 0..<kernel.shape.outputCount {
                let out = kernel.shape.outputs[o]
                row.put(out, kernel.finalize(record, window: out.window, mode: out.mode, store: quantileStores[kernel.store]))
            }
        }
    }

    /// Marks every emission of this batch with a time before `time` as closed by input row `row`.
    private mutating func close(upTo time: Micros, by row: Int32) {
        let s = buffers
        while closedUpTo < made && s.times[closedUpTo] < time {
            s.closers[closedUpTo] = row
            closedUpTo += 1
        }
    }

    /// Appends this batch's emissions (times, entities, closers, keys, values) to `emissions`.
    private mutating func materialize() {
        let count = made
        guard count > 0 else { return }
        let s = buffers
        emissions.eventTimes.append(contentsOf: UnsafeBufferPointer(start: s.times, count: count))
        emissions.entityIds.append(contentsOf: UnsafeBufferPointer(start: s.entities, count: count))
        emissions.closers.append(contentsOf: UnsafeBufferPointer(start: s.closers, count: count))
        if keys.singleInt {
            emissions.keys[0].ints.append(contentsOf: UnsafeBufferPointer(start: s.keys, count: count))
            emissions.keys[0].validity.appendSet(count: count)
        } else {
            for i in 0..<count { keys.appendKey(s.entities[i], to: &emissions.keys) }
        }
        let features = spec.features.count
        for f in 0..<features {
            if emissions.features[f].type == .string {
                var column = emissions.features[f]
                emissions.features[f] = Column(type: .string)
                dictionaries[dictionary(ofFeature: f)].append(codes: s.values + f * s.capacity, valid: s.valid + f * s.capacity, count: count, to: &column)
                emissions.features[f] = column
            } else {
                emissions.features[f].append(bits: s.values + f * s.capacity, valid: s.valid + f * s.capacity, count: count)
            }
        }
    }

    /// The string dictionary of the first/last kernel whose output string feature `f` is.
    private func dictionary(ofFeature f: Int) -> Int {
        for k in kernels.firsts where k.dictionary >= 0 {
            for o in 0..<k.shape.outputCount where k.shape.outputs[o].feature == f { return k.dictionary }
        }
        for k in kernels.lasts where k.dictionary >= 0 {
            for o in 0..<k.shape.outputCount where k.shape.outputs[o].feature == f { return k.dictionary }
        }
        preconditionFailure("string feature \(f) has no dictionary")
    }

    public mutating func removeAllEmissions() { emissions.removeAll() }

    // MARK: - Current rows

    /// Stores the created timestamps the sinks gave this batch's emissions (`created[i]` is that
    /// of `emissions` row `i`), so that an entity's current row (`currentRows`) carries its own.
    public mutating func recordCreated(_ created: [Micros]) {
        precondition(created.count == emissions.count, "one created timestamp per emission")
        makeUnique()
        for i in 0..<created.count {
            recordCore.pointer(emissions.entityIds[i]).storeBytes(of: created[i], toByteOffset: ViewLayout.createdOffset, as: Int64.self)
        }
    }

    /// The current row of the entities with ids in `ids` — each one's latest emission, computed
    /// again from the state: a value changes only by an emission (an event or a tile leaving a
    /// window), so the state's values now are those of the entity's latest row. Returns the rows
    /// (all open: they are for the online store, not the offline log) and their created
    /// timestamps (an entity without an emission yet is given the stream time). Leaves `emissions`
    /// as it was.
    public mutating func currentRows(_ ids: Range<Int>) -> (rows: EmissionBatch, created: [Micros]) {
        let ids = ids.clamped(to: 0..<keys.count)
        makeUnique()
        var kept = EmissionBatch(keyTypes: spec.keyTypes, featureTypes: program.types)
        swap(&kept, &emissions)
        defer { swap(&kept, &emissions) }
        epoch = epoch == UInt32.max - 1 ? 0 : epoch + 1
        made = 0
        closedUpTo = 0
        var created: [Micros] = []
        created.reserveCapacity(ids.count)
        for e in ids {
            let record = recordCore.pointer(UInt32(e))
            let time = record.load(fromByteOffset: ViewLayout.emittedAtOffset, as: Int64.self)
            emit(UInt32(e), at: time == .min ? clock : time, record)
            finalize(record)
            created.append(record.load(fromByteOffset: ViewLayout.createdOffset, as: Int64.self))
        }
        materialize()
        made = 0
        return (emissions, created)
    }

    // MARK: Boundaries

    /// Moves the clock to `time` (later than it), crossing the tile boundaries on the way.
    @inline(__always)
    private mutating func advance(to time: Micros, closer: Int32, lateness: Micros) {
        if time >= nextBoundary {
            crossBoundaries(through: time, closer: closer, lateness: lateness)
        } else {
            clock = time
            close(upTo: time, by: closer)
        }
    }

    /// Crosses every tile boundary in `(clock, time]`, in time order, before input row `closer`.
    private mutating func crossBoundaries(through time: Micros, closer: Int32, lateness: Micros) {
        defer {
            clock = time
            close(upTo: time, by: closer)
            nextBoundary = .max
            for r in 0..<layout.ringCount {
                let hop = layout.ring(r).hop
                nextBoundary = min(nextBoundary, (Time.floorDiv(time, hop) + 1) * hop)
            }
        }
        guard clock != .min else { return }
        boundaries.removeAll(keepingCapacity: true)
        for r in rings.indices {
            let live = rings[r].roster.range
            guard !live.isEmpty else { continue }
            let ring = layout.ring(r)
            for w in 0..<ring.windows.count {
                let length = Int64(ring.windows[w])
                // Tile k leaves window w at (k + 1)·hop + length.
                let lo = max(Time.floorDiv(clock - length, ring.hop), live.lowerBound)
                let hi = min(Time.floorDiv(time - length, ring.hop) - 1, live.upperBound - 1)
                guard lo <= hi else { continue }
                for k in lo...hi where rings[r].roster.bucket(k) != nil {
                    boundaries.append(Boundary(time: (k + 1) * ring.hop + length, ring: r, window: w, tile: k))
                }
            }
        }
        guard !boundaries.isEmpty else { return }
        if boundaries.count > 1 { boundaries.sort { ($0.time, $0.ring, $0.window) < ($1.time, $1.ring, $1.window) } }
        // Taken out while crossing (crossing mutates the view), then put back to keep its capacity.
        var crossing: [Boundary] = []
        swap(&crossing, &boundaries)
        for b in crossing { cross(b, lateness: lateness) }
        swap(&crossing, &boundaries)
    }

    /// Tile `b.tile` leaves window `b.window`: every entity holding it changes at `b.time`.
    private mutating func cross(_ b: Boundary, lateness: Micros) {
        guard let bucket = rings[b.ring].roster.bucket(b.tile) else { return }
        let longest = b.window == layout.ring(b.ring).longest
        let core = buffers.rings[b.ring]
        let startOffset = core.layout.startOffsets[b.window]
        bucket.withUnsafeBufferPointer { entities in
            for (i, e) in entities.enumerated() {
                // The bucket's entities are scattered: start loading their records early, and the
                // leaving tile once the record has arrived.
                if i &+ Self.distance < entities.count { prefetch(record: recordCore.pointer(entities[i &+ Self.distance])) }
                if i &+ Self.distance / 2 < entities.count {
                    let ahead = recordCore.pointer(entities[i &+ Self.distance / 2])
                    let h = core.header(ahead)
                    if h.sizeClass > 0 {
                        let p = startOffset < 0 ? 0 : Int(ahead.load(fromByteOffset: startOffset, as: UInt32.self))
                        tessera_prefetch(core.view(ahead, h).tile(p))
                    }
                }
                let record = recordCore.pointer(e)
                emit(e, at: b.time, record)
                expire(record, ring: b.ring, window: b.window, tile: b.tile, at: b.time, lateness: lateness)
                finalize(record)
            }
        }
        if longest { rings[b.ring].roster.drop(below: b.tile + 1) }
    }

    /// An entity's tile `k` (the first in the window) leaves window `w` of ring `r` at `time`.
    private mutating func expire(_ record: UnsafeMutableRawPointer, ring r: Int, window w: Int, tile k: Int64, at time: Micros,
                                 lateness: Micros) {
        let core = buffers.rings[r]
        let ring = core.layout
        let view = core.view(record)
        let startOffset = ring.startOffsets[w]
        let p = startOffset < 0 ? 0 : Int(record.load(fromByteOffset: startOffset, as: UInt32.self))
        let tile = view.tile(p)
        assert(p < view.count && view.index(p) == k, "tile \(k) is not the first of window \(w)")
        for x in program.expiries(ring: r, window: w) {
            switch x.family {
            case .count: kernels.counts[x.index].expire(record, tile, window: x.window)
            case .moments: kernels.moments[x.index].expire(record, tile, window: x.window)
            case .distinct, .quantile: expireOwner(x, record, tile, index: k)
            default: break
            }
        }
        if w == ring.longest {
            for x in program.owners(ring: r) { drop(x, record, tile, index: k, last: view.count == 1) }
            rings[r].popFront(record)
            for o in ring.startOffsets where o >= 0 {
                record.storeBytes(of: record.load(fromByteOffset: o, as: UInt32.self) - 1, toByteOffset: o, as: UInt32.self)
            }
        } else {
            record.storeBytes(of: UInt32(p + 1), toByteOffset: startOffset, as: UInt32.self)
        }
        // Selections: a front tile left: the next is the first; a back tile left: the front was
        // used up, so the window is split again.
        let pivotOffset = ring.pivotOffsets[w]
        guard pivotOffset >= 0 else { return }
        let after = core.view(record)
        let start = startOffset < 0 ? 0 : p + 1
        guard k >= record.load(fromByteOffset: pivotOffset, as: Int64.self) else {
            for s in program.selections(ring: r, window: w) {
                switch s.family {
                case .max: kernels.maxes[s.index].refreshFront(record, after, start: start)
                case .min: kernels.mins[s.index].refreshFront(record, after, start: start)
                case .first: kernels.firsts[s.index].refreshFront(record, after, start: start)
                case .last: kernels.lasts[s.index].refreshFront(record, after, start: start)
                default: break
                }
            }
            return
        }
        let pivot = max(k + 1, Time.floorDiv(time - lateness, ring.hop))
        for s in program.selections(ring: r, window: w) {
            switch s.family {
            case .max: kernels.maxes[s.index].split(record, after, start: start, pivot: pivot)
            case .min: kernels.mins[s.index].split(record, after, start: start, pivot: pivot)
            case .first: kernels.firsts[s.index].split(record, after, start: start, pivot: pivot)
            case .last: kernels.lasts[s.index].split(record, after, start: start, pivot: pivot)
            default: break
            }
        }
        record.storeBytes(of: pivot, toByteOffset: pivotOffset, as: Int64.self)
    }

    /// A distinct or percentile kernel loses a tile from one of its windows.
    @inline(never)
    private mutating func expireOwner(_ x: KernelRef, _ record: UnsafeMutableRawPointer, _ tile: UnsafeMutableRawPointer, index k: Int64) {
        if x.family == .distinct {
            kernels.distincts[x.index].expire(record, tile, index: k, window: x.window, store: &distinctStores[kernels.distincts[x.index].store])
        } else {
            kernels.quantiles[x.index].expire(record, tile, window: x.window, store: &quantileStores[kernels.quantiles[x.index].store])
        }
    }

    /// A tile leaves the ring: a kernel that keeps storage for it frees it.
    @inline(never)
    private mutating func drop(_ x: KernelRef, _ record: UnsafeMutableRawPointer, _ tile: UnsafeMutableRawPointer, index k: Int64, last: Bool) {
        if x.family == .distinct {
            kernels.distincts[x.index].drop(record, tile, index: k, last: last, store: &distinctStores[kernels.distincts[x.index].store])
        } else {
            kernels.quantiles[x.index].drop(tile, store: &quantileStores[kernels.quantiles[x.index].store])
        }
    }

    // MARK: - Introspection

    /// Sizes of the aggregation state, for benchmarks and `tessera inspect`.
    public struct Footprint: Sendable {
        public var entities: Int
        /// Non-empty (entity, tile) pairs across rings.
        public var tiles: Int
        /// Bytes held by the state (reserved, not just what is used).
        public var bytes: Int
        /// Bytes of it in use (about what is resident).
        public var usedBytes: Int
    }

    public var footprint: Footprint {
        var tiles = 0
        for e in 0..<keys.count {
            let record = records.pointer(UInt32(e))
            for r in rings { tiles += Int(r.header(record).count) }
        }
        return Footprint(entities: keys.count, tiles: tiles, bytes: memory, usedBytes: usedBytes)
    }

    /// Where the state's memory goes, for benchmarks and profiling.
    public var memoryReport: String {
        var lines = ["records: \(keys.count) × \(layout.stride) B = \(records.usedBytes >> 20) MiB used (\(records.memory >> 20) reserved), key index \(keys.usedBytes >> 20) MiB used (\(keys.memory >> 20) reserved)"]
        for (r, ring) in rings.enumerated() {
            let classes = ring.blocks.enumerated().compactMap { c, slab in slab.map { "c\(c): \($0.liveCount) × \(RingStore.capacity(ofClass: UInt8(c)) * layout.ring(r).tileStride) B" } }
            lines.append("ring \(r) (hop \(Time.format(duration: layout.ring(r).hop)), tile \(layout.ring(r).tileStride) B, inline \(layout.ring(r).inlineCapacity)): \(ring.usedBytes >> 20) MiB used (\(ring.memory >> 20) reserved), roster \(ring.roster.memory >> 20) MiB; \(classes.joined(separator: ", "))")
        }
        for (i, d) in distinctStores.enumerated() {
            let sets = d.sets.enumerated().compactMap { c, slab in slab.map { "c\(c): \($0.liveCount)" } }
            lines.append("distinct \(i): \(d.usedBytes >> 20) MiB used (\(d.memory >> 20) reserved); sets \(sets.joined(separator: ", ")); sketches \(d.sketches.count - d.freeSketches.count)")
        }
        for (i, q) in quantileStores.enumerated() { lines.append("percentile \(i): \(q.memory >> 20) MiB") }
        return lines.joined(separator: "\n")
    }

    /// Bytes of the state in use — about what is resident, and what an image holds besides the
    /// key index's slots (`memory` counts the room reserved too).
    var usedBytes: Int {
        var bytes = records.usedBytes + keys.usedBytes + rings.reduce(0) { $0 + $1.usedBytes } + openEntities.count * 4
        bytes += distinctStores.reduce(0) { $0 + $1.usedBytes } + quantileStores.reduce(0) { $0 + $1.usedBytes }
        bytes += dictionaries.reduce(0) { $0 + $1.storageBytes }
        return bytes
    }

    /// Bytes held by the state.
    var memory: Int {
        var bytes = records.memory + keys.memory + rings.reduce(0) { $0 + $1.memory } + openEntities.capacity * 4
        bytes += distinctStores.reduce(0) { $0 + $1.memory } + quantileStores.reduce(0) { $0 + $1.memory }
        bytes += dictionaries.reduce(0) { $0 + $1.storageBytes }
        return bytes
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
