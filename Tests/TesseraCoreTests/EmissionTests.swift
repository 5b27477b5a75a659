import Testing
import TesseraCore
import TesseraTestSupport

/// Hand-written cases for the emission rules (the property tests check the values; these pin
/// down how many rows appear and when).
@Suite("Emissions")
struct EmissionTests {
    static let schema = Schema([("user", .int64), ("amount", .float64)])
    static let spec = try! ViewSpec(name: "v", schema: schema, keyFields: [0], features: [
        FeatureSpec(name: "n_10s", aggregate: .count, window: .sliding(length: 10_000_000, hop: 5_000_000)),
        FeatureSpec(name: "total", aggregate: .sum, field: 1, window: .lifetime),
    ])

    static func batch(_ rows: [(Micros, Int64, Double)]) -> ColumnBatch {
        var b = ColumnBatch(schema: schema.types)
        for (t, user, amount) in rows { b.append(time: t, [.int(user), .double(amount)]) }
        return b
    }

    static func rows(_ core: inout PartitionAggregator) -> [String] {
        let e = core.views[0].emissions
        defer { core.removeAllEmissions() }
        return (0..<e.count).map { i in
            let r = e.row(i)
            return "\(r.time / 1_000_000)s \(r.key[0]) \(r.features.map { $0.map(\.description) ?? "null" }.joined(separator: " "))"
        }
    }

    @Test("rows of one entity at one stream time coalesce within a batch, not across batches")
    func coalescing() {
        var core = PartitionAggregator(views: [Self.spec], allowedLateness: 0)
        core.ingest(Self.batch([(1_000_000, 7, 1), (1_000_000, 7, 2), (1_000_000, 8, 5), (1_000_000, 7, 3)]))
        #expect(Self.rows(&core) == ["1s 7 3 6.0", "1s 8 1 5.0"])
        // Both rows at 1 s are still open (stream time has not moved on): the next batch carries
        // them on, entity 7's coalesced with its new row.
        core.ingest(Self.batch([(1_000_000, 7, 4)]))
        #expect(Self.rows(&core) == ["1s 7 4 10.0", "1s 8 1 5.0"])
        #expect(core.views[0].emissions.closedCount == 0)
        core.ingest(Self.batch([(2_000_000, 9, 1)]))
        let e = core.views[0].emissions
        #expect(e.closedCount == 2 && e.closers == [0, 0, -1])
        #expect(Self.rows(&core) == ["1s 7 4 10.0", "1s 8 1 5.0", "2s 9 1 1.0"])
    }

    @Test("a tile leaving the window emits at the boundary; a row at the boundary shares it")
    func expiry() {
        var core = PartitionAggregator(views: [Self.spec], allowedLateness: 0)
        // Tile [0s, 5s) leaves the 10 s window at 15 s; tile [5s, 10s) at 20 s.
        core.ingest(Self.batch([(1_000_000, 7, 1), (6_000_000, 7, 1)]))
        #expect(Self.rows(&core) == ["1s 7 1 1.0", "6s 7 2 2.0"])
        core.ingest(Self.batch([(15_000_000, 7, 1)]))
        // The open 6 s row is carried on and closed by the 15 s row.
        #expect(Self.rows(&core) == ["6s 7 2 2.0", "15s 7 2 3.0"])
        // The idle hook: stream time moves without events and values decay; the tile of the
        // 15 s row ([15s, 20s)) leaves at 30 s.
        core.advance(to: 29_000_000)
        #expect(Self.rows(&core) == ["15s 7 2 3.0", "20s 7 1 3.0"])
        core.advance(to: 40_000_000)
        #expect(Self.rows(&core) == ["30s 7 0 3.0"])
        core.advance(to: 90_000_000)
        #expect(Self.rows(&core).isEmpty)
    }

    @Test("late events are rejected with their watermark and change nothing")
    func late() {
        var core = PartitionAggregator(views: [Self.spec], allowedLateness: 2_000_000)
        let rejected = core.ingest(Self.batch([(10_000_000, 7, 1), (8_000_000, 7, 1), (7_999_999, 7, 100)]))
        #expect(rejected.map(\.row) == [2])
        #expect(rejected.first?.reason == .late(eventTime: 7_999_999, watermark: 8_000_000))
        #expect(Self.rows(&core) == ["10s 7 2 2.0"])
    }

    @Test("rows without a join key are reported, the others aggregated")
    func missingKey() {
        var core = PartitionAggregator(views: [Self.spec], allowedLateness: 0)
        var b = Self.batch([(1_000_000, 7, 1)])
        b.append(time: 2_000_000, [nil, .double(9)])
        let rejected = core.ingest(b)
        #expect(rejected.map(\.row) == [1])
        #expect(rejected.first?.reason == .missingKey(view: "v"))
        #expect(Self.rows(&core) == ["1s 7 1 1.0"])
    }

