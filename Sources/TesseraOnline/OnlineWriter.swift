import Foundation
import Logging
import Metrics
import TesseraCore
import TesseraRedis
import TesseraTopology

/// The online store writer: keeps the latest row of every entity changed since it was last
/// handed over, and writes an entity at most once per interval, however hot the key
/// (docs/design.md, "The online store").
///
/// Rows are written by a flusher thread while the worker goes on aggregating: whenever the worker
/// asks and the flusher is idle, the rows gathered so far are handed over — except those of
/// entities handed over less than `interval` ago, which keep coalescing until their interval has
/// passed. Before offsets are committed, `flush()` waits until Redis holds every row added so
/// far. While Redis is down the flusher retries with backoff, and the worker stops at its next
/// commit (or when too many rows are pending): nothing buffers without bound.
package final class OnlineWriter {
    let layout: OnlineLayout
    private let views: [String: ViewCodec]
    private var pending: [Key: Rows] = [:]
    private var slotOf: [Key: [Int32]] = [:]
    /// By entity id: when the entity's row was last handed over (`clock`, µs; `.min`: never).
    private var handedAt: [Key: [Micros]] = [:]
    /// An entity's rows are handed over at most once per this (µs), `flush()` apart.
    let interval: Micros
    private let clock: any WallClock
    private var slots: [Int32] = []
    private let flusher: RedisFlusher
    /// A `mark()` was taken while the flusher was busy: the next hand-over is owed to it, even
    /// if its rows were discarded meanwhile.
    private var handOverOwed = false
    /// Above this many pending rows the worker waits for the flusher instead of polling more.
    let maxPendingRows: Int

    struct Key: Hashable {
        var view: String
        var partition: Int32
    }

    /// The latest row of each changed entity of one view and partition.
    struct Rows: Sendable {
        var entities: [UInt32] = []
        var keyBytes: [UInt8] = []
        var keyEnds: [Int] = []
        var eventTime: [Micros] = []
        var createdTime: [Micros] = []
        /// When the input that made the row was produced (for the freshness metrics).
        var producedTime: [Micros] = []
        /// Per row, per feature: the value's bits (int64 and bool: an int, float64: a double's;
        /// string: where its bytes are in `text`, see `textRange`), and whether it is present.
        var bits: [UInt64] = []
        var valid: [Bool] = []
        var text: [UInt8] = []
        var count: Int { entities.count }

        /// The bits of a string value whose bytes are `text[range]`.
        static func textBits(_ range: Range<Int>) -> UInt64 { UInt64(range.lowerBound) << 32 | UInt64(range.count) }

        /// Where the bytes of a string value with these bits are in `text`.
        static func textRange(_ bits: UInt64) -> Range<Int> {
            let start = Int(bits >> 32)
            return start..<start + Int(bits & 0xFFFF_FFFF)
        }

        /// The entity of a slot whose row was taken out (kept back for later): not written.
        static let taken = UInt32.max

        /// Appends the row in `slot` of `other` (features of these types) as a new slot.
        mutating func append(_ slot: Int, of other: Rows, types: [ValueType]) {
            let nf = types.count
            entities.append(other.entities[slot])
            keyBytes.append(contentsOf: other.keyBytes[(slot == 0 ? 0 : other.keyEnds[slot - 1])..<other.keyEnds[slot]])
            keyEnds.append(keyBytes.count)
            eventTime.append(other.eventTime[slot])
            createdTime.append(other.createdTime[slot])
            producedTime.append(other.producedTime[slot])
            let values = slot * nf..<(slot + 1) * nf
            bits.append(contentsOf: other.bits[values])
            valid.append(contentsOf: other.valid[values])
            for f in 0..<nf where types[f] == .string && other.valid[slot * nf + f] {
                let start = text.count
                text.append(contentsOf: other.text[Rows.textRange(other.bits[slot * nf + f])])
                bits[bits.count - nf + f] = Rows.textBits(start..<text.count)
            }
        }
    }

    /// - Parameter interval: an entity's rows are handed to the flusher at most once per this
    ///   (`flush()` apart, which hands over every row).
    package init(layout: OnlineLayout, connection: RedisConnection, views: [FeatureView], logger: Logger,
                 clock: any WallClock = SystemClock(), interval: Duration = .milliseconds(100),
                 freshness: [String: FreshnessRecorders] = [:], maxPendingRows: Int = 2_000_000, group: String? = nil) {
        self.layout = layout
        self.clock = clock
        self.interval = Micros(interval / .microseconds(1))
        self.group = group
        self.maxPendingRows = maxPendingRows
        var codecs: [String: ViewCodec] = [:]
        for v in views where v.online { codecs[v.name] = layout.codec(v) }
        self.views = codecs
        flusher = RedisFlusher(connection: connection, views: codecs, logger: logger, clock: clock, freshness: freshness)
    }

    /// An input partition as the online store's sentinels know it (see `OnlineLayout.sentinelKey`).
    package struct Sentinel: Hashable, Sendable, CustomStringConvertible {
        package var topic: String
        package var partition: Int32
        package init(topic: String, partition: Int32) {
            self.topic = topic
            self.partition = partition
        }
        package var description: String { "\(topic)/\(partition)" }
    }

    /// The consumer group the sentinels are kept for (nil: none are, as in `tessera backfill`).
    private let group: String?

    /// A partition restored from its checkpoint: Redis should hold its rows. Its sentinel is
    /// checked first; if it is missing, the partition is reported by `takeLost`.
    package func adopt(_ s: Sentinel) { track(s, armed: false) }

    /// A partition whose rows Redis holds, or will hold once the rows handed over so far are
    /// written (a new partition, or one whose rows were just rewritten): its sentinel is set
    /// after them, then watched.
    package func arm(_ s: Sentinel) { track(s, armed: true) }

    private func track(_ s: Sentinel, armed: Bool) {
        guard let group else { return }
        flusher.track(s, key: Array(layout.sentinelKey(group: group, topic: s.topic, partition: s.partition).utf8), armed: armed)
    }

    /// Partitions no longer ours: their sentinels are not watched any more.
    package func release(_ sentinels: [Sentinel]) { flusher.untrack(sentinels) }

    /// The partitions whose sentinel was found missing since the last call: Redis lost their
    /// rows. Their owner rewrites them from the state and `arm`s them again.
    package func takeLost() -> [Sentinel] { flusher.takeLost() }

    /// Whether sentinels are still to be checked or set, or lost partitions to be taken: until
    /// then, the worker does not know that Redis holds its partitions' rows.
    package var sentinelsPending: Bool { flusher.sentinelsPending }

    package var pendingRows: Int { pending.values.reduce(0) { $0 + $1.count } }
    package var writes: Int { flusher.counters.writes }
    package var commands: Int { flusher.counters.commands }
    /// Running totals for metrics: rows written per view, failed Redis round trips.
    package var writesByView: [String: Int] { flusher.counters.writesByView }
    package var failures: Int { flusher.counters.failures }
    /// Whether the flusher is retrying because Redis is unreachable.
    package var isRetrying: Bool { flusher.counters.retrying }

    /// Records the emissions of a view; an entity's later row replaces its earlier one.
    /// `produced`: when the input that made the rows was produced, if known (else their event time
    /// stands for it).
    package func add(view: String, partition: Int32, emissions e: EmissionBatch, created: [Micros], produced: Micros? = nil) {
        guard let v = views[view], e.count > 0 else { return }
        let key = Key(view: view, partition: partition)
        var p = pending.removeValue(forKey: key) ?? Rows()
        var index = slotOf.removeValue(forKey: key) ?? []
        let nf = v.fields.count
        // A block of rows at a time: their slots (a new entity gets one and its key), then each
        // feature into them, while the block's slots (scattered over the pending rows) are in
        // cache. The slot index and the slots of rows a little ahead are loaded early.
        var slots = self.slots
        self.slots = []
        slots.removeAll(keepingCapacity: true)
        let n = e.count
        var start = 0
        while start < n {
            let rows = start..<min(n, start + Self.block)
            for i in rows {
                Self.prefetch(row: i, of: e.entityIds, index: index, nf: nf, in: p)
                let entity = Int(e.entityIds[i])
                if entity >= index.count { index.append(contentsOf: repeatElement(-1, count: entity + 1 - index.count)) }
                var slot = Int(index[entity])
                if slot < 0 {
                    slot = p.count
                    index[entity] = Int32(slot)
                    p.entities.append(UInt32(entity))
                    v.appendKey(columns: e.keys, row: i, to: &p.keyBytes)
                    p.keyEnds.append(p.keyBytes.count)
                    p.eventTime.append(0)
                    p.createdTime.append(0)
                    p.producedTime.append(0)
                    p.bits.append(contentsOf: repeatElement(0, count: nf))
                    p.valid.append(contentsOf: repeatElement(false, count: nf))
                }
                p.eventTime[slot] = e.eventTimes[i]
                p.createdTime[slot] = created[i]
                p.producedTime[slot] = produced ?? e.eventTimes[i]
                slots.append(Int32(slot))
            }
            for f in 0..<nf { Self.copy(e.features[f], rows: rows, slots: slots, feature: f, of: nf, into: &p) }
            start = rows.upperBound
        }
        self.slots = slots
        pending[key] = p
        slotOf[key] = index
    }

    /// How many rows ahead `add` loads a row's slot index entry, and half that its slot.
    static let distance = 16

    /// Starts loading what row `i + distance` of an `add` reads (its entity's slot index entry)
    /// and, for row `i + distance / 2` whose entity has a slot, the slot's values.
    @inline(__always)
    private static func prefetch(row i: Int, of entities: [UInt32], index: [Int32], nf: Int, in p: Rows) {
        let far = i &+ distance, near = i &+ distance / 2
        if far < entities.count {
            let entity = Int(entities[far])
            if entity < index.count { index.withUnsafeBufferPointer { TesseraCore.prefetch($0.baseAddress! + entity) } }
        }
        guard near < entities.count else { return }
        let entity = Int(entities[near])
        guard entity < index.count else { return }
        let slot = Int(index[entity])
        guard slot >= 0 else { return }
        p.eventTime.withUnsafeBufferPointer { TesseraCore.prefetch($0.baseAddress! + slot) }
        p.createdTime.withUnsafeBufferPointer { TesseraCore.prefetch($0.baseAddress! + slot) }
        p.producedTime.withUnsafeBufferPointer { TesseraCore.prefetch($0.baseAddress! + slot) }
        p.bits.withUnsafeBufferPointer { b in
            TesseraCore.prefetch(b.baseAddress! + slot &* nf)
            TesseraCore.prefetch(b.baseAddress! + (slot &* nf &+ nf &- 1))
        }
        p.valid.withUnsafeBufferPointer { TesseraCore.prefetch($0.baseAddress! + slot &* nf) }
    }

    /// Rows whose slots are written together (see `add`): 256 rows of the reference view's ten
    /// features are ~23 KiB of slots.
    static let block = 256

    /// Writes feature `f` (of `nf`) of the added rows `rows` (`column`: int64 and bool columns hold
    /// ints, float64 doubles — either is 8 bytes of bits; strings go to the text) into each row's
    /// slot of `p`.
    private static func copy(_ column: Column, rows: Range<Int>, slots: [Int32], feature f: Int, of nf: Int, into p: inout Rows) {
        if column.type == .string {
            for i in rows {
                let at = Int(slots[i]) * nf + f
                let present = column.validity[i]
                p.valid[at] = present
                guard present else { continue }
                let start = p.text.count
                column.withUTF8(at: i) { p.text.append(contentsOf: $0) }
                p.bits[at] = Rows.textBits(start..<p.text.count)
            }
            return
        }
        let words = column.validity.allSet ? nil : column.validity.words
        if column.type == .float64 {
            column.doubles.withUnsafeBytes { copy($0.baseAddress!, validity: words, rows: rows, slots: slots, feature: f, of: nf, into: &p) }
        } else {
            column.ints.withUnsafeBytes { copy($0.baseAddress!, validity: words, rows: rows, slots: slots, feature: f, of: nf, into: &p) }
        }
    }

    /// The numbers' case of `copy`: 8-byte values at `values`, valid where `validity` (a bitmap's
    /// words; nil: all) has the row's bit.
    private static func copy(_ values: UnsafeRawPointer, validity: [UInt64]?, rows: Range<Int>, slots: [Int32], feature f: Int,
                             of nf: Int, into p: inout Rows) {
        slots.withUnsafeBufferPointer { slots in
            p.bits.withUnsafeMutableBufferPointer { bits in
                p.valid.withUnsafeMutableBufferPointer { valid in
                    for i in rows {
                        let at = Int(slots[i]) &* nf &+ f
                        let present = validity.map { ($0[i &>> 6] &>> UInt64(i & 63)) & 1 != 0 } ?? true
                        valid[at] = present
                        if present { bits[at] = values.load(fromByteOffset: i &* 8, as: UInt64.self) }
                    }
                }
            }
        }
    }

    /// Hands the pending rows whose entity's interval has passed to the flusher if it is idle
    /// (the others, and all of them while it is busy, keep coalescing). Waits when too many rows
    /// are pending. Throws what Redis refused; returns false when rows wait for a busy flusher.
    @discardableResult
    package func flushIfIdle() throws -> Bool {
        try flusher.checkFailure()
        if pendingRows > maxPendingRows { try flush(); return true }
        guard !pending.isEmpty || handOverOwed else { return true }
        guard flusher.isIdle else { return false }
        // A hand-over owed to a mark takes every row pending when the mark was taken.
        handOver(due: handOverOwed ? nil : clock.now())
        return true
    }

    /// Hands the pending rows (or a hand-over a mark is owed) to the flusher if it is idle;
    /// never waits. Throws what Redis refused.
    package func handOverIfIdle() throws {
        try flusher.checkFailure()
        guard !pending.isEmpty || handOverOwed, flusher.isIdle else { return }
        handOver()
    }

    /// A point in the stream of rows added so far: reached once Redis holds every one of them
    /// (later rows may be there too). A checkpoint waits for it on the storage thread instead of
    /// the worker waiting for Redis; the rows still pending are handed over now if the flusher
    /// is idle, else at the next `flushIfIdle`.
    package func mark() -> Mark {
        if !pending.isEmpty || handOverOwed {
            if flusher.isIdle { handOver() } else { handOverOwed = true }
        }
        return Mark(flusher: flusher, job: flusher.submittedJobs + (handOverOwed ? 1 : 0))
    }

    /// See `mark()`.
    package struct Mark: Sendable {
        let flusher: RedisFlusher
        let job: Int

        /// Waits up to `timeout` for Redis to hold the rows; throws what the flusher failed with,
        /// and `OnlineWriteError.stoppedWhileUnreachable` once it is stopped short of them.
        package func reached(within timeout: TimeInterval) throws -> Bool {
            try flusher.waitCompleted(job, timeout: timeout)
        }
    }

    /// Whether the flusher has written everything handed to it: Redis then holds the current row
    /// of every entity without a pending one (`hasPendingRow`).
    package var isFlusherIdle: Bool { flusher.isIdle }

    /// Whether an entity of a view's partition has a row not yet handed to the flusher.
    package func hasPendingRow(view: String, partition: Int32, entity: UInt32) -> Bool {
        guard let index = slotOf[Key(view: view, partition: partition)], Int(entity) < index.count else { return false }
        return index[Int(entity)] >= 0
    }

    /// Returns once Redis holds every row added so far (retrying while Redis is unreachable,
    /// unless the flusher is stopped). `whileWaiting` runs about twice a second meanwhile; when
    /// `giveUp` says so while Redis is unreachable, the wait ends with an error (the rows not
    /// written are replayed from the last checkpoint by the next run).
    package func flush(whileWaiting: () -> Void = {}, giveUp: () -> Bool = { false }) throws {
        let check = { [flusher] in
            whileWaiting()
            if giveUp() && flusher.counters.retrying {
                flusher.stop()
                throw OnlineWriteError.stoppedWhileUnreachable
            }
        }
        try flusher.waitIdle(check)
        if !pending.isEmpty || handOverOwed {
            handOver()
            try flusher.waitIdle(check)
        }
    }

    /// Drops pending rows of partitions that are no longer ours, and what the flusher knows of
    /// their keys (their next owner may write them).
    package func discard(partitions: Set<Int32>) {
        for key in pending.keys where partitions.contains(key.partition) {
            pending[key] = nil
            slotOf[key] = nil
        }
        for key in handedAt.keys where partitions.contains(key.partition) { handedAt[key] = nil }
        flusher.forget(partitions: partitions)
    }

    package func stop() { flusher.stop() }

    /// Hands the pending rows to the flusher: all of them, or (`due`: the time now) those whose
    /// entity was last handed over at least `interval` ago — the others stay pending (taken out of
    /// the job: their slot there is marked `Rows.taken`). Submits nothing when no row is due.
    private func handOver(due now: Micros? = nil) {
        let time = now ?? clock.now()
        @inline(__always) func isDue(_ e: Int, _ handed: [Micros]) -> Bool {
            guard now != nil, e < handed.count, handed[e] != .min else { return true }
            return time &- handed[e] >= interval
        }
        var job: [Key: Rows] = [:]
        for (key, rows) in pending {
            let handed = handedAt[key] ?? []
            if now != nil && !rows.entities.contains(where: { isDue(Int($0), handed) }) { continue }
            job[key] = rows
        }
        guard !job.isEmpty || handOverOwed else { return }
        handOverOwed = false
        for key in Array(job.keys) {
            pending[key] = nil
            guard var index = slotOf.removeValue(forKey: key) else { continue }
            var handed = handedAt.removeValue(forKey: key) ?? []
            if handed.count < index.count { handed.append(contentsOf: repeatElement(.min, count: index.count - handed.count)) }
            var rows = job.removeValue(forKey: key)!
            var kept = Rows()
            let types = views[key.view]?.types ?? []
            for slot in 0..<rows.count {
                let e = Int(rows.entities[slot])
                if isDue(e, handed) {
                    index[e] = -1
                    handed[e] = time
                } else {
                    index[e] = Int32(kept.count)
                    kept.append(slot, of: rows, types: types)
                    rows.entities[slot] = Rows.taken
                }
            }
            job[key] = rows
            if kept.count > 0 { pending[key] = kept }
            slotOf[key] = index
            handedAt[key] = handed
        }
        flusher.submit(job)
    }
}

