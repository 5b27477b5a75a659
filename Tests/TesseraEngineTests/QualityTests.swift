import Foundation
import Testing
import TesseraCore
@testable import TesseraEngine
import TesseraTopology

@Suite("Feature statistics and drift")
struct QualityTests {
    /// Rows of three features (a double, an int, a text; some null) over `hours` of event time.
    static func rows(_ n: Int, hours: Int, seed: UInt64, scale: Double = 1) -> (EmissionBatch, [[Double?]]) {
        var rng = SeededGenerator(seed: seed)
        var e = EmissionBatch(keyTypes: [.int64], featureTypes: [.float64, .int64, .string])
        var exact: [[Double?]] = [[], [], []]
        for i in 0..<n {
            e.eventTimes.append(Int64(i) * Int64(hours) * Time.hour / Int64(n))
            e.entityIds.append(UInt32(i % 97))
            e.closers.append(Int32(i))
            e.keys[0].append(int: Int64(i % 97))
            if Int.random(in: 0..<10, using: &rng) == 0 {
                e.features[0].appendNull()
                exact[0].append(nil)
            } else {
                // Log-normal-ish amounts, some negative, some zero.
                let x = (Double.random(in: -1...4, using: &rng) * 2.3).rounded(.down) == 0 ? 0 : exp(Double.random(in: -2...6, using: &rng)) * (Bool.random(using: &rng) ? 1 : -0.1)
                e.features[0].append(double: x * scale)
                exact[0].append(x * scale)
            }
            let k = Int64.random(in: 0...40, using: &rng)
            e.features[1].append(int: k)
            exact[1].append(Double(k))
            if i % 7 == 0 { e.features[2].appendNull(); exact[2].append(nil) } else { e.features[2].append(string: "s\(i % 5)"); exact[2].append(0) }
        }
        return (e, exact)
    }

    static func nearestRank(_ sorted: [Double], _ q: Double) -> Double {
        sorted[max(1, Int((q * Double(sorted.count)).rounded(.up))) - 1]
    }

    @Test("counts and null shares are exact, moments close, quantiles within the stated error, over partitions and hops")
    func statisticsAgainstExactValues() throws {
        let hop = 5 * Time.minute, window = Time.hour
        let (e, exact) = Self.rows(30_000, hours: 5, seed: 7)
        // Three partitions, fed in uneven chunks; rows go to partition i % 3 in time order.
        var parts = (0..<3).map { _ in ViewStatistics(features: 3, window: window, hop: hop) }
        var owner: [Int] = []
        for p in 0..<3 {
            let mine = (0..<e.count).filter { ($0 * 7919) % 3 == p }
            owner += mine
            var sub = EmissionBatch(keyTypes: [.int64], featureTypes: [.float64, .int64, .string])
            for i in mine {
                sub.eventTimes.append(e.eventTimes[i]); sub.entityIds.append(e.entityIds[i]); sub.closers.append(0)
                sub.keys[0].append(contentsOf: e.keys[0], range: i..<i + 1)
                for f in 0..<3 { sub.features[f].append(contentsOf: e.features[f], range: i..<i + 1) }
            }
            var start = 0, step = 1
            while start < sub.count {
                let end = min(sub.count, start + step)
                parts[p].add(sub, rows: start..<end)
                start = end
                step = step * 3 % 1_000 + 1
            }
        }
        let newest = parts.map(\.newest).max()!
        var rolling = parts[0].emptySummaries, total = parts[0].emptySummaries
        for s in parts { s.collect(newest: newest, window: &rolling, total: &total) }
        let hops = Int64(window / hop)
        let inWindow = (0..<e.count).filter { e.eventTimes[$0] / hop > newest - hops }
        #expect(inWindow.count > 0 && inWindow.count < e.count)
        for (summary, rows) in [(total, Array(0..<e.count)), (rolling, inWindow)] {
            for f in 0..<3 {
                let s = summary[f]
                let values = rows.map { exact[f][$0] }
                #expect(s.rows == values.count)
                #expect(s.nulls == values.filter { $0 == nil }.count)
                guard f < 2 else {
                    // A text feature: rows and nulls only.
                    #expect(s.values == 0 && s.mean == nil && s.stddev == nil && s.quantile(0.5) == nil)
                    continue
                }
                let present = values.compactMap { $0 }.sorted()
                #expect(s.min == present.first! && s.max == present.last!)
                let mean = present.reduce(0, +) / Double(present.count)
                let variance = present.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(present.count)
                #expect(abs(s.mean! - mean) <= 1e-9 * max(1, abs(mean)))
                #expect(abs(s.stddev! - variance.squareRoot()) <= 1e-9 * max(1, variance.squareRoot()))
                for q in [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1] {
                    let want = Self.nearestRank(present, q), got = s.quantile(q)!
                    #expect(abs(got - want) <= ValueSketch.relativeError * abs(want), "feature \(f) q \(q): \(got) vs \(want)")
                }
            }
        }
    }

