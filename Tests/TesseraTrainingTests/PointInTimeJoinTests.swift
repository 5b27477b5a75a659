import Foundation
import Synchronization
import TesseraCore
import TesseraEngine
import TesseraLog
import TesseraOffline
import TesseraTestSupport
import TesseraTopology
import TesseraTraining
import Testing

/// One entity-frame row as generated (nil = null).
struct EntityRow {
    var user: Int64?
    var card: String?
    var merchant: Int64?
    var ts: Micros
    var label: String?
    var weight: Double?
}

/// A random offline log of the three test views and a random entity frame over it.
struct Scenario {
    var directory: String
    var views: [FeatureView]
    var logs: [String: RandomLog] = [:]
    var entities: [EntityRow] = []

    init(seed: UInt64, entities count: Int = 300, rowsPerPartition: Int = 150, exactTies: Bool = true) throws {
        var g = SeededGenerator(seed: seed)
        directory = temporaryDirectory("pit-\(seed)")
        views = try testViews()
        for view in views {
            logs[view.name] = try RandomLog(view: view, directory: directory, entities: 40, rowsPerPartition: rowsPerPartition,
                                            exactTies: exactTies, using: &g)
        }
        // Rows aimed at a real offline row of one view, at its edges: the same instant, just before
        // it, exactly the TTL later and just past it, its created time; plus unknown and null keys
        // and duplicates of earlier rows.
        for _ in 0..<count {
            if !entities.isEmpty && Int.random(in: 0..<10, using: &g) == 0 {
                entities.append(entities.randomElement(using: &g)!)
                continue
            }
            let view = views.randomElement(using: &g)!
            let log = logs[view.name]!
            let target = log.rows.randomElement(using: &g)!
            let ttl = view.ttl == 0 ? Time.hour : view.ttl
            let ts = [target.event, target.event - 1, target.event + ttl, target.event + ttl + 1, target.created,
                      target.created - 1, target.event + Micros.random(in: 0...(2 * Time.hour), using: &g)].randomElement(using: &g)!
            var row = EntityRow(user: 1000 + Int64.random(in: 0..<45, using: &g), card: "c,\"\(Int.random(in: 0..<45, using: &g))\"",
                                merchant: 1000 + 2 * Int64.random(in: 0..<45, using: &g), ts: ts,
                                label: ["x", "a,b", "q\"uote", "line\nbreak", "", nil].randomElement(using: &g)!,
                                weight: Bool.random(using: &g) ? Double(Int.random(in: 0...1000, using: &g)) / 8 + 0.5 : nil)
            switch view.name {
            case "user_view":
                if case .int(let u) = target.key[0] { row.user = u }
            case "pair_view":
                if case .string(let c) = target.key[0], case .int(let m) = target.key[1] { row.card = c; row.merchant = m }
            default:
                if case .string(let c) = target.key[0] { row.card = c }
            }
            if Int.random(in: 0..<20, using: &g) == 0 { row.user = nil }
            if Int.random(in: 0..<20, using: &g) == 0 { row.card = nil }
            entities.append(row)
        }
    }

    /// The entity frame's key values for `view`, nil when one is null.
    func key(_ row: EntityRow, view: FeatureView) -> [Value]? {
        switch view.name {
        case "user_view": return row.user.map { [.int($0)] }
        case "pair_view": return row.card.flatMap { c in row.merchant.map { [.string(c), .int($0)] } }
        default: return row.card.map { [.string($0)] }
        }
    }

