import Foundation
import TesseraCore
import TesseraOffline
import TesseraTopology

/// How a point-in-time join runs.
public struct HistoricalOptions: Sendable {
    /// The entity frame's timestamp column (default `event_timestamp`).
    public var timestampColumn = "event_timestamp"
    /// Name the feature columns `VIEW__FEATURE` instead of `FEATURE`.
    public var fullFeatureNames = false
    /// Also require `created_timestamp ≤ ts`: only rows that had been written by then, i.e. what
    /// serving could have returned at `ts`.
    public var asServed = false
    /// How integer timestamps in the entity frame are read (default: by magnitude, see `EpochUnit.auto`).
    public var epochUnit = Timestamps.EpochUnit.auto
    /// Threads that scan, join and gather (default 2).
    public var threads = 2
    /// Bytes of offline-row records kept in memory before they spill to `temporaryDirectory`
    /// (default 512 MiB). Records are 32 bytes per offline row that can match an entity row.
    public var memoryBudget = 512 << 20
    /// Where spilled records go (default: the system's temporary directory); removed afterwards.
    public var temporaryDirectory = NSTemporaryDirectory()

    public init() {}
}

/// Where a running join is, for progress bars: `done` of `total` units of the current phase.
public struct HistoricalProgress: Sendable {
    public enum Phase: String, Sendable {
        /// Reading the join keys and timestamps of the offline files (units: rows).
        case scan
        /// Joining bucket by bucket (units: buckets).
        case join
        /// Reading the winning rows' features (units: files).
        case gather
    }

    public var view: String
    public var phase: Phase
    public var done: Int
    public var total: Int
    /// Bytes of offline-row records spilled to temporary files for this view (known from the join phase on).
    public var spilledBytes: Int
}

/// Point-in-time (as-of) joins of an entity frame against the offline log: Feast's
/// `get_historical_features` over Tessera's Parquet files (docs/design.md, "Point-in-time retrieval").
///
/// For each entity row and each requested view, the answer is the offline row of the same entity
/// (every join key equal) with the largest `(event_timestamp, created_timestamp)` among those with
/// `event_timestamp ≤ ts` (and `created_timestamp ≤ ts` when `asServed`); when the view has a TTL,
/// it counts only if `ts − event_timestamp ≤ ttl`. Rows that tie on both timestamps resolve to the
/// one later in the log (partition, then offset order). No answer gives nulls. The output has every
/// entity-frame column in order (the timestamp column as `timestampMicros`), then the requested
/// features in request order, one row per entity row in entity-frame order.
///
/// How: a sort-merge join over buckets. The frame's distinct keys get dense ids (`KeyDictionary`);
/// the offline files are scanned (key, event and created timestamps only) by `threads` threads,
/// and each row that can match becomes a 32-byte record in the bucket of its key id, spilling to
/// temporary files past `memoryBudget`; the number of buckets comes from the files' row counts.
/// Buckets are then joined independently (records grouped by key, each key's rows swept in time
/// order against the frame's rows of that key), which picks the winning file and row for every
/// entity row. Last, the requested feature columns are read from the row groups that hold winners.
/// Memory: the entity frame and the result, plus about `memoryBudget` of records at most, plus the
/// decoded columns of one row group per thread; the offline log's size only costs time.
public struct HistoricalRetrieval: Sendable {
    public let views: [FeatureView]
    public let offlineDirectory: String
    public var options: HistoricalOptions

    public init(views: [FeatureView], offlineDirectory: String, options: HistoricalOptions = HistoricalOptions()) {
        self.views = views
        self.offlineDirectory = offlineDirectory
        self.options = options
    }