    @Test("a window whose values are tripled drifts past the thresholds; one like the baseline stays below")
    func drift() throws {
        let (train, trainExact) = Self.rows(20_000, hours: 1, seed: 1)
        _ = train
        let baseline = DriftBaseline.build(view: "v", source: "test", features: [
            ("amount", trainExact[0], trainExact[0].filter { $0 == nil }.count, trainExact[0].count),
            ("count", trainExact[1], 0, trainExact[1].count),
            ("text", nil, trainExact[2].filter { $0 == nil }.count, trainExact[2].count),
        ], bins: 10)
        #expect(baseline.features[0].edges.count == 9 && abs(baseline.features[0].fractions.reduce(0, +) - 1) < 1e-9)
        #expect(abs(baseline.features[2].nullFraction - 1.0 / 7) < 0.001)
        let edges: [[Double]?] = [baseline.features[0].edges, baseline.features[1].edges, nil]
        for (scale, drifted) in [(1.0, false), (3.0, true)] {
            let (live, _) = Self.rows(5_000, hours: 1, seed: 2, scale: scale)
            var stats = ViewStatistics(features: 3, window: Time.hour, hop: 5 * Time.minute, edges: edges)
            stats.add(live, rows: 0..<live.count)
            var rolling = stats.emptySummaries, total = stats.emptySummaries
            stats.collect(newest: stats.newest, window: &rolling, total: &total)
            let psi = (0..<3).map { Drift.psi(baseline.features[$0], counts: rolling[$0].bins, nulls: rolling[$0].nulls, rows: rolling[$0].rows) }
            let ks = Drift.ks(baseline.features[0], counts: rolling[0].bins)
            // The untouched features never drift.
            #expect(psi[1] < 0.05 && psi[2] < 0.05, "\(psi)")
            if drifted {
                #expect(psi[0] > 0.2 && ks > 0.05, "psi \(psi[0]) ks \(ks)")
            } else {
                #expect(psi[0] < 0.05 && ks < 0.03, "psi \(psi[0]) ks \(ks)")
            }
        }
    }

    @Test("the rolling window keeps the last hops only; rows older than the ring count since the start")
    func rollingWindow() {
        var e = EmissionBatch(keyTypes: [.int64], featureTypes: [.int64])
        for (t, x) in [(0, 1), (Time.minute * 6, 2), (Time.minute * 12, 3), (Time.minute * 31, 4), (Time.minute * 1, 5)] as [(Micros, Int64)] {
            e.eventTimes.append(t); e.entityIds.append(0); e.closers.append(0)
            e.keys[0].append(int: 0); e.features[0].append(int: x)
        }
        var s = ViewStatistics(features: 1, window: 15 * Time.minute, hop: 5 * Time.minute)
        s.add(e, rows: 0..<e.count)
        var rolling = s.emptySummaries, total = s.emptySummaries
        s.collect(newest: s.newest, window: &rolling, total: &total)
        // Hops 4..6 (minutes 20–34) are the window: only the value 4; 1, 2, 3 and the late 5 are before it.
        #expect(rolling[0].rows == 1 && rolling[0].min == 4)
        #expect(total[0].rows == 5 && total[0].min == 1 && total[0].max == 5)
    }

    @Test("a topology's quality block: its baseline must be the view's, thresholds numbers, the window whole hops")
    func topologyQuality() throws {
        let dir = NSTemporaryDirectory() + "tessera-quality-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = DriftBaseline(view: "v", source: "t", rows: 1, features: [.init(name: "n", rows: 1, nullFraction: 0, edges: [1], fractions: [1, 0])])
        try good.json().write(to: URL(fileURLWithPath: dir + "/v.json"))
        var other = good
        other.view = "w"
        try other.json().write(to: URL(fileURLWithPath: dir + "/w.json"))
        func load(_ quality: String) -> Result<Topology, TopologyErrors> {
            TopologyLoader.parse(yaml: """
                team: t
                sources:
                  - {name: s, topic: s, format: json, timestamp: {field: ts, unit: ms}, key: id, fields: {id: int64, ts: int64}}
                entities:
                  - {name: e, join_keys: {id: int64}}
                feature_views:
                  - name: v
                    entities: [e]
                    source: s
                    freshness_target: 2s
                    quality: \(quality)
                    features:
                      - {name: n, aggregate: count, window: 1h}
                """, file: dir + "/t.yaml")
        }
        let view = try load("{baseline: v.json, window: 10m, hop: 1m, psi_threshold: 0.3}").get().views[0]
        #expect(view.quality.baseline == good && view.quality.window == 10 * Time.minute && view.quality.psiThreshold == 0.3)
        #expect(view.freshnessTarget == 2 * Time.second)
        for (bad, message) in [("{baseline: w.json}", "is of view 'w', not 'v'"), ("{baseline: none.json}", "cannot read"),
                               ("{psi_threshold: -1}", "psi_threshold must be a number above 0"),
                               ("{window: 1m, hop: 5m}", "between 1 and 1000 hops"), ("{hops: 3}", "unknown key 'hops'")] {
            guard case .failure(let errors) = load(bad) else { Issue.record("accepted \(bad)"); continue }
            #expect(errors.description.contains(message), "\(bad): \(errors)")
        }
    }
}
