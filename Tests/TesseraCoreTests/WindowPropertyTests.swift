import Testing
import TesseraCore
import TesseraTestSupport

/// Random event streams against the brute-force oracle: invariants 1 and 2 of docs/design.md ("Emissions and their invariants") at
/// random and boundary query times, for every aggregate and window kind.
@Suite("Window semantics against the oracle")
struct WindowPropertyTests {
    static let schema = Schema([
        ("user", .int64), ("region", .string), ("amount", .float64), ("qty", .int64),
        ("status", .string), ("flag", .bool),
    ])
    static let statuses = ["paid", "refunded", "cancelled", "é"]

    /// Short windows in microseconds so that streams of a few hundred events cross many boundaries.
    static let windows: [Window] = [
        .sliding(length: 1_000, hop: 1_000), .sliding(length: 3_000, hop: 1_000), .sliding(length: 5_000, hop: 1_000),
        .sliding(length: 4_000, hop: 2_000), .sliding(length: 10_000, hop: 2_000), .sliding(length: 7_000, hop: 7_000),
        .lifetime,
    ]

    static func randomFilter(_ g: inout SeededGenerator) -> Predicate? {
        switch Int.random(in: 0..<9, using: &g) {
        case 0: return .compare(field: 4, .eq, .string("paid"))
        case 1: return .compare(field: 2, .gt, .double(40))
        case 2: return .and(.compare(field: 3, .le, .int(3)), .not(.compare(field: 4, .eq, .string("cancelled"))))
        case 3: return .isIn(field: 4, [.string("refunded"), .string("é")])
        case 4: return .or(.compare(field: 5, .eq, .bool(true)), .isNull(field: 2))
        case 5: return .compare(field: 4, .ge, .string("paid"))
        default: return nil
        }
    }

    static func randomSpec(_ g: inout SeededGenerator, multiKey: Bool) throws -> ViewSpec {
        var features: [FeatureSpec] = []
        let n = Int.random(in: 4...14, using: &g)
        for i in 0..<n {
            let aggregate = Aggregate.allCases.randomElement(using: &g)!
            var field: Int?
            switch aggregate.fieldRequirement {
            case .optional: field = Bool.random(using: &g) ? nil : [2, 3, 4].randomElement(using: &g)
            case .numeric: field = [2, 3].randomElement(using: &g)
            case .any: field = [2, 3, 4, 5].randomElement(using: &g)
            }
            features.append(FeatureSpec(
                name: "f\(i)", aggregate: aggregate, field: field,
                window: windows.randomElement(using: &g)!, filter: randomFilter(&g),
                percentile: aggregate == .approxPercentile ? [0, 0.1, 0.5, 0.9, 1].randomElement(using: &g) : nil))
        }
        return try ViewSpec(name: "v", schema: schema, keyFields: multiKey ? [0, 1] : [0], features: features)
    }

    static func randomRow(_ g: inout SeededGenerator, users: Int) -> [Value?] {
        func maybe(_ v: Value) -> Value? { Int.random(in: 0..<8, using: &g) == 0 ? nil : v }
        return [
            Int.random(in: 0..<30, using: &g) == 0 ? nil : .int(Int64.random(in: 0..<Int64(users), using: &g)),
            .string(["eu", "us"].randomElement(using: &g)!),
            maybe(.double(Double(Int.random(in: 0...10_000, using: &g)) / 100)),
            maybe(.int(Int64.random(in: -2...6, using: &g))),
            maybe(.string(statuses.randomElement(using: &g)!)),
            maybe(.bool(Bool.random(using: &g))),
        ]
    }

