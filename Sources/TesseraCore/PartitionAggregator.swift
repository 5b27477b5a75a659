/// The aggregation state of one partition of one source: its stream time, its watermark, and
/// the views computed from the source. Serialisable as a unit (a checkpoint is one partition).
///
///     batch ─▶ stream time & lateness ─▶ each view: entities ─▶ tiles ─▶ windows ─▶ emissions
public struct PartitionAggregator: Sendable {
    /// How far behind stream time an event may be and still be aggregated.
    public let allowedLateness: Micros
    /// The largest event time accepted so far; `.min` before the first event.
    public private(set) var streamTime: Micros = .min
    public private(set) var views: [ViewAggregator]

    /// Events before this are late.
    public var watermark: Micros {
        streamTime == .min ? .min : streamTime - allowedLateness
    }

    /// Event times the core accepts: years 0001 to 9999, so that window arithmetic never overflows.
    public static let validTimes: ClosedRange<Micros> = -62_135_596_800_000_000 ... 253_402_300_799_999_999

    public init(views: [ViewSpec], allowedLateness: Micros) {
        precondition(allowedLateness >= 0)
        self.allowedLateness = allowedLateness
        self.views = views.map(ViewAggregator.init(spec:))
        keyColumns = Self.keyColumns(of: self.views)
    }

    /// The key columns of the views, each with the first view that joins on it (set with `views`).
    private var keyColumns: [(column: Int, view: Int)] = []

    private static func keyColumns(of views: [ViewAggregator]) -> [(column: Int, view: Int)] {
        var result: [(column: Int, view: Int)] = []
        for (v, view) in views.enumerated() {
            for f in view.spec.keyFields where !result.contains(where: { $0.column == f }) { result.append((f, v)) }
        }
        return result
    }

    /// Why a row was not aggregated. Nothing is dropped silently: every rejected row is reported.
    public enum Rejection: Sendable, Equatable, CustomStringConvertible {
        /// Older than the watermark when it arrived.
        case late(eventTime: Micros, watermark: Micros)
        /// Outside `validTimes`.
        case timeOutOfRange(eventTime: Micros)
        /// A join key of the named view is null.
        case missingKey(view: String)
        /// Later than the row's bound on the future (`ingest`'s `notAfter`).
        case future(eventTime: Micros, limit: Micros)

        public var description: String {
            switch self {
            case .late(let t, let w): return "late: event time \(t) is older than the watermark \(w)"
            case .timeOutOfRange(let t): return "timestamp out of range: \(t)"
            case .missingKey(let v): return "missing join key for view \(v)"
            case .future(let t, let limit): return "event time \(t) is later than \(limit), the bound on the future"
            }
        }
    }

    /// Scratch reused across batches.
    private var accepted: [Bool] = []
    private var streamTimes: [Micros] = []

    /// Aggregates a batch; each view's `emissions` then holds the rows that changed. Returns the
    /// rejected rows with their reason: out of range, a join key of any view null, later than
    /// `notAfter[row]` (when given), or late. A rejected row leaves no trace: it is aggregated
    /// by no view and moves neither stream time nor the watermark (docs/design.md, "Bad input
    /// and faults").
    @discardableResult
    public mutating func ingest(_ batch: ColumnBatch, notAfter: [Micros]? = nil) -> [(row: Int, reason: Rejection)] {
        precondition(notAfter == nil || notAfter!.count == batch.count, "one bound per row")
        var rejected: [(row: Int, reason: Rejection)] = []
        let n = batch.count
        // Filled through pointers (no per-row uniqueness checks); taken out of `self` meanwhile.
        var accepted = self.accepted, streamTimes = self.streamTimes
        self.accepted = []
        self.streamTimes = []
        accepted.removeAll(keepingCapacity: true)
        accepted.append(contentsOf: repeatElement(true, count: n))
        streamTimes.removeAll(keepingCapacity: true)
        streamTimes.append(contentsOf: repeatElement(0, count: n))
        let nullable = keyColumns.filter { !batch.columns[$0.column].validity.allSet }
        var now = streamTime
        accepted.withUnsafeMutableBufferPointer { accepted in
            streamTimes.withUnsafeMutableBufferPointer { streamTimes in
                batch.eventTimes.withUnsafeBufferPointer { times in
                    for i in 0..<n {
                        let t = times[i]
                        // Most rows: in range, in time and with their keys (no reason to build).
                        let plain = nullable.isEmpty && PartitionAggregator.validTimes.contains(t)
                            && (now == .min || t >= now - allowedLateness) && (notAfter == nil || t <= notAfter.unsafelyUnwrapped[i])
                        if !plain, let reason = rejection(row: i, time: t, batch, nullable: nullable, notAfter: notAfter, now: now) {
                            rejected.append((i, reason))
                            accepted[i] = false
                        } else if t > now {
                            now = t
                        }
                        streamTimes[i] = now
                    }
                }
            }
        }
        self.accepted = accepted
        self.streamTimes = streamTimes
        for v in views.indices {
            views[v].apply(batch, accepted: accepted, streamTimes: streamTimes, end: now, lateness: allowedLateness)
        }
        streamTime = now
        return rejected
    }

