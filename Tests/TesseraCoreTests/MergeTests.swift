import Testing
@testable import TesseraCore
import TesseraTestSupport

/// The partials windows are built from: moments add, merge and retract consistently; selections
/// merge associatively and keep the tie rules.
@Suite("Partials: merge and retract")
struct MergeTests {
    static func values(_ g: inout SeededGenerator, _ n: Int) -> [Double] {
        (0..<n).map { _ in Double(Int.random(in: -10_000...10_000, using: &g)) / 100 }
    }

    static func moments(_ xs: [Double]) -> MomentsPartial {
        var p = MomentsPartial.zero
        for x in xs { p.add(x) }
        return p
    }

    static func close(_ a: Double?, _ b: Double?, _ relative: Double) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        return abs(a - b) <= relative * max(1, abs(a), abs(b))
    }

    @Test("moments: merging parts equals adding their union, in any order", arguments: 0..<20)
    func momentsMerge(seed: Int) {
        var g = SeededGenerator(seed: UInt64(seed))
        let parts = (0..<3).map { _ in Self.values(&g, Int.random(in: 0...3_000, using: &g)) }
        var left = Self.moments(parts[0]), right = Self.moments(parts[2])
        left.merge(Self.moments(parts[1]))
        left.merge(Self.moments(parts[2]))
        var bc = Self.moments(parts[1])
        bc.merge(right)
        right = Self.moments(parts[0])
        right.merge(bc)
        let union = Self.moments(parts.flatMap { $0 })
        for p in [left, right] {
            #expect(p.count == union.count)
            for mode in [MomentsPartial.Mode.sum, .mean, .variance, .stddev] {
                let a = p.finalize(mode).map { Double(bitPattern: $0) }, b = union.finalize(mode).map { Double(bitPattern: $0) }
                #expect(Self.close(a, b, 1e-12), "\(mode): \(String(describing: a)) vs \(String(describing: b))")
            }
        }
    }

    @Test("moments against a two-pass computation, also with a mean far from zero", arguments: 0..<20)
    func momentsAccuracy(seed: Int) {
        var g = SeededGenerator(seed: UInt64(seed) + 100)
        let offset = [0, 1e6, -3e8, 1e9][seed % 4]
        let xs = Self.values(&g, Int.random(in: 2...5_000, using: &g)).map { $0 + offset }
        let p = Self.moments(xs)
        let mean = xs.reduce(0, +) / Double(xs.count)
        let variance = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(xs.count - 1)
        #expect(Self.close(p.mean, mean, 1e-12))
        // The two-pass reference itself carries rounding of order ε·mean²/variance.
        #expect(Self.close(p.variance, variance, 1e-9 + 1e-15 * mean * mean / variance))
    }

    @Test("moments: retracting tiles leaves what merging the rest gives, down to the last bit of the sum", arguments: 0..<20)
    func retraction(seed: Int) {
        var g = SeededGenerator(seed: UInt64(seed))
        // Values of very different magnitudes, the case where naive add/subtract drifts.
        let tiles: [[Double]] = (0..<40).map { _ in
            (0..<Int.random(in: 1...20, using: &g)).map { _ in
                Double(Int.random(in: -100_000...100_000, using: &g)) / 100 * (Bool.random(using: &g) ? 1e9 : 1)
            }
        }
        let partials = tiles.map(Self.moments)
        var window = MomentsPartial.zero
        for p in partials { window.merge(p) }
        for leaving in partials.indices {
            window.retract(partials[leaving])
            var rebuilt = MomentsPartial.zero
            for p in partials[(leaving + 1)...] { rebuilt.merge(p) }
            #expect(window.count == rebuilt.count)
            #expect(window.finalize(.sum) == rebuilt.finalize(.sum), "after \(leaving + 1) tiles left")
            let a = window.finalize(.mean).map { Double(bitPattern: $0) }, b = rebuilt.finalize(.mean).map { Double(bitPattern: $0) }
            #expect(Self.close(a, b, 1e-15))
        }
        #expect(window == .zero)
    }

    /// Folds timed values with a selection rule, oldest first.
    static func fold<R: SelectionRule>(_: R.Type, _ xs: [(R.Input, Micros)]) -> R.Partial {
        xs.reduce(R.empty) { R.merge($0, R.single($1.0, time: $1.1)) }
    }

    @Test("selections merge associatively, and first/last break ties by arrival", arguments: 0..<20)
    func selections(seed: Int) {
        var g = SeededGenerator(seed: UInt64(seed))
        let xs = (0..<Int.random(in: 0...300, using: &g)).map { _ in (Self.values(&g, 1)[0], Micros.random(in: 0..<50, using: &g)) }
        let bits = xs.map { ($0.0.bitPattern, $0.1) }
        let cut1 = Int.random(in: 0...xs.count, using: &g), cut2 = Int.random(in: cut1...xs.count, using: &g)
        func check<R: SelectionRule>(_ rule: R.Type, _ input: [(R.Input, Micros)]) {
            let a = Self.fold(rule, Array(input[..<cut1])), b = Self.fold(rule, Array(input[cut1..<cut2])), c = Self.fold(rule, Array(input[cut2...]))
            let left = R.merge(R.merge(a, b), c), right = R.merge(a, R.merge(b, c))
            #expect(left == right && left == Self.fold(rule, input))
        }
        check(MaxRule.self, xs)
        check(MinRule.self, xs)
        check(FirstRule.self, bits)
        check(LastRule.self, bits)
        if let t = xs.map(\.1).min() {
            #expect(FirstRule.value(Self.fold(FirstRule.self, bits)) == bits.first { $0.1 == t }!.0)
        }
        if let t = xs.map(\.1).max() {
            #expect(LastRule.value(Self.fold(LastRule.self, bits)) == bits.last { $0.1 == t }!.0)
        }
    }
}
