import Testing
import TesseraCore
import TesseraTestSupport

/// Merge is associative for every partial, and merging partials equals aggregating the union.
@Suite("Partial merges")
struct MergeTests {
    static func values(_ g: inout SeededGenerator, _ n: Int) -> [(Double, Micros)] {
        (0..<n).map { _ in (Double(Int.random(in: -10_000...10_000, using: &g)) / 100, Micros.random(in: 0..<1_000, using: &g)) }
    }

    /// Builds partials of three random parts, merges them both ways and from the union,
    /// and returns the three finalized outputs for `mode`.
    static func check<K: AggregateKernel>(_ kernel: K, input: (Double) -> K.Input, mode: Int = 0, type: ValueType, seed: UInt64) -> [Value?] {
        var kernel = kernel
        var g = SeededGenerator(seed: seed)
        let parts = (0..<3).map { _ in values(&g, Int.random(in: 0...3_000, using: &g)) }
        func build(_ xs: [(Double, Micros)]) -> K.Partial {
            var p = kernel.empty
            for (x, t) in xs { kernel.update(&p, input(x), time: t) }
            return p
        }
        let a = build(parts[0]), b = build(parts[1]), c = build(parts[2])
        var left = kernel.empty
        kernel.merge(&left, a); kernel.merge(&left, b)
        var leftAll = kernel.empty
        kernel.merge(&leftAll, left); kernel.merge(&leftAll, c)           // (a ∪ b) ∪ c
        var right = kernel.empty
        kernel.merge(&right, b); kernel.merge(&right, c)
        var rightAll = kernel.empty
        kernel.merge(&rightAll, a); kernel.merge(&rightAll, right)        // a ∪ (b ∪ c)
        let union = build(parts[0] + parts[1] + parts[2])
        return [leftAll, rightAll, union].map { p -> Value? in
            guard let bits = kernel.finalize(p, mode: mode) else { return nil }
            return type == .int64 ? .int(Int64(bitPattern: bits)) : .double(Double(bitPattern: bits))
        }
    }

    static func expectClose(_ v: [Value?], relative: Double = 1e-9, _ name: String) {
        for i in 1..<3 {
            switch (v[0], v[i]) {
            case (.double(let x), .double(let y)):
                #expect(abs(x - y) <= relative * max(1, abs(x)), "\(name): \(x) vs \(y)")
            default:
                #expect(v[0] == v[i], "\(name): \(String(describing: v[0])) vs \(String(describing: v[i]))")
            }
        }
    }

    @Test("scalar partials", arguments: 0..<20)
    func scalars(seed: Int) {
        let s = UInt64(seed)
        Self.expectClose(Self.check(CountKernel(), input: { _ in 0 }, type: .int64, seed: s), "count")
        Self.expectClose(Self.check(SumKernel(), input: { $0 }, type: .float64, seed: s), "sum")
        Self.expectClose(Self.check(SumKernel(), input: { $0 }, mode: 1, type: .float64, seed: s), "mean")
        Self.expectClose(Self.check(ExtremumKernel(isMax: false), input: { $0 }, type: .float64, seed: s), "min")
        Self.expectClose(Self.check(ExtremumKernel(isMax: true), input: { $0 }, type: .float64, seed: s), "max")
        Self.expectClose(Self.check(MomentsKernel(), input: { $0 }, mode: 0, type: .float64, seed: s), relative: 1e-8, "variance")
        Self.expectClose(Self.check(MomentsKernel(), input: { $0 }, mode: 1, type: .float64, seed: s), relative: 1e-8, "stddev")
        Self.expectClose(Self.check(PickKernel(isLast: false, type: .float64), input: { $0.bitPattern }, type: .float64, seed: s), "first")
        Self.expectClose(Self.check(PickKernel(isLast: true, type: .float64), input: { $0.bitPattern }, type: .float64, seed: s), "last")
    }

    @Test("invertible partials: retracting tiles leaves what merging the rest gives", arguments: 0..<20)
    func retraction(seed: Int) {
        var g = SeededGenerator(seed: UInt64(seed))
        // Values of very different magnitudes, the case where naive add/subtract drifts.
        let tiles: [[Double]] = (0..<40).map { _ in
            (0..<Int.random(in: 1...20, using: &g)).map { _ in
                Double(Int.random(in: -100_000...100_000, using: &g)) / 100 * (Bool.random(using: &g) ? 1e9 : 1)
            }
        }
        var kernel = SumKernel()
        var counter = CountKernel()
        let partials = tiles.map { xs -> SumPartial in
            var p = kernel.empty
            for x in xs { kernel.update(&p, x, time: 0) }
            return p
        }
        var window = kernel.empty, count = counter.empty
        for (p, xs) in zip(partials, tiles) {
            kernel.merge(&window, p)
            counter.merge(&count, Int64(xs.count))
        }
        for leaving in partials.indices {
            kernel.retract(&window, partials[leaving])
            counter.retract(&count, Int64(tiles[leaving].count))
            var rebuilt = kernel.empty
            for p in partials[(leaving + 1)...] { kernel.merge(&rebuilt, p) }
            #expect(window.count == rebuilt.count && count == Int64(tiles[(leaving + 1)...].reduce(0) { $0 + $1.count }))
            #expect(kernel.finalize(window, mode: 0) == kernel.finalize(rebuilt, mode: 0), "after \(leaving + 1) tiles left")
        }
        #expect(window == .zero && count == 0)
    }

    @Test("HyperLogLog partials merge exactly, sparse and dense", arguments: 0..<20)
    func distinct(seed: Int) {
        // Registers are a max per bucket: every merge order gives the same sketch.
        Self.expectClose(Self.check(DistinctKernel(), input: { StableHash.hash(double: $0) }, type: .int64, seed: UInt64(seed)), "approx_count_distinct")
    }

    @Test("KLL partials: every merge order within the rank bound of the union", arguments: 0..<10)
    func percentile(seed: Int) {
        // KLL compaction depends on merge order, so associativity holds up to the stated rank
        // error: every order's answer must be a valid quantile of the union.
        var g = SeededGenerator(seed: UInt64(seed))
        let parts = (0..<3).map { _ in Self.values(&g, Int.random(in: 1...3_000, using: &g)).map(\.0) }
        func sketch(_ xs: [Double]) -> KLLSketch {
            var s = KLLSketch()
            for x in xs { s.insert(x) }
            return s
        }
        var left = sketch(parts[0]); left.merge(sketch(parts[1])); left.merge(sketch(parts[2]))
        var bc = sketch(parts[1]); bc.merge(sketch(parts[2]))
        var right = sketch(parts[0]); right.merge(bc)
        let all = parts.flatMap { $0 }
        for q in [0.01, 0.1, 0.5, 0.9, 0.99] {
            #expect(SketchTests.rankWithinBound(all, q, left.quantile(q)!))
            #expect(SketchTests.rankWithinBound(all, q, right.quantile(q)!))
        }
        #expect(left.count == UInt64(all.count) && right.count == UInt64(all.count))
    }
}