    @Test("a rejected row leaves no trace: stream time, emissions and state as if it never came",
          arguments: ["out of range", "missing key", "future", "late"])
    func inert(reason: String) {
        let good: [(Micros, Int64, Double)] = [(10_000_000, 7, 1), (11_000_000, 8, 2), (14_000_000, 7, 3), (20_000_000, 9, 1)]
        // The bad row comes second, stamped ahead of every good row unless it is the late one.
        let bad: (time: Micros, user: Value?)
        let expected: PartitionAggregator.Rejection
        switch reason {
        case "out of range":
            bad = (PartitionAggregator.validTimes.upperBound + 1, .int(7))
            expected = .timeOutOfRange(eventTime: bad.time)
        case "missing key":
            bad = (3_600_000_000, nil)
            expected = .missingKey(view: "v")
        case "future":
            bad = (3_600_000_000, .int(7))
            expected = .future(eventTime: bad.time, limit: 60_000_000)
        default:
            bad = (1_000_000, .int(7))
            expected = .late(eventTime: bad.time, watermark: 8_000_000)
        }
        var with = Self.batch([good[0]])
        with.append(time: bad.time, [bad.user, .double(100)])
        for (t, user, amount) in good[1...] { with.append(time: t, [.int(user), .double(amount)]) }
        var clean = PartitionAggregator(views: [Self.spec], allowedLateness: 2_000_000)
        var salted = PartitionAggregator(views: [Self.spec], allowedLateness: 2_000_000)
        clean.ingest(Self.batch(good), notAfter: Array(repeating: 60_000_000, count: good.count))
        let rejected = salted.ingest(with, notAfter: Array(repeating: 60_000_000, count: with.count))
        #expect(rejected.map(\.row) == [1])
        #expect(rejected.first?.reason == expected)
        #expect(salted.streamTime == clean.streamTime && salted.watermark == clean.watermark)
        #expect(salted.views[0].emissions.closedCount == clean.views[0].emissions.closedCount)
        #expect(Self.rows(&salted) == Self.rows(&clean))
        #expect(salted.image().bytes == clean.image().bytes)
        // Good rows after it are judged by the good rows' stream time: 9 s is within lateness.
        #expect(salted.ingest(Self.batch([(19_000_000, 8, 1)])).isEmpty)
    }
}

@Suite("Decimal text")
struct DecimalTextTests {
    @Test("a record key matches an int64 key field only as its exact decimal text")
    func matches() {
        func m(_ text: String, _ v: Int64) -> Bool { Array(text.utf8).withUnsafeBytes { DecimalText.matches($0, v) } }
        var g = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let v = Int64.random(in: .min ... .max, using: &g) >> Int64.random(in: 0...63, using: &g)
            #expect(m(String(v), v))
            #expect(!m(String(v &+ 1), v) && !m("0" + String(v), v) && !m("+" + String(v), v) && !m(String(v) + " ", v))
        }
        for v in [Int64.min, Int64.max, 0, -1, 10] { #expect(m(String(v), v)) }
        #expect(!m("", 0) && !m("-0", 0) && !m("-", 0) && !m("00", 0) && !m("1", -1) && !m("-1", 1))
        // Bytes just outside the digits, an empty negative, and 2⁶⁴ + 1 (which wraps to 1 in 64 bits).
        #expect(!m("1/2", 2_652) && !m("1:2", 202) && !m("", -5) && !m("-", -1) && !m("18446744073709551617", 1))
    }

    @Test("an integer's text is its description")
    func integers() {
        func text(_ v: Int64) -> String { appended { DecimalText.append(v, to: &$0) } }
        var g = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            // Every length: the random value shifted right by 0 to 63 bits.
            let v = Int64.random(in: .min ... .max, using: &g) >> Int64.random(in: 0...63, using: &g)
            #expect(text(v) == v.description)
        }
        for v: Int64 in [.min, .max, .min + 1, 0, -1, 1, 9, 10, 99, 100, -100, 1_767_225_600_000_000] { #expect(text(v) == v.description) }
    }

    @Test("a double's text is its description, which reads back as the same double")
    func doubles() {
        func text(_ x: Double) -> String { appended { DecimalText.append(x, to: &$0) } }
        var g = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            // Every bit pattern: any exponent, subnormals, infinities and NaNs included.
            let x = Double(bitPattern: UInt64.random(in: 0 ... .max, using: &g))
            #expect(text(x) == x.description)
            if x.isFinite { #expect(Double(text(x)) == x) }
        }
        for x in [0.0, -0.0, 1, -1.5, 0.1, 1e-7, 123_456_789.125, .greatestFiniteMagnitude, .leastNonzeroMagnitude, .infinity, -.infinity] {
            #expect(text(x) == x.description)
        }
    }
}

/// What `append` adds to a buffer that already holds a byte, as text (the byte must stay as it was).
private func appended(_ append: (inout [UInt8]) -> Void) -> String {
    var out: [UInt8] = [0x2A]
    append(&out)
    #expect(out.first == 0x2A)
    return String(decoding: out.dropFirst(), as: UTF8.self)
}
