import Foundation
import Synchronization
import TesseraCore
import TesseraLog
import TesseraOffline
import TesseraTopology

/// One view's part of a point-in-time join: keys → scan → buckets → sweep → gather.
struct ViewJoin {
    /// An offline row that can match: its timestamps, its key's id and where it lives.
    struct Record: Sendable {
        var event: Micros
        var created: Micros
        var id: UInt32
        var file: UInt32
        var row: UInt32
    }

    /// An offline file's columns that the join reads, by schema index.
    struct FileLayout: Sendable {
        var reader: ParquetFileReader
        var keys: [Int]
        var event: Int
        var created: Int
        /// Per requested feature, its column; nil in files written before the feature was added
        /// to the view (its values there are null: the feature did not exist yet).
        var features: [Int?]
        /// First row of each row group, plus the row count at the end.
        var rowGroupStarts: [Int]
    }

    static let noMatch = UInt64.max

    let request: FeatureSelection.ViewRequest
    let options: HistoricalOptions
    let rowCount: Int
    let times: [Micros]
    let dictionary: KeyDictionary
    /// Entity-row id of each key (`KeyDictionary.empty` when a key is null).
    let ids: [UInt32]
    /// The entity rows of key id `k` are `entityRows[entityStart[k]..<entityStart[k + 1]]`, in time order.
    let entityStart: [Int]
    let entityRows: [UInt32]
    let files: [FileLayout]
    let ttl: Micros

    init(request: FeatureSelection.ViewRequest, entities: Frame, times: [Micros], directory: String, options: HistoricalOptions) throws {
        self.request = request
        self.options = options
        self.times = times
        rowCount = entities.rowCount
        let view = request.view
        ttl = view.ttl

        // Key columns of the frame, typed as the view's keys.
        var keyColumns: [Column] = []
        for (name, type) in view.joinKeys {
            guard let c = entities.index(of: name) else {
                throw HistoricalError("the entity frame has no column '\(name)', a join key of view '\(view.name)' (its columns: \(entities.names.joined(separator: ", ")))")
            }
            keyColumns.append(try ViewJoin.typedKey(entities.columns[c], kind: entities.kinds[c], name: name, type: type, view: view.name))
        }
        let singleInt = view.joinKeys.count == 1 && view.joinKeys[0].type == .int64
        var dictionary = KeyDictionary(singleInt: singleInt, expected: rowCount)
        var ids = [UInt32](repeating: KeyDictionary.empty, count: rowCount)
        var encoder = KeyEncoder()
        for row in 0..<rowCount {
            if singleInt {
                guard keyColumns[0].validity[row] else { continue }
                ids[row] = dictionary.insert(int: keyColumns[0].ints[row], time: times[row])
            } else {
                guard encoder.encode(keyColumns, row: row) else { continue }
                ids[row] = encoder.bytes.withUnsafeBufferPointer { dictionary.insert(encoded: $0, time: times[row]) }
            }
        }
        self.dictionary = dictionary
        self.ids = ids

        // Entity rows grouped by key id (counting sort), each group in time order.
        var start = [Int](repeating: 0, count: dictionary.count + 1)
        for id in ids where id != KeyDictionary.empty { start[Int(id) + 1] += 1 }
        for k in 0..<dictionary.count { start[k + 1] += start[k] }
        var next = start
        var rows = [UInt32](repeating: 0, count: start[dictionary.count])
        for (row, id) in ids.enumerated() where id != KeyDictionary.empty {
            rows[next[Int(id)]] = UInt32(row)
            next[Int(id)] += 1
        }
        for k in 0..<dictionary.count where start[k + 1] - start[k] > 1 {
            rows[start[k]..<start[k + 1]].sort { times[Int($0)] < times[Int($1)] }
        }
        entityStart = start
        entityRows = rows

        files = try OfflineLog.files(directory: directory, view: view.name).map {
            try ViewJoin.layout(of: $0, view: view, features: request.features)
        }
    }