/// A view's freshness metrics: how long after its input was produced each row was written to
/// Redis (a histogram, in seconds), and how many rows were written, within the view's target
/// and in all.
package struct FreshnessRecorders: Sendable {
    package var seconds: Recorder
    package var rows: Counter
    package var withinTarget: Counter?
    package var target: Micros?

    package init(seconds: Recorder, rows: Counter, withinTarget: Counter?, target: Micros?) {
        self.seconds = seconds
        self.rows = rows
        self.withinTarget = withinTarget
        self.target = target
    }

    func record(_ produced: [Micros], visibleAt now: Micros) {
        var within = 0
        for t in produced {
            seconds.record(Double(now - t) / 1_000_000)
            if let target, now - t <= target { within += 1 }
        }
        rows.increment(by: produced.count)
        if within > 0 { withinTarget?.increment(by: within) }
    }
}

/// The thread that writes handed-over rows to Redis as HSET (and HDEL, PEXPIRE where needed) in
/// pipelined chunks.
/// `@unchecked Sendable`: `connection` and the encoding buffers are used only by the flusher
/// thread; everything the worker thread shares with it (`job`, `failure`, `stopping`, `state`)
/// is read and written under `condition`.
final class RedisFlusher: @unchecked Sendable {
    struct Counters: Sendable {
        var writes = 0
        var commands = 0
        var writesByView: [String: Int] = [:]
        var failures = 0
        var retrying = false
    }

