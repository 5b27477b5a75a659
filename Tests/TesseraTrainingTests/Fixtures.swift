import Foundation
import TesseraCore
import TesseraEngine
import TesseraLog
import TesseraOffline
import TesseraTestSupport
import TesseraTopology
import TesseraTraining

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func temporaryDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "tessera-\(name)-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Three views over one source: a single int64 key with a 1 h TTL, two keys (string, int64)
/// without TTL, and a string key with a 90 s TTL. Feature `n` exists in two views (a name clash).
let testTopology = """
    team: training
    sources:
      - name: events
        topic: events
        format: json
        timestamp: {field: ts, unit: us}
        fields: {user_id: int64, card: string, merchant: int64, amount: float64, status: string, ok: bool}
      - name: card_events
        topic: card_events
        format: json
        timestamp: {field: ts, unit: us}
        fields: {user_id: int64, card: string, merchant: int64, amount: float64, status: string, ok: bool}
    entities:
      - name: user
        join_keys: {user_id: int64}
      - name: card
        join_keys: {card: string}
      - name: merchant
        join_keys: {merchant: int64}
    feature_views:
      - name: user_view
        entities: [user]
        source: events
        ttl: 1h
        features:
          - {name: n, aggregate: count, window: 1h}
          - {name: total, aggregate: sum, field: amount, window: 1h}
          - {name: status, aggregate: last, field: status, window: lifetime}
          - {name: ok, aggregate: last, field: ok, window: lifetime}
      - name: pair_view
        entities: [card, merchant]
        source: card_events
        features:
          - {name: n, aggregate: count, window: 1d}
          - {name: amount_mean, aggregate: mean, field: amount, window: 1d}
          - {name: last_status, aggregate: last, field: status, window: lifetime}
      - name: card_view
        entities: [card]
        source: card_events
        ttl: 90s
        features:
          - {name: card_total, aggregate: sum, field: amount, window: 1d}
          - {name: card_ok, aggregate: last, field: ok, window: lifetime}
    """

func testViews() throws -> [FeatureView] {
    try TopologyLoader.parse(yaml: testTopology, file: "training.yaml").get().views
}