    /// Why row `i` (event time `t`) is refused, if it is, with stream time at `now`.
    private func rejection(row i: Int, time t: Micros, _ batch: ColumnBatch, nullable: [(column: Int, view: Int)], notAfter: [Micros]?,
                           now: Micros) -> Rejection? {
        if !PartitionAggregator.validTimes.contains(t) { return .timeOutOfRange(eventTime: t) }
        if let k = nullable.first(where: { !batch.columns[$0.column].validity[i] }) { return .missingKey(view: views[k.view].spec.name) }
        if let notAfter, t > notAfter[i] { return .future(eventTime: t, limit: notAfter[i]) }
        if now != .min && t < now - allowedLateness { return .late(eventTime: t, watermark: now - allowedLateness) }
        return nil
    }

    /// Moves stream time forward without events (the idle-partition hook): values decay as tiles
    /// leave their windows, and the expiry emissions appear in `emissions`.
    public mutating func advance(to time: Micros) {
        guard time > streamTime, PartitionAggregator.validTimes.contains(time) else { return }
        streamTime = time
        for v in views.indices {
            views[v].apply(nil, accepted: [], streamTimes: [], end: time, lateness: allowedLateness)
        }
    }

    /// Closes every open row (the end of a run over a finite input): each view's `emissions` then
    /// holds those rows, closed.
    public mutating func finish() {
        for v in views.indices {
            views[v].apply(nil, accepted: [], streamTimes: [], end: streamTime, lateness: allowedLateness, closeAll: true)
        }
    }

    public mutating func removeAllEmissions() {
        for v in views.indices { views[v].removeAllEmissions() }
    }

    /// Stores the created timestamps the sinks gave view `v`'s current emissions (see
    /// `ViewAggregator.recordCreated`).
    public mutating func recordCreated(view v: Int, _ created: [Micros]) { views[v].recordCreated(created) }

    /// Whether view `v`'s state is shared with a copy (see `ViewAggregator.isStateShared`).
    public mutating func isStateShared(view v: Int) -> Bool { views[v].isStateShared() }

    /// The current rows of view `v`'s entities with ids in `ids` (see `ViewAggregator.currentRows`).
    public mutating func currentRows(view v: Int, _ ids: Range<Int>) -> (rows: EmissionBatch, created: [Micros]) {
        views[v].currentRows(ids)
    }

    // MARK: - Checkpoints

    /// 4: per view, entity records and tile blocks as laid out in memory (`ViewLayout`: tile
    /// blocks in size classes 1, 2, 3, 4, 6, 8, … tiles, no inline tiles on a ring of large ones,
    /// 4-byte tile indices on a ring with a distinct count, moments partials without sums of
    /// squares where no variance reads them), exact distinct sets of 8-byte slots, sliding sketches.
    /// Earlier formats are refused (the partition is rebuilt by replaying the topic): 3 had tile
    /// blocks of powers of two and 16-byte set slots, 2 a structure-of-arrays layout.
    /// Each view is in its own length-prefixed section, found by name (views may be added or removed).
    static let formatVersion: UInt32 = 4

    /// The whole partition state as bytes, checksummed. Emissions not yet taken are not part of it.
    public func serialized() -> [UInt8] {
        let image = image()
        return image.bytes + image.seal()
    }

    /// The partition state as bytes, not yet sealed by its checksum: `serialized()` is
    /// `image.bytes + image.seal()`. A checkpoint streams the same bytes to its file instead
    /// (`write(imageTo:)`).
    public struct Image: Sendable {
        public let bytes: [UInt8]

        /// The trailer of a serialized state (`Seal`).
        public func seal() -> [UInt8] {
            Seal.trailer(crc: bytes.withUnsafeBytes { Seal.crc32c($0) })
        }
    }

    /// The bytes the state reserves (slab chunks are mapped lazily: not all of it is resident).
    public var memory: Int { views.reduce(1 << 16) { $0 + $1.memory } }

    public func image() -> Image {
        var w = ByteWriter()
        write(imageInto: &w)
        return Image(bytes: w.bytes)
    }