    private let connection: RedisConnection
    private let views: [String: ViewCodec]
    private let logger: Logger
    private let condition = NSCondition()
    private var job: [OnlineWriter.Key: OnlineWriter.Rows]?
    /// Jobs handed over, and jobs Redis holds entirely (each job's number is its place in order).
    private var submitted = 0
    private var completed = 0
    private var failure: (any Error)?
    private var stopping = false
    private var state = Counters()
    private var started = false
    /// Per view: produced → the row written to Redis, per row (the owner names the metrics).
    private let freshness: [String: FreshnessRecorders]

    private let clock: any WallClock
    /// What is known of the keys in Redis (flusher thread only).
    private var memory: [OnlineWriter.Key: KeyMemory] = [:]
    /// Partitions whose memory is dropped before the next job (under `condition`).
    private var forgetting: Set<Int32> = []

    /// Sentinel keys (under `condition`): being checked or set, watched, found missing.
    private var sentinels: [OnlineWriter.Sentinel: SentinelState] = [:]
    private var lost: [OnlineWriter.Sentinel] = []
    /// When the watched sentinels are next checked, and before when no sentinel work is tried
    /// after a failed attempt (flusher thread only).
    private var nextCheck = Date()
    private var holdUntil = Date.distantPast
    static let checkInterval: TimeInterval = 1