    /// Runs one random stream; returns the number of (entity, query) checks made.
    static func check(seed: UInt64, disorder: Bool, multiKey: Bool = false) throws -> Int {
        var g = SeededGenerator(seed: seed)
        let spec = try randomSpec(&g, multiKey: multiKey)
        let lateness: Micros = disorder ? 1_500 : 0
        var core = PartitionAggregator(views: [spec], allowedLateness: lateness)
        var oracle = Oracle(spec: spec, lateness: lateness)
        var log = EmissionLog()
        let users = Int.random(in: 1...6, using: &g)
        var now = Micros.random(in: -20_000...20_000, using: &g)
        var emitted: [Micros] = []
        var lateSoFar = 0
        for _ in 0..<Int.random(in: 5...40, using: &g) {
            var batch = ColumnBatch(schema: schema.types)
            for _ in 0..<Int.random(in: 1...30, using: &g) {
                switch Int.random(in: 0..<20, using: &g) {
                case 0: now += Micros.random(in: 0...25_000, using: &g)
                case 1, 2: now = (now / 1_000 + 1) * 1_000  // exactly on a hop boundary
                default: now += Micros.random(in: 0...400, using: &g)
                }
                var t = now
                if disorder && Int.random(in: 0..<4, using: &g) == 0 { t -= Micros.random(in: 0...3_000, using: &g) }
                let row = randomRow(&g, users: users)
                batch.append(time: t, row)
                oracle.add(time: t, values: row)
            }
            let rejected = core.ingest(batch)
            // Every row the oracle rejects as late is reported as late, with nothing else lost.
            let late = rejected.filter { if case .late = $0.reason { return true } else { return false } }.count
            #expect(late == oracle.late - lateSoFar)
            lateSoFar = oracle.late
            // One emission per entity and stream time within a batch (coalescing).
            let emissions = core.views[0].emissions
            let pairs = (0..<emissions.count).map { "\(emissions.entityIds[$0])@\(emissions.eventTimes[$0])" }
            #expect(Set(pairs).count == pairs.count)
            log.collect(core.views[0].emissions)
            emitted.append(contentsOf: core.views[0].emissions.eventTimes)
            core.removeAllEmissions()
            switch Int.random(in: 0..<8, using: &g) {
            case 0:  // the idle hook: stream time moves without events
                now += Micros.random(in: 0...12_000, using: &g)
                core.advance(to: now)
                oracle.advance(to: now)
                log.collect(core.views[0].emissions)
                emitted.append(contentsOf: core.views[0].emissions.eventTimes)
                core.removeAllEmissions()
            case 1:  // checkpoint and restore mid-stream
                core = try PartitionAggregator(views: [spec], allowedLateness: lateness, restoring: core.serialized())
            default: break
            }
        }
        #expect(core.streamTime == oracle.streamTime)
        // No leakage and ordering: emission times never go backwards.
        #expect(zip(emitted, emitted.dropFirst()).allSatisfy { $0 <= $1 })

        let end = oracle.streamTime
        var queries = Set(emitted.flatMap { [$0, $0 - 1, $0 + 1] })
        for _ in 0..<150 { queries.insert(Micros.random(in: (end - 60_000)...end, using: &g)) }
        for k in stride(from: (end - 40_000) / 1_000 * 1_000, through: end, by: 1_000) { queries.insert(k) }
        queries = queries.filter { $0 <= end }
        var checks = 0
        for key in oracle.events.keys {
            for q in queries.sorted() {
                let expected = oracle.row(key, at: q)
                let actual = log.asOf(key, q) ?? emptyRow(spec)
                for (i, f) in spec.features.enumerated() where !agree(actual[i], expected[i], aggregate: f.aggregate) {
                    Issue.record("seed \(seed): \(key) at \(q): \(f.name) = \(f.aggregate.rawValue) over \(f.window)\(f.filter.map { " where \($0.text(names: schema.names))" } ?? ""): core \(String(describing: actual[i])), oracle \(String(describing: expected[i]))")
                    return checks
                }
                checks += 1
            }
        }
        return checks
    }

    @Test("in-order streams: as-of values equal the sawtooth aggregate", arguments: 0..<40)
    func inOrder(seed: Int) throws {
        #expect(try Self.check(seed: UInt64(seed), disorder: false) > 0)
    }

    @Test("disordered streams, within and beyond lateness", arguments: 100..<140)
    func disordered(seed: Int) throws {
        #expect(try Self.check(seed: UInt64(seed), disorder: true) > 0)
    }

    /// A long stream of few entities: every window slides thousands of times (min/max/first/last
    /// split their windows again and again, sketches lose tiles), with checkpoints and disorder.
    @Test("long streams: windows slide thousands of times", arguments: 300..<306)
    func longRun(seed: Int) throws {
        var g = SeededGenerator(seed: UInt64(seed))
        let spec = try Self.randomSpec(&g, multiKey: false)
        let lateness: Micros = 1_500
        var core = PartitionAggregator(views: [spec], allowedLateness: lateness)
        var oracle = Oracle(spec: spec, lateness: lateness)
        var log = EmissionLog()
        var now: Micros = 0
        for b in 0..<300 {
            var batch = ColumnBatch(schema: Self.schema.types)
            for _ in 0..<50 {
                now += Micros.random(in: 0...300, using: &g)
                let t = Int.random(in: 0..<4, using: &g) == 0 ? now - Micros.random(in: 0...1_200, using: &g) : now
                let row = Self.randomRow(&g, users: 3)
                batch.append(time: t, row)
                oracle.add(time: t, values: row)
            }
            core.ingest(batch)
            log.collect(core.views[0].emissions)
            core.removeAllEmissions()
            if b % 37 == 36 { core = try PartitionAggregator(views: [spec], allowedLateness: lateness, restoring: core.serialized()) }
        }
        var checks = 0
        for key in oracle.events.keys {
            let times = log.rows[key]?.map(\.time) ?? []
            for _ in 0..<120 {
                let q = Bool.random(using: &g) ? times.randomElement(using: &g) ?? now : Micros.random(in: 0...now, using: &g)
                let expected = oracle.row(key, at: q)
                let actual = log.asOf(key, q) ?? emptyRow(spec)
                for (i, f) in spec.features.enumerated() where !agree(actual[i], expected[i], aggregate: f.aggregate) {
                    Issue.record("seed \(seed): \(key) at \(q): \(f.name) = \(f.aggregate.rawValue) over \(f.window): core \(String(describing: actual[i])), oracle \(String(describing: expected[i]))")
                    return
                }
                checks += 1
            }
        }
        #expect(checks > 0)
    }

    @Test("entities with two join keys (int64 and string)", arguments: 200..<210)
    func multiKey(seed: Int) throws {
        #expect(try Self.check(seed: UInt64(seed), disorder: true, multiKey: true) > 0)
    }
}