    /// The frame's column as the view's key type: int64 keys from integer columns or CSV text,
    /// string keys from string columns or CSV text.
    static func typedKey(_ column: Column, kind: Frame.Kind, name: String, type: ValueType, view: String) throws -> Column {
        switch (type, kind, column.type) {
        case (.int64, .text, .string):
            var out = Column(type: .int64)
            out.ints.reserveCapacity(column.count)
            for i in 0..<column.count {
                guard column.validity[i] else { out.appendNull(); continue }
                guard let v = column.withUTF8(at: i, { CSV.parseInteger($0) }) else {
                    throw HistoricalError("row \(i + 1) of the entity frame: '\(column.string(at: i))' in '\(name)' is not an integer, and view '\(view)' joins on \(name) as int64")
                }
                out.append(int: v)
            }
            return out
        case (.int64, .typed(.int64), .int64), (.int64, .typed(.int32), .int64), (.string, .text, .string), (.string, .typed(.string), .string):
            return column
        default:
            let what: String
            if case .typed(let t) = kind { what = t.rawValue } else { what = "text" }
            throw HistoricalError("the entity frame's column '\(name)' is \(what), but view '\(view)' joins on \(name) as \(type.rawValue): give it \(type == .int64 ? "integers" : "strings")")
        }
    }

    static func layout(of path: String, view: FeatureView, features: [Int]) throws -> FileLayout {
        let reader: ParquetFileReader
        do { reader = try ParquetFileReader(path: path) } catch { throw HistoricalError("\(error)") }
        let fields = reader.schema.fields
        func column(_ name: String, _ accepted: [ParquetType], _ what: String) throws -> Int {
            guard let i = try optionalColumn(name, accepted) else {
                throw HistoricalError("\(path) has no column '\(name)' (\(what) of view '\(view.name)')")
            }
            return i
        }
        func optionalColumn(_ name: String, _ accepted: [ParquetType]) throws -> Int? {
            guard let i = fields.firstIndex(where: { $0.name == name }) else { return nil }
            guard accepted.contains(fields[i].type) else {
                throw HistoricalError("\(path): column '\(name)' is \(fields[i].type.rawValue), view '\(view.name)' needs \(accepted.map(\.rawValue).joined(separator: " or "))")
            }
            return i
        }
        let keys = try view.joinKeys.map { try column($0.name, $0.type == .string ? [.string] : [.int64, .int32], "a join key") }
        let event = try column("event_timestamp", [.timestampMicros, .int64], "the event time")
        let created = try column("created_timestamp", [.timestampMicros, .int64], "the created time")
        let featureColumns = try features.map { f -> Int? in
            let feature = view.spec.features[f]
            let type = OfflineSchema.parquetType(view.spec.outputType(of: feature))
            return try optionalColumn(feature.name, type == .int64 ? [.int64, .int32] : [type])
        }
        var starts = [0]
        for g in reader.rowGroups { starts.append(starts.last! + g.rowCount) }
        guard reader.rowCount < Int(UInt32.max) else { throw HistoricalError("\(path) holds more than 2³² rows") }
        return FileLayout(reader: reader, keys: keys, event: event, created: created, features: featureColumns, rowGroupStarts: starts)
    }

    /// Runs the join and returns one column per requested feature, one row per entity row.
    func run(progress: (@Sendable (HistoricalProgress) -> Void)?) throws -> [Column] {
        let threads = max(1, options.threads)
        let offlineRows = files.reduce(0) { $0 + $1.reader.rowCount }
        // Buckets of about 4 MiB of records (at least four per thread, so that threads stay busy).
        var buckets = 1
        while buckets < 4 * threads || buckets * (4 << 20) < offlineRows * MemoryLayout<Record>.stride { buckets <<= 1 }
        let limit = max(1 << 12, options.memoryBudget / MemoryLayout<Record>.stride / threads)
        let spills = try scan(buckets: buckets, threads: threads, recordLimit: limit, offlineRows: offlineRows, progress: progress)
        let winners = SharedBuffer<UInt64>(count: rowCount, repeating: ViewJoin.noMatch)
        let spilled = spills.reduce(0) { $0 + $1.spilledBytes }
        try sweep(spills, buckets: buckets, threads: threads, spilled: spilled, into: winners, progress: progress)
        return try gather(winners, threads: threads, spilled: spilled, progress: progress)
    }