    /// Joins `entities` with `features`; see the type's documentation for the semantics.
    public func join(_ entities: Frame, features: [FeatureReference],
                     progress: (@Sendable (HistoricalProgress) -> Void)? = nil) throws -> Frame {
        guard entities.rowCount < Int(UInt32.max) else { throw HistoricalError("an entity frame holds fewer than 2³² rows") }
        let selection = try FeatureSelection(features, views: views, fullNames: options.fullFeatureNames, inputNames: entities.names)
        guard let t = entities.index(of: options.timestampColumn) else {
            throw HistoricalError("the entity frame has no column '\(options.timestampColumn)' (its columns: \(entities.names.joined(separator: ", "))); name the timestamp column with --timestamp-column")
        }
        let times = try EntityTimes.read(entities.columns[t], kind: entities.kinds[t], name: options.timestampColumn, unit: options.epochUnit)
        var output = entities
        var timeColumn = Column(type: .int64)
        timeColumn.ints = times
        timeColumn.validity.appendSet(count: times.count)
        output.replace(t, with: timeColumn, kind: .typed(.timestampMicros))

        var results: [[Column]] = []
        for request in selection.views {
            let join = try ViewJoin(request: request, entities: entities, times: times, directory: offlineDirectory, options: options)
            results.append(try join.run(progress: progress))
        }
        for (v, slot) in selection.order {
            let request = selection.views[v]
            let type = OfflineSchema.parquetType(request.view.spec.outputType(of: request.view.spec.features[request.features[slot]]))
            try output.append(name: request.outputNames[slot], column: results[v][slot], kind: .typed(type))
        }
        return output
    }
}

/// The entity frame's timestamps as microseconds.
enum EntityTimes {
    static func read(_ column: Column, kind: Frame.Kind, name: String, unit: Timestamps.EpochUnit) throws -> [Micros] {
        var out = [Micros]()
        out.reserveCapacity(column.count)
        func missing(_ row: Int) -> HistoricalError {
            HistoricalError("row \(row + 1) of the entity frame has no timestamp in '\(name)'")
        }
        switch (kind, column.type) {
        case (.typed(.timestampMicros), .int64):
            for i in 0..<column.count {
                guard column.validity[i] else { throw missing(i) }
                out.append(column.ints[i])
            }
        case (.typed(.int64), .int64), (.typed(.int32), .int64):
            for i in 0..<column.count where !column.validity[i] { throw missing(i) }
            out = try epochs(column.ints, unit: unit, name: name)
        case (.text, .string), (.typed(.string), .string):
            // RFC 3339 text, or (when every value is an integer) epoch integers.
            var integers: [Int64] = []
            integers.reserveCapacity(column.count)
            var allIntegers = true
            for i in 0..<column.count {
                guard column.validity[i] else { throw missing(i) }
                if allIntegers, let v = column.withUTF8(at: i, { CSV.parseInteger($0) }) {
                    integers.append(v)
                    continue
                }
                allIntegers = false
                guard let t = column.withUTF8(at: i, { Timestamps.parse($0) }) else {
                    throw HistoricalError("row \(i + 1) of the entity frame: '\(column.string(at: i))' in '\(name)' is neither an RFC 3339 timestamp nor an integer epoch")
                }
                out.append(t)
            }
            if allIntegers { return try epochs(integers, unit: unit, name: name) }
            if !integers.isEmpty {
                throw HistoricalError("'\(name)' mixes integer epochs and RFC 3339 timestamps; use one form")
            }
        default:
            throw HistoricalError("the timestamp column '\(name)' must hold timestamps, integer epochs or RFC 3339 text, not \(column.type) values")
        }
        return out
    }

    private static func epochs(_ values: [Int64], unit: Timestamps.EpochUnit, name: String) throws -> [Micros] {
        var resolved = unit
        if unit == .auto { resolved = .detect(largest: values.reduce(0) { max($0, $1.magnitude) }) }
        return try values.map { v in
            guard let t = resolved.micros(v) else { throw HistoricalError("epoch \(v) in '\(name)' is out of range in \(resolved.rawValue)") }
            return t
        }
    }
}

/// The offline log's column types, as `OfflineLog.schema` writes them.
enum OfflineSchema {
    static func parquetType(_ type: ValueType) -> ParquetType {
        switch type {
        case .int64: return .int64
        case .float64: return .double
        case .string: return .string
        case .bool: return .bool
        }
    }
}
