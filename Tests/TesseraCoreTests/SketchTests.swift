import Testing
@testable import TesseraCore
import TesseraTestSupport

/// The approximate aggregates against exact answers, over windows that slide many times: exact
/// distinct counts up to `HLL.exactLimit`, the sliding HyperLogLog within its stated error beyond,
/// exact percentiles up to `Quantiles.exactLimit` values, relative-error buckets beyond.
@Suite("Sketches: stated accuracy while windows slide")
struct SketchTests {
    static let schema = Schema([("user", .int64), ("value", .int64), ("amount", .float64)])
    static let hop: Micros = 1_000_000

    /// One entity's stream: `events` rows spread over `hops` hops, values from `draw`, some rows
    /// late by up to `disorder` (within the lateness).
    static func stream(events: Int, hops: Int, disorder: Micros, seed: UInt64, draw: (inout SeededGenerator, Int) -> (Int64, Double))
        -> [(time: Micros, value: Int64, amount: Double)] {
        var g = SeededGenerator(seed: seed)
        return (0..<events).map { i in
            let base = Micros(i) * Micros(hops) * hop / Micros(events)
            let late = disorder > 0 && Int.random(in: 0..<4, using: &g) == 0 ? Micros.random(in: 0...disorder, using: &g) : 0
            let (v, a) = draw(&g, i)
            return (base - late, v, a)
        }
    }

    /// Runs the stream through a view (checkpointing and restoring every `restoreEvery` batches)
    /// and returns the emitted rows of the one entity.
    static func run(_ spec: ViewSpec, _ rows: [(time: Micros, value: Int64, amount: Double)], lateness: Micros, restoreEvery: Int = 0,
                    beforeSaving disturb: (ViewAggregator) -> Void = { _ in }) throws -> EmissionLog {
        var core = PartitionAggregator(views: [spec], allowedLateness: lateness)
        var log = EmissionLog()
        var batches = 0
        for start in stride(from: 0, to: rows.count, by: 997) {
            var batch = ColumnBatch(schema: schema.types)
            for r in rows[start..<min(rows.count, start + 997)] { batch.append(time: r.time, [.int(1), .int(r.value), .double(r.amount)]) }
            let rejected = core.ingest(batch)
            #expect(rejected.isEmpty)
            log.collect(core.views[0].emissions)
            core.removeAllEmissions()
            batches += 1
            if restoreEvery > 0 && batches % restoreEvery == 0 {
                disturb(core.views[0])
                core = try PartitionAggregator(views: [spec], allowedLateness: lateness, restoring: core.serialized())
            }
        }
        return log
    }

    /// Query times: the emitted row times, sampled.
    static func queries(_ log: EmissionLog, count: Int, seed: UInt64) -> [Micros] {
        var g = SeededGenerator(seed: seed)
        let times = log.rows[[.int(1)]]!.map(\.time)
        return (0..<count).map { _ in times.randomElement(using: &g)! }
    }

    /// The rows in the sawtooth window of length `w` at time q (stream time is q).
    /// A stream with the running maximum of its times (its stream time after each row).
    struct Stream {
        let rows: [(time: Micros, value: Int64, amount: Double)]
        let streamTimes: [Micros]
        init(_ rows: [(time: Micros, value: Int64, amount: Double)]) {
            self.rows = rows
            var now = Micros.min
            streamTimes = rows.map { r in
                now = max(now, r.time)
                return now
            }
        }