    // MARK: - Scan

    /// Reads keys and timestamps of every row group and buckets the rows that can match.
    private func scan(buckets: Int, threads: Int, recordLimit: Int, offlineRows: Int,
                      progress: (@Sendable (HistoricalProgress) -> Void)?) throws -> [BucketSpill] {
        var units: [(file: Int, group: Int)] = []
        for (f, file) in files.enumerated() {
            for g in file.reader.rowGroups.indices where file.reader.rowGroups[g].rowCount > 0 { units.append((f, g)) }
        }
        let next = Atomic<Int>(0)
        let scanned = Atomic<Int>(0)
        let results = Mutex<[BucketSpill]>([])
        let perBucket = min(recordLimit, offlineRows / threads) / buckets + 1
        try parallel(threads) { _ in
            var writer = BucketWriter(buckets: buckets, reserve: perBucket, limit: recordLimit,
                                      directory: options.temporaryDirectory)
            var encoder = KeyEncoder()
            while true {
                let u = next.add(1, ordering: .relaxed).oldValue
                guard u < units.count else { break }
                let (f, g) = units[u]
                let file = files[f]
                let columns: [Column]
                do {
                    columns = try file.reader.read(rowGroup: g, columns: file.keys + [file.event, file.created])
                } catch {
                    throw HistoricalError("\(error)")
                }
                try scanRows(columns, keyCount: file.keys.count, file: UInt32(f), firstRow: file.rowGroupStarts[g],
                             buckets: buckets, into: &writer, encoder: &encoder)
                let done = scanned.add(columns[0].count, ordering: .relaxed).newValue
                progress?(HistoricalProgress(view: request.view.name, phase: .scan, done: done, total: offlineRows, spilledBytes: 0))
            }
            let spill = BucketSpill(writer)
            results.withLock { $0.append(spill) }
        }
        return results.withLock { $0 }
    }