    struct SentinelState {
        var key: [UInt8]
        var phase: Phase
        enum Phase { case unchecked, arming, watched }
    }

    func track(_ s: OnlineWriter.Sentinel, key: [UInt8], armed: Bool) {
        condition.lock()
        sentinels[s] = SentinelState(key: key, phase: armed ? .arming : .unchecked)
        lost.removeAll { $0 == s }
        startIfNeeded()
        condition.broadcast()
        condition.unlock()
    }

    func untrack(_ gone: [OnlineWriter.Sentinel]) {
        condition.lock()
        for s in gone { sentinels[s] = nil }
        lost.removeAll { gone.contains($0) }
        condition.unlock()
    }

    var sentinelsPending: Bool {
        condition.lock()
        defer { condition.unlock() }
        return !lost.isEmpty || sentinels.values.contains { $0.phase != .watched }
    }

    func takeLost() -> [OnlineWriter.Sentinel] {
        condition.lock()
        defer { condition.unlock() }
        let found = lost
        lost = []
        return found
    }

    /// Whether sentinels wait to be set or checked (under `condition`).
    private var sentinelWorkDue: Bool {
        guard !sentinels.isEmpty else { return false }
        let now = Date()
        return now >= holdUntil && (now >= nextCheck || sentinels.values.contains { $0.phase != .watched })
    }