    /// The entity frame as a file: Parquet (timestamps as timestampMicros or int64 µs) or CSV
    /// (RFC 3339 in `Z`, `+02:00`-with-a-space forms, or integer µs).
    func writeEntities(parquet: Bool, variant: Int) throws -> String {
        if parquet {
            let path = "\(directory)/entities-\(variant).parquet"
            let ts = variant % 2 == 0 ? ParquetType.timestampMicros : .int64
            let writer = try ParquetFileWriter(path: path, schema: ParquetSchema([
                ParquetField(name: "user_id", type: .int64), ParquetField(name: "card", type: .string),
                ParquetField(name: "merchant", type: .int64), ParquetField(name: "event_timestamp", type: ts, nullable: false),
                ParquetField(name: "label", type: .string), ParquetField(name: "weight", type: .double),
            ]))
            var columns = [Column(type: .int64), Column(type: .string), Column(type: .int64), Column(type: .int64),
                           Column(type: .string), Column(type: .float64)]
            for e in entities {
                columns[0].append(e.user.map { .int($0) })
                columns[1].append(e.card.map { .string($0) })
                columns[2].append(e.merchant.map { .int($0) })
                columns[3].append(int: e.ts)
                columns[4].append(e.label.map { .string($0) })
                columns[5].append(e.weight.map { .double($0) })
            }
            try writer.write(rowGroup: columns)
            try writer.close()
            return path
        }
        func quoted(_ s: String?) -> String {
            guard let s else { return "" }
            return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        var text = "user_id,card,merchant,event_timestamp,label,weight\r\n"
        for (i, e) in entities.enumerated() {
            let ts: String
            switch (variant + i) % 3 {
            case 0 where variant % 2 == 0: ts = RFC3339.format(e.ts)
            case 1 where variant % 2 == 0:
                ts = RFC3339.format(e.ts + 2 * Time.hour).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "+02:00")
            case 2 where variant % 2 == 0: ts = "\"" + RFC3339.format(e.ts) + "\""
            default: ts = String(e.ts)
            }
            text += [e.user.map(String.init) ?? "", quoted(e.card), e.merchant.map(String.init) ?? "", ts,
                     quoted(e.label), e.weight.map { String($0) } ?? ""].joined(separator: ",") + "\n"
        }
        let path = "\(directory)/entities-\(variant).csv"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

/// Reads a written training set back: column names and each cell as text-or-value.
struct WrittenSet {
    var names: [String]
    var types: [ParquetType?]
    var columns: [Column]

    init(path: String) throws {
        if path.hasSuffix(".parquet") {
            let reader = try ParquetFileReader(path: path)
            names = reader.schema.fields.map(\.name)
            types = reader.schema.fields.map(\.type)
            columns = try reader.readAll()
        } else {
            let frame = try Frame.read(path: path)
            names = frame.names
            types = Array(repeating: nil, count: names.count)
            columns = frame.columns
        }
    }

    var rowCount: Int { columns.first?.count ?? 0 }

    /// Whether cell (c, row) holds `expected` (CSV cells compare as their text).
    func holds(_ c: Int, _ row: Int, _ expected: Value?) -> Bool {
        let actual = columns[c].value(at: row)
        guard types[c] == nil else { return actual == expected }
        guard case .string(let text) = actual else { return actual == nil && expected == nil }
        switch expected {
        case nil: return false
        case .int(let v): return text == String(v)
        case .double(let v): return Double(text) == v
        case .bool(let v): return text == String(v)
        case .string(let s): return text == s
        }
    }

    /// Cell (c, row) as a timestamp: a timestampMicros value, or RFC 3339 text with six fractional digits and Z.
    func timestamp(_ c: Int, _ row: Int) -> Micros? {
        switch columns[c].value(at: row) {
        case .int(let v) where types[c] == .timestampMicros: return v
        case .string(let text) where text.hasSuffix("Z") && text.count == 27: return Timestamps.parse(text)
        default: return nil
        }
    }
}

@Suite("Point-in-time joins against a brute-force oracle")
struct PointInTimeJoinTests {
    static let requests = "card_view:card_ok,user_view:*,pair_view:amount_mean,pair_view:last_status,card_view:card_total"
    static let fullRequests = "card_view:card_ok,user_view:*,pair_view:*,card_view:card_total"

    @Test("random logs and frames, every flag combination", arguments: 0..<16)
    func random(combination: Int) throws {
        let asServed = combination & 1 != 0
        let fullNames = combination & 2 != 0
        let parquetIn = combination & 4 != 0
        let parquetOut = combination & 8 != 0
        let scenario = try Scenario(seed: UInt64(100 + combination))
        let input = try scenario.writeEntities(parquet: parquetIn, variant: combination)
        var options = HistoricalOptions()
        options.asServed = asServed
        options.fullFeatureNames = fullNames
        options.threads = 1 + combination % 2
        let references = try FeatureReference.parse(list: fullNames ? Self.fullRequests : Self.requests)
        let result = try HistoricalRetrieval(views: scenario.views, offlineDirectory: scenario.directory, options: options)
            .join(try Frame.read(path: input), features: references)
        let output = "\(scenario.directory)/out-\(combination).\(parquetOut ? "parquet" : "csv")"
        try result.write(to: output)
        try check(WrittenSet(path: output), scenario, references: references, asServed: asServed, fullNames: fullNames)
    }

    @Test("records spilled to disk give the same training set as records kept in memory")
    func spilling() throws {
        let scenario = try Scenario(seed: 7, entities: 600, rowsPerPartition: 4_000)
        let input = try scenario.writeEntities(parquet: true, variant: 0)
        let references = try FeatureReference.parse(list: Self.fullRequests)
        var options = HistoricalOptions()
        options.fullFeatureNames = true
        let inMemory = try HistoricalRetrieval(views: scenario.views, offlineDirectory: scenario.directory, options: options)
            .join(try Frame.read(path: input), features: references)
        options.memoryBudget = 0
        options.temporaryDirectory = scenario.directory
        let spilled = Mutex(0)
        let onDisk = try HistoricalRetrieval(views: scenario.views, offlineDirectory: scenario.directory, options: options)
            .join(try Frame.read(path: input), features: references) { p in spilled.withLock { $0 = max($0, p.spilledBytes) } }
        #expect(spilled.withLock { $0 } > 0, "nothing was spilled")
        #expect(onDisk.columns == inMemory.columns)
        let output = "\(scenario.directory)/spilled.parquet"
        try onDisk.write(to: output)
        try check(WrittenSet(path: output), scenario, references: references, asServed: false, fullNames: true)
        // Spill files are unlinked as soon as they are created.
        #expect(try FileManager.default.contentsOfDirectory(atPath: scenario.directory).filter { $0.hasSuffix(".spill") }.isEmpty)
    }

    /// Every input column in order and unchanged, then each requested feature equal to the oracle's.
    func check(_ set: WrittenSet, _ scenario: Scenario, references: [FeatureReference], asServed: Bool, fullNames: Bool) throws {
        let inputs = ["user_id", "card", "merchant", "event_timestamp", "label", "weight"]
        var features: [(view: FeatureView, index: Int, name: String)] = []
        for r in references {
            let view = scenario.views.first { $0.name == r.view }!
            for (i, f) in view.spec.features.enumerated() where r.feature == "*" || r.feature == f.name {
                features.append((view, i, fullNames ? "\(view.name)__\(f.name)" : f.name))
            }
        }
        #expect(set.names == inputs + features.map(\.name))
        #expect(set.rowCount == scenario.entities.count)
        guard set.names == inputs + features.map(\.name), set.rowCount == scenario.entities.count else { return }
        var failures = 0
        for (row, e) in scenario.entities.enumerated() where failures < 5 {
            let given: [Value?] = [e.user.map { .int($0) }, e.card.map { .string($0) }, e.merchant.map { .int($0) }, nil,
                                   e.label.map { .string($0) }, e.weight.map { .double($0) }]
            for c in inputs.indices where c != 3 && !set.holds(c, row, given[c]) {
                Issue.record("row \(row): input column \(inputs[c]) is \(String(describing: set.columns[c].value(at: row))), was \(String(describing: given[c]))")
                failures += 1
            }
            if set.timestamp(3, row) != e.ts {
                Issue.record("row \(row): timestamp \(String(describing: set.columns[3].value(at: row))), was \(e.ts)")
                failures += 1
            }
            var answers: [String: OfflineRow?] = [:]
            for (k, f) in features.enumerated() {
                let answer = answers[f.view.name] ?? oracle(scenario.logs[f.view.name]!.rows, key: scenario.key(e, view: f.view),
                                                             at: e.ts, ttl: f.view.ttl, asServed: asServed)
                answers[f.view.name] = answer
                let expected = answer?.features[f.index] ?? nil
                if !set.holds(inputs.count + k, row, expected) {
                    Issue.record("row \(row) (\(e)): \(f.name) is \(String(describing: set.columns[inputs.count + k].value(at: row))), the oracle says \(String(describing: expected)) from \(String(describing: answer))")
                    failures += 1
                }
            }
        }
    }
}

@Suite("Point-in-time join errors")
struct PointInTimeJoinErrorTests {
    func run(_ csv: String, _ features: String, fullNames: Bool = false, column: String = "event_timestamp") throws -> Frame {
        let directory = temporaryDirectory("pit-errors")
        try csv.write(toFile: "\(directory)/e.csv", atomically: true, encoding: .utf8)
        var options = HistoricalOptions()
        options.fullFeatureNames = fullNames
        options.timestampColumn = column
        return try HistoricalRetrieval(views: try testViews(), offlineDirectory: directory, options: options)
            .join(try Frame.read(path: "\(directory)/e.csv"), features: try FeatureReference.parse(list: features))
    }

    func message(_ body: () throws -> Frame) -> String {
        do {
            _ = try body()
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test("a feature name in two views needs full feature names, and then works")
    func collision() throws {
        let csv = "user_id,card,merchant,event_timestamp\n1,c,2,2026-01-01T00:00:00Z\n"
        #expect(message { try run(csv, "user_view:n,pair_view:n") }.contains("--full-feature-names"))
        #expect(message { try run(csv, "user_view:*,pair_view:*") }.contains("--full-feature-names"))
        let frame = try run(csv, "user_view:n,pair_view:n", fullNames: true)
        #expect(frame.names == ["user_id", "card", "merchant", "event_timestamp", "user_view__n", "pair_view__n"])
        #expect(message { try run("n,user_id,event_timestamp\n1,1,0\n", "user_view:n") }.contains("collides with the entity frame's column"))
    }

    @Test("missing or mistyped join keys, unknown views and features, bad timestamps are explained")
    func errors() {
        #expect(message { try run("user,event_timestamp\n1,2026-01-01T00:00:00Z\n", "user_view:n") }
            .contains("no column 'user_id', a join key of view 'user_view'"))
        #expect(message { try run("user_id,event_timestamp\nabc,2026-01-01T00:00:00Z\n", "user_view:n") }
            .contains("'abc' in 'user_id' is not an integer"))
        #expect(message { try run("user_id,event_timestamp\n1,2026-01-01T00:00:00Z\n", "nope:n") }.contains("no feature view 'nope'"))
        #expect(message { try run("user_id,event_timestamp\n1,2026-01-01T00:00:00Z\n", "user_view:nope") }
            .contains("has no feature 'nope'"))
        #expect(message { try run("user_id,ts\n1,2026-01-01T00:00:00Z\n", "user_view:n") }.contains("--timestamp-column"))
        #expect(message { try run("user_id,event_timestamp\n1,yesterday\n", "user_view:n") }.contains("'yesterday'"))
        #expect(message { try run("user_id,event_timestamp\n1,\n", "user_view:n") }.contains("row 1"))
        #expect(message { try run("user_id,event_timestamp\n1,2,3\n", "user_view:n") }.contains("e.csv:2: more fields than the header's 2"))
        #expect(throws: HistoricalError.self) { try FeatureReference.parse(list: "user_view") }
    }

    @Test("a string key column cannot join an int64 key")
    func keyTypes() throws {
        let directory = temporaryDirectory("pit-types")
        let writer = try ParquetFileWriter(path: "\(directory)/e.parquet", schema: ParquetSchema([
            ParquetField(name: "user_id", type: .string), ParquetField(name: "event_timestamp", type: .timestampMicros)]))
        var user = Column(type: .string), ts = Column(type: .int64)
        user.append(string: "1")
        ts.append(int: 0)
        try writer.write(rowGroup: [user, ts])
        try writer.close()
        let m = message {
            try HistoricalRetrieval(views: try testViews(), offlineDirectory: directory)
                .join(try Frame.read(path: "\(directory)/e.parquet"), features: [FeatureReference(view: "user_view", feature: "n")])
        }
        #expect(m.contains("'user_id' is string, but view 'user_view' joins on user_id as int64"))
    }
}

@Suite("Point-in-time joins over a view that gained a feature")
struct AddedFeatureTests {
    /// Two files of `user_view`: the first written before `ok` was added to the view (no such
    /// column), the second after. Rows matched in the first file have `ok` null, the other
    /// features as written; rows matched in the second have every feature.
    @Test("files written before a feature was added give nulls for it, and every other feature")
    func olderFilesLackTheNewColumn() throws {
        let directory = temporaryDirectory("pit-added")
        let view = try testViews().first { $0.name == "user_view" }!
        let dir = "\(directory)/user_view/partition=0"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let full = OfflineLog.schema(of: view)
        let before = ParquetSchema(full.fields.filter { $0.name != "ok" })
        let t0 = RandomLog.start
        func write(_ path: String, _ schema: ParquetSchema, user: Int64, at: Micros, n: Int64, ok: Bool?) throws {
            let writer = try ParquetFileWriter(path: "\(dir)/\(path)", schema: schema)
            let values: [String: Value?] = ["user_id": .int(user), "n": .int(n), "total": .double(Double(n) * 2.5), "status": .string("paid"),
                                            "ok": ok.map { .bool($0) }, "event_timestamp": .int(at), "created_timestamp": .int(at),
                                            OfflineLog.offsetColumn: .int(n)]
            var columns: [Column] = []
            for field in schema.fields {
                var c = Column(type: field.type == .double ? .float64 : field.type == .string ? .string : field.type == .bool ? .bool : .int64)
                c.append(values[field.name]!)
                columns.append(c)
            }
            try writer.write(rowGroup: columns)
            try writer.close()
        }
        try write("0000000000-00000000000000000001-00000000000000000001.parquet", before, user: 1, at: t0, n: 1, ok: nil)
        try write("0000000001-00000000000000000002-00000000000000000002.parquet", full, user: 2, at: t0 + Time.minute, n: 2, ok: true)

        let csv = "user_id,event_timestamp\n1,\(t0 + Time.second)\n2,\(t0 + 2 * Time.minute)\n3,\(t0 + 2 * Time.minute)\n"
        try csv.write(toFile: "\(directory)/e.csv", atomically: true, encoding: .utf8)
        let frame = try HistoricalRetrieval(views: try testViews(), offlineDirectory: directory)
            .join(try Frame.read(path: "\(directory)/e.csv"), features: try FeatureReference.parse(list: "user_view:*"))
        #expect(frame.names == ["user_id", "event_timestamp", "n", "total", "status", "ok"])
        let rows = (0..<3).map { r in frame.columns[2...].map { $0.value(at: r) } }
        #expect(rows[0] == [.int(1), .double(2.5), .string("paid"), nil])
        #expect(rows[1] == [.int(2), .double(5), .string("paid"), .bool(true)])
        #expect(rows[2] == [nil, nil, nil, nil])
    }
}