/// Runs `python3 -c SCRIPT ARGS…`; returns the exit status and what it printed (stdout + stderr).
func python(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// One offline row as the oracle sees it.
struct OfflineRow {
    var key: [Value]
    var event: Micros
    var created: Micros
    var features: [Value?]
    /// Position in the log: partition, file and row order (the last tie-break).
    var position: (partition: Int, file: Int, row: Int)
}

/// A random offline log of one view, written in the worker's layout, and every row it holds.
struct RandomLog {
    var rows: [OfflineRow] = []
    /// Every entity key that has rows.
    var keys: [[Value]] = []

    static let start: Micros = 1_767_225_600 * Time.second

    /// Entities are spread over `partitions` (each entity in one partition); within a partition,
    /// event times never decrease (stream time), several rows share an event time, created times
    /// land a little before or after it, and features are null one time in five. Files hold 1–40
    /// rows in one or two row groups and are named like the worker's (`SEQUENCE-FIRST-LAST.parquet`).
    /// With `exactTies` false, rows of one key never share both timestamps (peers that break such
    /// ties arbitrarily then agree).
    init(view: FeatureView, directory: String, entities: Int, rowsPerPartition: Int, partitions: Int = 3,
         exactTies: Bool = true, using g: inout SeededGenerator) throws {
        keys = (0..<entities).map { RandomLog.key(view, $0) }
        let schema = OfflineLog.schema(of: view)
        for p in 0..<partitions {
            let dir = "\(directory)/\(view.name)/partition=\(p)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let mine = keys.indices.filter { $0 % partitions == p }
            guard !mine.isEmpty else { continue }
            var time = RandomLog.start + Micros.random(in: 0..<Time.minute, using: &g)
            var partitionRows: [OfflineRow] = []
            for _ in 0..<rowsPerPartition {
                if Int.random(in: 0..<3, using: &g) > 0 { time += Micros.random(in: 0...(10 * Time.second), using: &g) }
                let k = mine.randomElement(using: &g)!
                var row = OfflineRow(key: keys[k], event: time, created: time + Micros.random(in: -500...3_000, using: &g),
                                     features: view.spec.features.map { RandomLog.value(view.spec.outputType(of: $0), using: &g) },
                                     position: (p, 0, 0))
                // A second version of the same instant, written later (or at the same created time).
                if Int.random(in: 0..<8, using: &g) == 0, let previous = partitionRows.last {
                    row.key = previous.key
                    row.event = previous.event
                    row.created = previous.created + Micros.random(in: (exactTies ? 0 : 1)...2, using: &g)
                }
                partitionRows.append(row)
            }
            var offset: Int64 = Int64.random(in: 0..<100, using: &g)
            var i = 0
            var file = 0
            while i < partitionRows.count {
                let n = min(partitionRows.count - i, Int.random(in: 1...40, using: &g))
                let first = offset
                var columns = schema.fields.map { f -> Column in
                    switch f.type {
                    case .string: return Column(type: .string)
                    case .double: return Column(type: .float64)
                    case .bool: return Column(type: .bool)
                    default: return Column(type: .int64)
                    }
                }
                for r in 0..<n {
                    var row = partitionRows[i + r]
                    row.position = (p, file, r)
                    rows.append(row)
                    var c = 0
                    for v in row.key { columns[c].append(v); c += 1 }
                    for v in row.features { columns[c].append(v); c += 1 }
                    columns[c].append(int: row.event)
                    columns[c + 1].append(int: row.created)
                    columns[c + 2].append(int: offset)
                    offset += Int64.random(in: 1...3, using: &g)
                }
                let name = OfflineLog.fileName(sequence: Int64(file), first: first, last: offset - 1)
                let writer = try ParquetFileWriter(path: "\(dir)/\(name)", schema: schema)
                let split = n > 1 && Bool.random(using: &g) ? Int.random(in: 1..<n, using: &g) : n
                try writer.write(rowGroup: columns.map { $0.sliced(0..<split) })
                if split < n { try writer.write(rowGroup: columns.map { $0.sliced(split..<n) }) }
                try writer.close()
                i += n
                file += 1
            }
        }
    }

    static func key(_ view: FeatureView, _ i: Int) -> [Value] {
        view.joinKeys.enumerated().map { k, key in
            key.type == .string ? .string(k == 0 ? "c,\"\(i)\"" : "m\(i)") : .int(Int64(1000 + i * (k + 1)))
        }
    }

    static func value(_ type: ValueType, using g: inout SeededGenerator) -> Value? {
        guard Int.random(in: 0..<5, using: &g) > 0 else { return nil }
        switch type {
        case .int64: return .int(Int64.random(in: -50...5_000, using: &g))
        case .float64: return .double(Double(Int.random(in: 0...100_000, using: &g)) / 64)
        case .string: return .string(["paid", "refunded", "cancelled", "", "a,b \"q\""].randomElement(using: &g)!)
        case .bool: return .bool(Bool.random(using: &g))
        }
    }
}

/// The brute-force answer: the row with the largest (event, created, position) among those of the
/// same key with event ≤ ts (and created ≤ ts when as served), if within the TTL.
func oracle(_ rows: [OfflineRow], key: [Value]?, at ts: Micros, ttl: Micros, asServed: Bool) -> OfflineRow? {
    guard let key else { return nil }
    var best: OfflineRow?
    for r in rows where r.key == key && r.event <= ts && (!asServed || r.created <= ts) {
        if let b = best, (b.event, b.created, b.position.partition, b.position.file, b.position.row)
            > (r.event, r.created, r.position.partition, r.position.file, r.position.row) { continue }
        best = r
    }
    guard let b = best, ttl == 0 || ts - b.event <= ttl else { return nil }
    return b
}