        /// The rows in the sawtooth window of length `w` at stream time q.
        func window(length w: Micros, at q: Micros) -> [(time: Micros, value: Int64, amount: Double)] {
            let tail = Time.floorDiv(q - w, hop) * hop
            // The rows in by stream time q are a prefix.
            var lo = 0, hi = rows.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if streamTimes[mid] <= q { lo = mid + 1 } else { hi = mid }
            }
            // Rows are less than a hop out of order: earlier ones than this cannot be in the window.
            var start = lo
            while start > 0 && streamTimes[start - 1] >= tail - hop { start -= 1 }
            return rows[start..<lo].filter { $0.time >= tail && $0.time <= q }
        }
    }

    static func distinctSpec(windows: [Micros]) throws -> ViewSpec {
        try ViewSpec(name: "v", schema: schema, keyFields: [0], features: windows.enumerated().map { i, w in
            FeatureSpec(name: "d\(i)", aggregate: .approxCountDistinct, field: 1, window: w == 0 ? .lifetime : .sliding(length: w, hop: hop))
        })
    }

    @Test("an exact set whose tiles outrun its 24-bit stamps moves to a new base and stays exact")
    func exactSetRebase() throws {
        // Tiles of 1 µs: the entity's set lives through 2²⁵ tiles (an event every 400 µs in a
        // 1 000 µs window keeps a tile on the ring), past its stamps' range twice.
        let w: Micros = 1_000
        let spec = try ViewSpec(name: "v", schema: Self.schema, keyFields: [0], features: [
            FeatureSpec(name: "d", aggregate: .approxCountDistinct, field: 1, window: .sliding(length: w, hop: 1)),
        ])
        var g = SeededGenerator(seed: 11)
        let rows = (0..<(1 << 25) / 400).map { i in (time: Micros(i) * 400, value: Int64.random(in: 0..<40, using: &g), amount: 0.0) }
        let log = try Self.run(spec, rows, lateness: 0, restoreEvery: 13)
        for q in Self.queries(log, count: 300, seed: 12) {
            let last = Int(q / 400)
            let exact = Set(rows[max(0, last - 3)...last].filter { $0.time >= q - w }.map(\.value)).count
            #expect(log.asOf([.int(1)], q)![0] == .int(Int64(exact)), "at \(q)")
        }
    }

    @Test("tiles that keep their index in 4 bytes move to a new base when a tile would not fit, indices unchanged")
    func compactTileIndexRebase() throws {
        // A distinct count makes its ring keep 4-byte tile indices relative to the deque's base.
        let spec = try ViewSpec(name: "v", schema: Self.schema, keyFields: [0], features: [
            FeatureSpec(name: "d", aggregate: .approxCountDistinct, field: 1, window: .sliding(length: 1 << 20, hop: 1)),
        ])
        let program = ViewProgram(spec: spec)
        let layout = program.layout.ring(0)
        #expect(layout.baseOffset >= 0)
        var store = RingStore(layout: layout)
        let record = UnsafeMutableRawPointer.allocate(byteCount: program.layout.stride, alignment: 8)
        defer { record.deallocate() }
        record.copyMemory(from: program.layout.template, byteCount: program.layout.stride)
        // Jumps of 2³¹ tiles and more (a deque meets them over a long run, a window at a time:
        // the tiles before a jump have left), small steps between them, and at the end a late
        // tile 2³⁰ before the first: each of the jumps and the late tile is past what the base allows.
        var expected: [Int64] = []
        var g = SeededGenerator(seed: 17)
        var k: Int64 = 1_700_000_000_000
        func popFront() {
            store.popFront(record)
            expected.removeFirst()
        }
        for step in 1...40 {
            if step % 3 == 0 {
                while expected.count > 1 { popFront() }
                k += Int64.random(in: (1 << 31)...(5 << 29), using: &g)
            } else {
                k += Int64.random(in: 1...1_000, using: &g)
            }
            _ = store.insert(record, at: expected.count, index: k)
            expected.append(k)
            if expected.count > 3 { popFront() }
            let view = store.view(record)
            #expect((0..<view.count).map { view.index($0) } == expected, "after tile \(k)")
        }
        while expected.count > 1 { popFront() }
        let late = expected[0] - (1 << 30) - 7
        _ = store.insert(record, at: 0, index: late)
        expected.insert(late, at: 0)
        let view = store.view(record)
        #expect((0..<view.count).map { view.index($0) } == expected)
    }

    @Test("distinct counts are exact up to the exact limit, however often the windows slide", arguments: [0, 1])
    func exactDistinct(disorder: Int) throws {
        let hop = Self.hop
        let windows: [Micros] = [6 * hop, 24 * hop]
        let rows = Self.stream(events: 20_000, hops: 200, disorder: disorder == 1 ? hop / 2 : 0, seed: 1) { g, i in
            (Int64(i / 20 + Int.random(in: 0..<300, using: &g)), 0)
        }
        let log = try Self.run(Self.distinctSpec(windows: windows), rows, lateness: hop, restoreEvery: 7)
        let stream = Stream(rows)
        for q in Self.queries(log, count: 80, seed: 2) {
            let row = log.asOf([.int(1)], q)!
            for (j, w) in windows.enumerated() {
                let exact = Set(stream.window(length: w, at: q).map(\.value)).count
                #expect(row[j] == .int(Int64(exact)), "window \(w) at \(q)")
            }
        }
    }

    /// The estimate of a HyperLogLog built from scratch over `values` (the reference a sliding
    /// sketch must equal).
    static func freshEstimate(_ values: Set<Int64>) -> Int64 {
        var registers = [UInt8](repeating: 0, count: HLL.registers)
        for v in values {
            let (r, rank) = HLL.register(StableHash.hash(int: v))
            registers[r] = max(registers[r], rank)
        }
        var histogram = [UInt16](repeating: 0, count: 64)
        for r in registers { histogram[Int(r)] += 1 }
        return Int64(histogram.withUnsafeBufferPointer { HLL.estimate(histogram: UnsafeBufferPointer(rebasing: $0[0...HLL.maxRank])) }.rounded())
    }

    @Test("beyond the exact limit, each window's sliding sketch equals a HyperLogLog of exactly the window's values", arguments: [0, 1])
    func slidingSketch(disorder: Int) throws {
        let hop = Self.hop
        let windows: [Micros] = [4 * hop, 12 * hop]
        // Up to ~6 500 distinct values in the long window; the mix drifts so values leave too.
        let rows = Self.stream(events: 40_000, hops: 36, disorder: disorder == 1 ? hop / 2 : 0, seed: 3) { g, i in
            (Int64(i / 3 + Int.random(in: 0..<2_000, using: &g)), 0)
        }
        let log = try Self.run(Self.distinctSpec(windows: windows), rows, lateness: hop, restoreEvery: 29)
        let stream = Stream(rows)
        var sketched = 0
        for q in Self.queries(log, count: 40, seed: 4) {
            let row = log.asOf([.int(1)], q)!
            for (j, w) in windows.enumerated() {
                let values = Set(stream.window(length: w, at: q).map(\.value))
                guard values.count > HLL.exactLimit else { continue }
                sketched += 1
                let reference = Self.freshEstimate(values)
                #expect(row[j] == .int(reference), "window \(w) at \(q) (\(values.count) values)")
                // And the stated accuracy.
                #expect(abs(Double(reference) - Double(values.count)) <= 4 * HLL.relativeStandardError * Double(values.count))
            }
        }
        #expect(sketched > 15)
    }

    /// Overwrites the window fields of every sketched distinct count with -1, as a state saved
    /// before sketches published their estimates there holds other numbers in them; returns how
    /// many records it changed.
    @discardableResult
    static func overwriteSketchedFields(_ view: ViewAggregator) -> Int {
        var changed = 0
        for kernel in view.kernels.distincts {
            for e in 0..<UInt32(view.keys.count) {
                let record = view.records.pointer(e)
                guard record.load(fromByteOffset: kernel.handleOffset, as: DistinctHandle.self).mode == DistinctHandle.sketch else { continue }
                for o in kernel.shape.windowOffsets { record.storeBytes(of: -1, toByteOffset: o, as: Int64.self) }
                changed += 1
            }
        }
        return changed
    }

    @Test("a restored state's sketched distinct counts are read from the sketches, not from what the saved record held")
    func restoredSketchesPublish() throws {
        let hop = Self.hop
        let windows: [Micros] = [4 * hop, 12 * hop]
        let rows = Self.stream(events: 40_000, hops: 36, disorder: hop / 2, seed: 5) { g, i in
            (Int64(i / 3 + Int.random(in: 0..<2_000, using: &g)), 0)
        }
        let spec = try Self.distinctSpec(windows: windows)
        var overwritten = 0
        let disturbed = try Self.run(spec, rows, lateness: hop, restoreEvery: 5) { overwritten += Self.overwriteSketchedFields($0) }
        let undisturbed = try Self.run(spec, rows, lateness: hop)
        #expect(overwritten > 3)
        let a = disturbed.rows[[.int(1)]] ?? [], b = undisturbed.rows[[.int(1)]] ?? []
        #expect(a.count == b.count && a.count > 30_000, "\(a.count) rows against \(b.count)")
        let differing = zip(a, b).filter { $0.time != $1.time || $0.features != $1.features }.count
        #expect(differing == 0, "\(differing) of \(a.count) rows differ")
    }

    @Test("lifetime distinct counts: exact, then a HyperLogLog within three standard errors", arguments: [10, 1_000, 4_096, 4_097, 20_000, 80_000])
    func lifetimeDistinct(n: Int) throws {
        var g = SeededGenerator(seed: UInt64(n))
        let values = (0..<n).map { _ in Int64.random(in: .min ... .max, using: &g) }
        // Every value twice: duplicates count once.
        let rows = (values + values).enumerated().map { (time: Micros($0.offset), value: $0.element, amount: 0.0) }
        let log = try Self.run(Self.distinctSpec(windows: [0]), rows, lateness: 0)
        guard case .int(let estimate) = log.asOf([.int(1)], .max)![0] else { Issue.record("no estimate"); return }
        if n <= HLL.exactLimit {
            #expect(estimate == Int64(n))
        } else {
            #expect(abs(Double(estimate) - Double(n)) <= 3 * HLL.relativeStandardError * Double(n), "n = \(n): \(estimate)")
        }
    }

    static func percentileSpec(_ p: [Double], window: Micros) throws -> ViewSpec {
        try ViewSpec(name: "v", schema: schema, keyFields: [0], features: p.enumerated().map { i, q in
            FeatureSpec(name: "p\(i)", aggregate: .approxPercentile, field: 2, window: window == 0 ? .lifetime : .sliding(length: window, hop: hop),
                        percentile: q)
        })
    }

    /// The nearest-rank q-quantile.
    static func quantile(_ xs: [Double], _ q: Double) -> Double {
        let sorted = xs.sorted()
        return sorted[min(sorted.count, max(1, Int((q * Double(sorted.count)).rounded(.up)))) - 1]
    }

    @Test("percentiles: exact up to the exact limit, within the stated relative error beyond, while the window slides",
          arguments: [(3_000, 0), (24_000, 0), (24_000, 1)])
    func percentiles(events: Int, disorder: Int) throws {
        let ps = [0.0, 0.05, 0.5, 0.9, 0.99, 1.0]
        let hop = Self.hop
        let w = 8 * hop
        let rows = Self.stream(events: events, hops: 48, disorder: disorder == 1 ? hop / 2 : 0, seed: 5) { g, i in
            // Positive, negative and zero amounts, spread over orders of magnitude.
            let zero = Int.random(in: 0..<20, using: &g) == 0
            let magnitude = pow10(Double.random(in: -3...6, using: &g))
            let negative = Int.random(in: 0..<6, using: &g) == 0
            let amount: Double = zero ? 0 : (negative ? -magnitude : magnitude)
            return (Int64(i % 7), amount)
        }
        let log = try Self.run(Self.percentileSpec(ps, window: w), rows, lateness: hop, restoreEvery: 11)
        let stream = Stream(rows)
        var approximate = 0
        for q in Self.queries(log, count: 50, seed: 6) {
            let row = log.asOf([.int(1)], q)!
            let xs = stream.window(length: w, at: q).map(\.amount)
            for (j, p) in ps.enumerated() {
                guard case .double(let v) = row[j] else { Issue.record("no value at \(q)"); continue }
                let exact = Self.quantile(xs, p)
                if xs.count <= Quantiles.exactLimit {
                    #expect(v == exact, "p\(p) over \(xs.count) values: \(v) vs \(exact)")
                } else {
                    approximate += 1
                    #expect(abs(v - exact) <= Quantiles.relativeError * abs(exact) + Quantiles.zeroMagnitude + 1e-12 * abs(exact),
                            "p\(p) over \(xs.count) values: \(v) vs \(exact)")
                }
            }
        }
        if events > 10_000 { #expect(approximate > 30) }
    }

    @Test("a sliding sketch's per-tile register lists: every change as on a list of arrays, through packs, a save and a restore")
    func registerLists() throws {
        var lists = RegisterLists()
        var model: [[UInt16]] = []
        var generator = SeededGenerator(seed: 12)
        func check() {
            #expect(lists.count == model.count)
            for i in model.indices {
                #expect((0..<lists.count(i)).map { UInt16(lists.register(i, $0)) } == model[i], "list \(i)")
            }
        }
        // Tiles come and go: each round makes a list (reusing a freed one half the time, as the
        // sketch does), fills it past the room it was given, appends to a few older live ones and
        // frees the list made twenty rounds before.
        var free: [Int] = [], made: [Int] = []
        for round in 0..<6_000 {
            let capacity = Int.random(in: 0...40, using: &generator)
            let i: Int
            if !free.isEmpty && Bool.random(using: &generator) {
                i = free.removeLast()
                lists.reset(i, capacity: capacity)
                model[i] = []
            } else {
                i = lists.make(capacity: capacity)
                model.append([])
            }
            made.append(i)
            for _ in 0..<Int.random(in: 0...90, using: &generator) {
                let r = UInt16.random(in: 0..<4_096, using: &generator)
                lists.append(i, r)
                model[i].append(r)
            }
            for j in made.suffix(5) where !free.contains(j) {
                lists.append(j, UInt16(round % 4_096))
                model[j].append(UInt16(round % 4_096))
            }
            if made.count > 20 {
                let old = made.removeFirst()
                if !free.contains(old) {
                    lists.free(old)
                    model[old] = []
                    free.append(old)
                }
            }
            if round % 500 == 0 { check() }
        }
        check()
        // Freed room is used again: the live lists hold ~20 × 100 registers, the pool would have
        // grown past 500 000 without packing.
        #expect(lists.memory < 400_000, "\(lists.memory) bytes")

        // Saved in the format of the arrays they replace, and restored to the same lists.
        var saved = ByteWriter(), expected = ByteWriter()
        lists.serialize(into: &saved)
        expected.write(arrays: model)
        #expect(saved.bytes == expected.bytes)
        var reader = ByteReader(saved.bytes)
        lists = try RegisterLists(from: &reader)
        check()
        #expect(lists.registers(below: 4_096) && !lists.registers(below: 4_000))
    }
}

private func pow10(_ x: Double) -> Double {
    var r = 1.0
    var e = x
    while e >= 1 { r *= 10; e -= 1 }
    while e < 0 { r /= 10; e += 1 }
    // 10^e for e in [0, 1): a few terms of exp(e · ln 10) are plenty for test data.
    let t = e * 2.302_585_092_994_046
    return r * (1 + t + t * t / 2 + t * t * t / 6 + t * t * t * t / 24 + t * t * t * t * t / 120)
}