    /// Sets the sentinels waiting to be set, checks the new ones and, once a second, the watched
    /// ones: a missing one is reported lost and no longer watched until it is armed again.
    private func maintainSentinels(_ resp: inout RESPBuffer, _ replies: inout [Int64]) throws {
        condition.lock()
        let due = Date() >= nextCheck
        let work = sentinels.filter { $0.value.phase != .watched || due }
        condition.unlock()
        guard !work.isEmpty else { return }
        resp.removeAll()
        let order = Array(work.keys)
        for s in order {
            let w = work[s]!
            if w.phase == .arming {
                resp.begin(arguments: 3)
                resp.argument(RedisFlusher.set)
                resp.argument(w.key)
                resp.argument(RedisFlusher.sentinelValue)
            } else {
                resp.begin(arguments: 2)
                resp.argument(RedisFlusher.exists)
                resp.argument(w.key)
            }
        }
        let (errors, first) = try connection.sendChecked(resp, integers: &replies)
        if errors > 0 { throw RedisError(message: "Redis refused \(errors) sentinel keys: \(first ?? "")", isRetriable: false) }
        if due { nextCheck = Date().addingTimeInterval(RedisFlusher.checkInterval) }
        var gone: Set<Int32> = []
        condition.lock()
        for (i, s) in order.enumerated() {
            // Only if nothing changed it meanwhile (released, adopted or armed again).
            guard let now = sentinels[s], now.phase == work[s]!.phase, now.key == work[s]!.key else { continue }
            if now.phase == .arming || replies[i] > 0 {
                sentinels[s]!.phase = .watched
            } else {
                sentinels[s] = nil
                lost.append(s)
                gone.insert(s.partition)
            }
        }
        condition.unlock()
        // What was known of their keys is not what Redis holds now.
        for key in memory.keys where gone.contains(key.partition) { memory[key] = nil }
    }

    init(connection: RedisConnection, views: [String: ViewCodec], logger: Logger, clock: any WallClock, freshness: [String: FreshnessRecorders]) {
        self.freshness = freshness
        self.connection = connection
        self.views = views
        self.logger = logger
        self.clock = clock
    }

    var counters: Counters {
        condition.lock()
        defer { condition.unlock() }
        return state
    }

    var isIdle: Bool {
        condition.lock()
        defer { condition.unlock() }
        return job == nil
    }

    func submit(_ rows: [OnlineWriter.Key: OnlineWriter.Rows]) {
        condition.lock()
        precondition(job == nil, "a flush is already in flight")
        job = rows
        submitted += 1
        startIfNeeded()
        condition.broadcast()
        condition.unlock()
    }

    /// Starts the flusher thread (under `condition`); it keeps the flusher alive until `stop()`
    /// ends its loop.
    private func startIfNeeded() {
        guard !started else { return }
        started = true
        startThread(named: "tessera-redis") { self.loop() }
    }

    func waitIdle(_ whileWaiting: () throws -> Void = {}) throws {
        condition.lock()
        while job != nil && failure == nil {
            if !condition.wait(until: Date().addingTimeInterval(0.5)) {
                condition.unlock()
                try whileWaiting()
                condition.lock()
            }
        }
        let error = failure
        condition.unlock()
        if let error { throw error }
    }

    /// Jobs handed over so far.
    var submittedJobs: Int { condition.withLock { submitted } }