    /// Streams the image to `sink`, returning its length: the same bytes as `image()`, without
    /// them being in memory at once (most of them go to the sink from where the state holds them).
    @discardableResult
    public func write(imageTo sink: any ByteSink) -> Int {
        var w = ByteWriter(streamingTo: sink)
        write(imageInto: &w)
        w.finish()
        return w.count
    }

    private func write(imageInto w: inout ByteWriter) {
        w.write("tessera-partition")
        w.write(PartitionAggregator.formatVersion)
        w.write(allowedLateness)
        w.write(streamTime)
        w.write(UInt64(views.count))
        for v in views {
            // Each view's section starts with its length (`ByteReader.section`), counted first
            // so that a streamed image need not go back to write it.
            var counter = ByteWriter(streamingTo: ByteCounter())
            v.serialize(into: &counter)
            w.write(UInt64(counter.count))
            let start = w.count
            v.serialize(into: &w)
            precondition(w.count - start == counter.count, "view \(v.spec.name): its image's length changed while it was written")
        }
    }

    /// What restoring changed, for the operator: views or features added (they start from empty
    /// state) and views no longer defined (their state is dropped).
    public private(set) var restoreNotes: [String] = []
    /// The views restored with features added since their state was saved (their earlier
    /// offline files lack those columns).
    public private(set) var grownViews: [String] = []

    /// Restores a partition saved by `serialized()`, matching views by name: a view added to the
    /// topology starts from empty state, a view removed from it is dropped, and features added
    /// to a view start from empty state. Throws `StateMismatchError` when a view's saved features
    /// were changed, removed or reordered, and `StateFormatError` when the bytes are not a state.
    public init(views specs: [ViewSpec], allowedLateness: Micros, restoring bytes: [UInt8]) throws {
        guard bytes.count >= 8 else { throw StateFormatError(description: "state is truncated (\(bytes.count) bytes)") }
        let payload = bytes.count - 8
        var trailer = ByteReader(Array(bytes[payload...]))
        let seal = try trailer.read(UInt64.self)
        guard bytes.withUnsafeBufferPointer({ Seal.verify(image: UnsafeBufferPointer(rebasing: $0[..<payload]), trailer: seal) }) else {
            throw StateFormatError(description: "state checksum does not match: the checkpoint is torn or corrupt")
        }
        var r = ByteReader(Array(bytes[..<payload]))
        try r.expect("tessera-partition")
        let version = try r.read(UInt32.self)
        guard version == PartitionAggregator.formatVersion else {
            throw StateFormatError(description: """
                state format \(version) is not supported (this build reads \(PartitionAggregator.formatVersion)): it was saved by \
                \(version < PartitionAggregator.formatVersion ? "an earlier" : "a later") Tessera. Rebuild the state: stop the workers, \
                delete the group's checkpoints (STATE_DIR/GROUP) and the views' offline files, and replay the topic
                """)
        }
        self.allowedLateness = allowedLateness
        _ = try r.read(Micros.self)
        streamTime = try r.read()
        let n = try r.count(limit: 4096)
        var sections: [String: (range: Range<Int>, fingerprint: String)] = [:]
        for _ in 0..<n {
            let range = try r.section()
            let fingerprint = try ViewAggregator.savedFingerprint(r)
            let name = String(fingerprint.split(separator: "\n").first?.dropFirst("view ".count) ?? "")
            sections[name] = (range, fingerprint)
            try r.seek(to: range.upperBound)
        }
        guard r.isAtEnd else { throw StateFormatError(description: "state has trailing bytes") }
        views = []
        for spec in specs {
            guard let saved = sections.removeValue(forKey: spec.name) else {
                views.append(ViewAggregator(spec: spec))
                restoreNotes.append("view \(spec.name) is new: it starts from empty state (`tessera backfill` computes its history)")
                continue
            }
            try r.seek(to: saved.range.lowerBound)
            let view = try ViewAggregator(spec: spec, from: &r)
            guard r.position == saved.range.upperBound else { throw StateFormatError(description: "view \(spec.name): section length does not match") }
            let added = view.spec.features.filter { !saved.fingerprint.contains("\n\($0.name) = ") }.map(\.name)
            if !added.isEmpty {
                restoreNotes.append("view \(spec.name): features \(added.joined(separator: ", ")) are new: they start from empty state")
                grownViews.append(spec.name)
            }
            views.append(view)
        }
        for name in sections.keys.sorted() { restoreNotes.append("view \(name) is no longer defined: its saved state is dropped") }
        keyColumns = Self.keyColumns(of: views)
    }
}