    private func scanRows(_ columns: [Column], keyCount: Int, file: UInt32, firstRow: Int, buckets: Int,
                          into spill: inout BucketWriter, encoder: inout KeyEncoder) throws {
        let n = columns[0].count
        let events = columns[keyCount], created = columns[keyCount + 1]
        guard events.validity.allSet && created.validity.allSet else {
            throw HistoricalError("\(files[Int(file)].reader.path): null event or created timestamps")
        }
        let asServed = options.asServed
        let ttl = ttl
        let mask = UInt32(buckets - 1)
        let keys = Array(columns[0..<keyCount])
        try dictionary.slots.withUnsafeBufferPointer { slots in
            try events.ints.withUnsafeBufferPointer { ev in
                try created.ints.withUnsafeBufferPointer { cr in
                    func consider(_ slot: KeyDictionary.Slot, _ r: Int) throws {
                        let e = ev[r], c = cr[r]
                        // Rows after every timestamp of the key, or older than the TTL before all of
                        // them, can never be chosen.
                        if (asServed ? max(e, c) : e) > slot.maxTime { return }
                        if ttl > 0 && e < slot.minTime && UInt64(bitPattern: slot.minTime &- e) > UInt64(ttl) { return }
                        try spill.append(Record(event: e, created: c, id: slot.id, file: file, row: UInt32(firstRow + r)),
                                         bucket: Int(slot.id & mask))
                    }
                    if dictionary.singleInt {
                        let key = keys[0]
                        let valid = key.validity.allSet
                        try key.ints.withUnsafeBufferPointer { k in
                            for r in 0..<n where valid || key.validity[r] {
                                if let slot = dictionary.lookup(int: k[r], in: slots) { try consider(slot, r) }
                            }
                        }
                    } else {
                        for r in 0..<n where encoder.encode(keys, row: r) {
                            if let slot = encoder.bytes.withUnsafeBufferPointer({ dictionary.lookup(encoded: $0, in: slots) }) {
                                try consider(slot, r)
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: - Sweep

    /// Joins bucket by bucket: records grouped by key id, each key's records in availability order
    /// (event time, or the later of event and created time when as served) swept against the
    /// key's entity rows in time order, keeping the best row available so far.
    private func sweep(_ spills: [BucketSpill], buckets: Int, threads: Int, spilled: Int, into winners: SharedBuffer<UInt64>,
                       progress: (@Sendable (HistoricalProgress) -> Void)?) throws {
        let next = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        let shift = buckets.trailingZeroBitCount
        let keyCount = dictionary.count
        let asServed = options.asServed
        let ttl = ttl
        try parallel(threads) { _ in
            var records: [Record] = []
            var grouped: [Record] = []
            var counts: [Int] = []
            while true {
                let b = next.add(1, ordering: .relaxed).oldValue
                guard b < buckets else { break }
                records.removeAll(keepingCapacity: true)
                for s in spills { try s.load(bucket: b, into: &records) }
                // Keys of this bucket are b, b + buckets, b + 2·buckets, …: local id = id >> shift.
                let localKeys = keyCount > b ? (keyCount - b + buckets - 1) >> shift : 0
                counts.removeAll(keepingCapacity: true)
                counts.append(contentsOf: repeatElement(0, count: localKeys + 1))
                for r in records { counts[Int(r.id >> UInt32(shift)) + 1] += 1 }
                for k in 0..<localKeys { counts[k + 1] += counts[k] }
                grouped.removeAll(keepingCapacity: true)
                grouped.append(contentsOf: repeatElement(Record(event: 0, created: 0, id: 0, file: 0, row: 0), count: records.count))
                var position = counts
                for r in records {
                    let l = Int(r.id >> UInt32(shift))
                    grouped[position[l]] = r
                    position[l] += 1
                }
                grouped.withUnsafeMutableBufferPointer { all in
                    for l in 0..<localKeys where counts[l + 1] > counts[l] {
                        let id = l << shift | b
                        var group = UnsafeMutableBufferPointer(rebasing: all[counts[l]..<counts[l + 1]])
                        ViewJoin.order(&group, asServed: asServed)
                        ViewJoin.sweep(group, entities: entityRows[entityStart[id]..<entityStart[id + 1]], times: times,
                                       asServed: asServed, ttl: ttl, winners: winners)
                    }
                }
                let done = finished.add(1, ordering: .relaxed).newValue
                progress?(HistoricalProgress(view: request.view.name, phase: .join, done: done, total: buckets, spilledBytes: spilled))
            }
        }
    }

    /// Availability: when a row becomes a candidate as entity time grows.
    @inline(__always)
    static func available(_ r: Record, asServed: Bool) -> Micros { asServed ? max(r.event, r.created) : r.event }

    /// Whether `a` is a better answer than `b`: later event time, then later created time, then
    /// later in the log.
    @inline(__always)
    static func better(_ a: Record, than b: Record) -> Bool {
        (a.event, a.created, a.file, a.row) > (b.event, b.created, b.file, b.row)
    }

    /// Sorts one key's records by availability (already sorted in the common case: one partition's
    /// files in offset order).
    static func order(_ group: inout UnsafeMutableBufferPointer<Record>, asServed: Bool) {
        var sorted = true
        var i = 1
        while i < group.count {
            if available(group[i - 1], asServed: asServed) > available(group[i], asServed: asServed) { sorted = false; break }
            i += 1
        }
        if !sorted { group.sort { available($0, asServed: asServed) < available($1, asServed: asServed) } }
    }

    static func sweep(_ group: UnsafeMutableBufferPointer<Record>, entities: ArraySlice<UInt32>, times: [Micros],
                      asServed: Bool, ttl: Micros, winners: SharedBuffer<UInt64>) {
        var o = 0
        var best: Record?
        for row in entities {
            let ts = times[Int(row)]
            while o < group.count && available(group[o], asServed: asServed) <= ts {
                if best == nil || better(group[o], than: best!) { best = group[o] }
                o += 1
            }
            // The best available row is the answer unless it is older than the TTL (then so is
            // every other available row).
            guard let b = best, ttl == 0 || UInt64(bitPattern: ts &- b.event) <= UInt64(ttl) else { continue }
            winners[Int(row)] = UInt64(b.file) << 32 | UInt64(b.row)
        }
    }

    // MARK: - Gather

    /// Reads the requested features of every winning row into output columns.
    private func gather(_ winners: SharedBuffer<UInt64>, threads: Int, spilled: Int,
                        progress: (@Sendable (HistoricalProgress) -> Void)?) throws -> [Column] {
        // Winners per file, as (row in file) << 32 | entity row, sorted.
        var counts = [Int](repeating: 0, count: files.count + 1)
        for i in 0..<rowCount where winners[i] != ViewJoin.noMatch { counts[Int(winners[i] >> 32) + 1] += 1 }
        for f in 0..<files.count { counts[f + 1] += counts[f] }
        var position = counts
        var pairs = [UInt64](repeating: 0, count: counts[files.count])
        for i in 0..<rowCount where winners[i] != ViewJoin.noMatch {
            let f = Int(winners[i] >> 32)
            pairs[position[f]] = (winners[i] & 0xFFFF_FFFF) << 32 | UInt64(i)
            position[f] += 1
        }
        for f in 0..<files.count { pairs[counts[f]..<counts[f + 1]].sort() }

        let types = request.features.map { request.view.spec.outputType(of: request.view.spec.features[$0]) }
        let output = GatheredFeatures(types: types, rows: rowCount, threads: threads)
        // Largest files first, so that the threads finish together.
        let order = files.indices.sorted { counts[$0 + 1] - counts[$0] > counts[$1 + 1] - counts[$1] }
        let next = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        try parallel(threads) { t in
            while true {
                let k = next.add(1, ordering: .relaxed).oldValue
                guard k < order.count else { break }
                let f = order[k]
                var p = counts[f]
                let end = counts[f + 1]
                let file = files[f]
                // Features the file has (those added to the view later stay null).
                let present = file.features.indices.filter { file.features[$0] != nil }
                for g in file.reader.rowGroups.indices where p < end {
                    let groupEnd = UInt64(file.rowGroupStarts[g + 1])
                    guard pairs[p] >> 32 < groupEnd else { continue }
                    let columns: [Column]
                    do {
                        columns = try file.reader.read(rowGroup: g, columns: present.map { file.features[$0]! })
                    } catch {
                        throw HistoricalError("\(error)")
                    }
                    var q = p
                    while q < end && pairs[q] >> 32 < groupEnd { q += 1 }
                    pairs.withUnsafeBufferPointer { all in
                        let slice = UnsafeBufferPointer(rebasing: all[p..<q])
                        for (c, column) in zip(present, columns) {
                            output.fill(c, from: column, pairs: slice, base: file.rowGroupStarts[g], thread: t)
                        }
                    }
                    p = q
                }
                let done = finished.add(1, ordering: .relaxed).newValue
                progress?(HistoricalProgress(view: request.view.name, phase: .gather, done: done, total: files.count, spilledBytes: spilled))
            }
        }
        return output.columns()
    }
}

/// Runs `body(thread)` on `threads` threads and waits; the first error thrown is rethrown.
func parallel(_ threads: Int, _ body: (Int) throws -> Void) throws {
    let failure = Mutex<(any Error)?>(nil)
    withoutActuallyEscaping(body) { body in
        let shared = UncheckedBody(body)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            do {
                try shared.body(t)
            } catch {
                failure.withLock { if $0 == nil { $0 = error } }
            }
        }
    }
    if let error = failure.withLock({ $0 }) { throw error }
}

/// A closure handed to `concurrentPerform`: every state it touches is either read-only, atomic,
/// behind a lock, or a disjoint part of a `SharedBuffer`.
private struct UncheckedBody: @unchecked Sendable {
    let body: (Int) throws -> Void
    init(_ body: @escaping (Int) throws -> Void) { self.body = body }
}