    /// Waits up to `timeout` for Redis to hold job number `n` and those before it.
    func waitCompleted(_ n: Int, timeout: TimeInterval) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        // Stopped with nothing in flight: what is missing will not come.
        while completed < n && failure == nil && !(stopping && job == nil) {
            if !condition.wait(until: deadline) { break }
        }
        if completed >= n { return true }
        if let failure { throw failure }
        if stopping && job == nil { throw OnlineWriteError.stoppedWhileUnreachable }
        return false
    }

    func checkFailure() throws {
        condition.lock()
        let error = failure
        condition.unlock()
        if let error { throw error }
    }

    /// Drops what is known of the keys of these partitions (they changed hands: another worker
    /// may have written them since), before the next job is written.
    func forget(partitions: Set<Int32>) {
        condition.lock()
        forgetting.formUnion(partitions)
        condition.unlock()
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func loop() {
        var resp = RESPBuffer()
        var scratch: [UInt8] = []
        var replies: [Int64] = []
        while true {
            condition.lock()
            while job == nil && !stopping && !sentinelWorkDue {
                if sentinels.isEmpty { condition.wait() } else { _ = condition.wait(until: Date().addingTimeInterval(0.2)) }
            }
            if stopping && job == nil {
                condition.unlock()
                return
            }
            guard let rows = job else {
                // Only sentinels to see to: a failure is met again by the next rows' writes.
                condition.unlock()
                do { try maintainSentinels(&resp, &replies) } catch let e as RedisError where e.isRetriable {
                    holdUntil = Date().addingTimeInterval(RedisFlusher.checkInterval)
                } catch let e {
                    condition.lock()
                    failure = e
                    condition.broadcast()
                    condition.unlock()
                    return
                }
                continue
            }
            let forget = forgetting
            forgetting = []
            condition.unlock()
            if !forget.isEmpty {
                for key in memory.keys where forget.contains(key.partition) { memory[key] = nil }
            }
            var backoff = Backoff()
            var result: (writes: Int, commands: Int, byView: [String: Int]) = (0, 0, [:])
            var error: (any Error)?
            while true {
                do {
                    try maintainSentinels(&resp, &replies)
                    result = try write(rows, &resp, &scratch)
                    break
                } catch let e as RedisError where e.isRetriable {
                    condition.lock()
                    state.retrying = true
                    state.failures += 1
                    let stop = stopping
                    condition.unlock()
                    if stop {
                        error = OnlineWriteError.stoppedWhileUnreachable
                        break
                    }
                    let delay = backoff.next()
                    logger.warning("cannot write to Redis, retrying in \(delay.seconds) s: \(e)", metadata: ["code": "\(e.code)"])
                    Thread.sleep(forTimeInterval: delay.seconds)
                } catch let e {
                    error = e
                    break
                }
            }
            condition.lock()
            state.writes += result.writes
            state.commands += result.commands
            for (view, n) in result.byView { state.writesByView[view, default: 0] += n }
            state.retrying = false
            if let error { failure = error } else {
                job = nil
                completed += 1
            }
            condition.broadcast()
            condition.unlock()
            if error != nil { return }
        }
    }

    /// What the flusher knows of the keys of one view and partition as Redis holds them, from its
    /// own successful writes, by entity id: which features the hash holds, the bits of the values
    /// it holds (views of at most 64 features; string values are not kept), and when the key's
    /// expiry was last set. An entity id is reused once its entity leaves the state, so an entry
    /// counts only for the key it was recorded for (`keyHash`; 0 when nothing is known).
    struct KeyMemory {
        var keyHash: [UInt64] = []
        var present: [UInt64] = []
        var expirySetMillis: [Int64] = []
        /// `features` values per entity.
        var values: [UInt64] = []
        var features = 0

        func known(_ entity: Int, hash: UInt64) -> Bool { entity < keyHash.count && keyHash[entity] == hash }

        /// Records the row of `entity` as Redis now holds it: its present features (`mask`) with
        /// the values `row`.
        mutating func record(_ entity: Int, hash: UInt64, present mask: UInt64, values row: ArraySlice<UInt64>, expirySet: Int64?) {
            if entity >= keyHash.count {
                let n = entity + 1 - keyHash.count
                keyHash.append(contentsOf: repeatElement(0, count: n))
                present.append(contentsOf: repeatElement(0, count: n))
                expirySetMillis.append(contentsOf: repeatElement(.min, count: n))
            }
            keyHash[entity] = hash
            present[entity] = mask
            if let expirySet { expirySetMillis[entity] = expirySet }
            guard row.count <= 64 else { return }
            features = row.count
            if values.count < keyHash.count * features {
                values.append(contentsOf: repeatElement(0, count: keyHash.count * features - values.count))
            }
            let base = entity * features
            values.withUnsafeMutableBufferPointer { v in
                for (f, bits) in row.enumerated() { v[base + f] = bits }
            }
        }
    }

    /// One row of a chunk being written: what to remember of it once Redis has it.
    struct Written {
        var slot: Int
        var hash: UInt64
        var present: UInt64
        var setExpiry: Bool
        /// The index of its HSET among the chunk's commands, and how many fields it sets.
        var hset: Int
        var fields: Int
        /// How many of those fields the key lacks if Redis holds it as remembered (-1: the key
        /// is not known), and whether fields Redis already holds with the same value were left out.
        var lacking: Int
        var partial: Bool

        /// Whether `HSET` created fields the key held before: Redis lost the key (restarted
        /// empty, flushed, evicted, expired) and the HSET made it again.
        func madeAgain(reply: Int64) -> Bool { lacking >= 0 ? reply > Int64(lacking) : reply == Int64(fields) }
    }

    /// A pipeline queued on the connection whose replies are not read yet: a chunk of rows, or
    /// the expiries its replies asked for (`written` empty).
    private struct InFlight {
        var written: [Written]
        var commands: Int
        var nowMillis: Int64
        var expiries: Bool { written.isEmpty }
    }

    /// Writes every row, in chunks of a few thousand commands. The next chunk is queued before
    /// the replies of the one before are read, so Redis works on it meanwhile: the rows of one
    /// hand-over are distinct entities, so what one chunk's replies teach `memory` never changes
    /// how another chunk is encoded.
    private func write(_ rows: [OnlineWriter.Key: OnlineWriter.Rows], _ resp: inout RESPBuffer, _ scratch: inout [UInt8]) throws -> (Int, Int, [String: Int]) {
        var writes = 0, commands = 0
        var byView: [String: Int] = [:]
        let chunk = 2_000
        var replies: [Int64] = []
        var again = RESPBuffer()
        var spare: [[Written]] = []
        for (key, p) in rows where p.count > 0 {
            guard let v = views[key.view] else { continue }
            var memory = self.memory.removeValue(forKey: key) ?? KeyMemory()
            defer { self.memory[key] = memory }
            var inFlight: [InFlight] = []
            var start = 0
            while true {
                // Queue chunks until one waits behind the oldest whose replies are unread.
                while start < p.count && inFlight.count < 2 {
                    let end = min(p.count, start + chunk)
                    let nowMillis = clock.now() / 1_000
                    resp.removeAll()
                    var written = spare.popLast() ?? []
                    for slot in start..<end where p.entities[slot] != OnlineWriter.Rows.taken {
                        written.append(RedisFlusher.encode(slot, p, v, memory: memory, nowMillis: nowMillis, into: &resp, scratch: &scratch))
                    }
                    start = end
                    if written.isEmpty {
                        spare.append(written)
                        continue
                    }
                    try connection.queue(resp)
                    inFlight.append(InFlight(written: written, commands: resp.commands, nowMillis: nowMillis))
                }
                guard !inFlight.isEmpty else { break }
                var f = inFlight.removeFirst()
                let (errors, first) = try connection.collectChecked(f.commands, integers: &replies)
                commands += f.commands
                if f.expiries {
                    if errors > 0 {
                        throw RedisError(message: "Redis refused \(errors) expiries of view \(key.view): \(first ?? "")", isRetriable: false)
                    }
                    continue
                }
                if errors > 0 {
                    throw RedisError(message: "Redis refused \(errors) writes of view \(key.view): \(first ?? "")", isRetriable: false)
                }
                // A key that HSET made again although it was known (Redis lost it) is given the
                // rest of its row, when the HSET left out values it held, and its expiry now.
                again.removeAll()
                for w in f.written where w.madeAgain(reply: replies[w.hset]) {
                    if w.partial { RedisFlusher.encodeRow(p, slot: w.slot, v, into: &again, scratch: &scratch) }
                    if !w.setExpiry && v.ttlMillis > 0 { RedisFlusher.encodeExpiry(p, slot: w.slot, v, into: &again, scratch: &scratch) }
                }
                if again.commands > 0 {
                    try connection.queue(again)
                    inFlight.append(InFlight(written: [], commands: again.commands, nowMillis: f.nowMillis))
                }
                let nf = v.fields.count
                for w in f.written {
                    let renewed = w.setExpiry || (v.ttlMillis > 0 && w.madeAgain(reply: replies[w.hset]))
                    memory.record(Int(p.entities[w.slot]), hash: w.hash, present: w.present, values: p.bits[w.slot * nf..<(w.slot + 1) * nf],
                                  expirySet: renewed ? f.nowMillis : nil)
                }
                writes += f.written.count
                byView[key.view, default: 0] += f.written.count
                if let freshness = freshness[key.view] {
                    freshness.record(f.written.map { p.producedTime[$0.slot] }, visibleAt: clock.now())
                }
                f.written.removeAll(keepingCapacity: true)
                spare.append(f.written)
            }
        }
        return (writes, commands, byView)
    }

    /// HSET key f v … _event_ts t _created_ts c; then HDEL key <features gone null> and PEXPIRE key
    /// ttl × 1.1 where they are needed. The HSET leaves out the numbers the key holds already
    /// (same bits as written last; strings are always written), HDEL names only features the key
    /// may hold (every null one when nothing is known of the key), PEXPIRE comes when the key's
    /// expiry was last set 10 % of the TTL ago or more (or is not known). A key then expires
    /// between TTL and 1.1 × TTL after its last write.
    static func encode(_ slot: Int, _ p: OnlineWriter.Rows, _ v: ViewCodec, memory: KeyMemory, nowMillis: Int64,
                       into resp: inout RESPBuffer, scratch: inout [UInt8]) -> Written {
        let nf = v.fields.count
        let keyStart = slot == 0 ? 0 : p.keyEnds[slot - 1]
        let entity = Int(p.entities[slot])
        var mask: UInt64 = 0
        for f in 0..<min(nf, 64) where p.valid[slot * nf + f] { mask |= 1 << UInt64(f) }
        return p.keyBytes.withUnsafeBytes { all in
            let key = UnsafeRawBufferPointer(rebasing: all[keyStart..<p.keyEnds[slot]])
            var hash = StableHash.hash(bytes: key.assumingMemoryBound(to: UInt8.self))
            if hash == 0 { hash = 1 }
            let known = memory.known(entity, hash: hash)
            // Features the key may hold: what was written last (all of them when that is not known,
            // or when the view has more features than the mask has bits).
            let held: UInt64 = known && nf <= 64 ? memory.present[entity] : ~0
            // The features written: every present one, less the numbers held with the same value
            // (unless the key may have expired since: then the whole row, as for a key not known).
            var write: UInt64? = nil
            let mayHaveExpired = v.ttlMillis > 0 && known && nowMillis - memory.expirySetMillis[entity] >= v.ttlMillis
            // (Values are remembered only for views of at most 64 features: `features` is 0 otherwise.)
            if known && memory.features == nf && !mayHaveExpired {
                var w = mask
                let base = entity * nf
                for f in 0..<nf where w & held & (1 << UInt64(f)) != 0 && v.types[f] != .string
                    && memory.values[base + f] == p.bits[slot * nf + f] {
                    w &= ~(1 << UInt64(f))
                }
                write = w
            }
            let hsetIndex = resp.commands
            let fields = appendRow(key, slot, p, v, only: write, into: &resp, scratch: &scratch)
            var gone = 0
            for f in 0..<nf where !p.valid[slot * nf + f] && (f >= 64 || held & (1 << UInt64(f)) != 0) { gone += 1 }
            if gone > 0 {
                resp.begin(arguments: 2 + gone)
                resp.argument(hdel)
                resp.argument(key)
                for f in 0..<nf where !p.valid[slot * nf + f] && (f >= 64 || held & (1 << UInt64(f)) != 0) {
                    resp.argument(v.fields[f])
                }
            }
            let setExpiry = v.ttlMillis > 0 && (!known || nowMillis - memory.expirySetMillis[entity] >= v.ttlMillis / 10)
            if setExpiry { appendExpiry(key, v, into: &resp, scratch: &scratch) }
            return Written(slot: slot, hash: hash, present: mask, setExpiry: setExpiry, hset: hsetIndex, fields: fields,
                           lacking: write.map { ($0 & ~held).nonzeroBitCount } ?? -1, partial: write.map { $0 != mask } ?? false)
        }
    }

    /// HSET of the whole row at `slot` (every present feature and both times).
    static func encodeRow(_ p: OnlineWriter.Rows, slot: Int, _ v: ViewCodec, into resp: inout RESPBuffer, scratch: inout [UInt8]) {
        let keyStart = slot == 0 ? 0 : p.keyEnds[slot - 1]
        p.keyBytes.withUnsafeBytes { all in
            _ = appendRow(UnsafeRawBufferPointer(rebasing: all[keyStart..<p.keyEnds[slot]]), slot, p, v, only: nil, into: &resp, scratch: &scratch)
        }
    }

    /// HSET key f v … _event_ts t _created_ts c of the present features (those in `only`, when
    /// given); returns how many fields it sets.
    private static func appendRow(_ key: UnsafeRawBufferPointer, _ slot: Int, _ p: OnlineWriter.Rows, _ v: ViewCodec, only: UInt64?,
                                  into resp: inout RESPBuffer, scratch: inout [UInt8]) -> Int {
        let nf = v.fields.count
        @inline(__always) func written(_ f: Int) -> Bool {
            if let only { return only & (1 << UInt64(f)) != 0 }
            return p.valid[slot * nf + f]
        }
        var count = 0
        for f in 0..<nf where written(f) { count += 1 }
        resp.begin(arguments: 2 + 2 * (count + 2))
        resp.argument(hset)
        resp.argument(key)
        for f in 0..<nf where written(f) {
            resp.argument(v.fields[f])
            scratch.removeAll(keepingCapacity: true)
            let bits = p.bits[slot * nf + f]
            if v.types[f] == .string {
                v.appendString(p.text[OnlineWriter.Rows.textRange(bits)], to: &scratch)
            } else {
                v.appendValue(bits: bits, type: v.types[f], to: &scratch)
            }
            resp.argument(scratch)
        }
        resp.argument(v.eventField)
        scratch.removeAll(keepingCapacity: true)
        v.appendTime(p.eventTime[slot], to: &scratch)
        resp.argument(scratch)
        resp.argument(v.createdField)
        scratch.removeAll(keepingCapacity: true)
        v.appendTime(p.createdTime[slot], to: &scratch)
        resp.argument(scratch)
        return count + 2
    }

    /// PEXPIRE key ttl × 1.1 for the row at `slot`.
    static func encodeExpiry(_ p: OnlineWriter.Rows, slot: Int, _ v: ViewCodec, into resp: inout RESPBuffer, scratch: inout [UInt8]) {
        let keyStart = slot == 0 ? 0 : p.keyEnds[slot - 1]
        p.keyBytes.withUnsafeBytes { all in
            appendExpiry(UnsafeRawBufferPointer(rebasing: all[keyStart..<p.keyEnds[slot]]), v, into: &resp, scratch: &scratch)
        }
    }

    /// A key several views share (Feast's layout) keeps the longest expiry any of them set:
    /// `PEXPIRE … NX` gives a key without one its expiry, `PEXPIRE … GT` only ever lengthens it
    /// (Redis ≥ 7.0), so a 2 h view's write never shortens a 30 d view's row.
    private static func appendExpiry(_ key: UnsafeRawBufferPointer, _ v: ViewCodec, into resp: inout RESPBuffer, scratch: inout [UInt8]) {
        scratch.removeAll(keepingCapacity: true)
        DecimalText.append(v.ttlMillis + v.ttlMillis / 10, to: &scratch)
        func command(_ condition: [UInt8]?) {
            resp.begin(arguments: condition == nil ? 3 : 4)
            resp.argument(pexpire)
            resp.argument(key)
            resp.argument(scratch)
            if let condition { resp.argument(condition) }
        }
        if v.sharesKeys {
            command(nx)
            command(gt)
        } else {
            command(nil)
        }
    }

    static let hset = Array("HSET".utf8), hdel = Array("HDEL".utf8), pexpire = Array("PEXPIRE".utf8)
    static let nx = Array("NX".utf8), gt = Array("GT".utf8)
    static let set = Array("SET".utf8), exists = Array("EXISTS".utf8)
    static let sentinelValue = Array("Redis holds every row tessera wrote of this partition; if this key is gone, its rows are rewritten".utf8)
}

/// Why the online writer gave up.
package enum OnlineWriteError: TesseraError {
    /// A stop was requested while Redis was unreachable.
    case stoppedWhileUnreachable

    package var code: ErrorCode { .stopped }
    package var isRetriable: Bool { false }
    package var description: String { "stopped while Redis was unreachable" }
    package var remedy: String? { "Nothing is lost: what was not written is replayed from the last checkpoint by the next run" }
}
