import Testing
import TesseraCore
import TesseraTestSupport

@Suite("Sketches: stated accuracy")
struct SketchTests {
    @Test("HyperLogLog estimates stay within three standard errors", arguments: [1, 10, 100, 1_000, 1_024, 1_025, 5_000, 20_000, 100_000, 1_000_000])
    func hyperLogLog(n: Int) {
        var kernel = DistinctKernel()
        var p = kernel.empty
        var g = SeededGenerator(seed: UInt64(n))
        for _ in 0..<n { kernel.update(&p, StableHash.hash(int: Int64.random(in: .min ... .max, using: &g)), time: 0) }
        let estimate = Double(Int64(bitPattern: kernel.finalize(p, mode: 0)!))
        let bound = 3 * HLL.relativeStandardError * Double(n)
        #expect(abs(estimate - Double(n)) <= max(1, bound), "n = \(n), estimate \(estimate)")
    }

    @Test("HyperLogLog counts duplicates once and hashes equal numbers equally")
    func hyperLogLogDuplicates() {
        var kernel = DistinctKernel()
        var p = kernel.empty
        for round in 0..<5 {
            for v in 0..<3_000 { kernel.update(&p, StableHash.hash(int: Int64(v)), time: Int64(round)) }
            kernel.update(&p, StableHash.hash(double: 7.0), time: 0)
        }
        let estimate = Double(Int64(bitPattern: kernel.finalize(p, mode: 0)!))
        #expect(abs(estimate - 3_000) <= 3 * HLL.relativeStandardError * 3_000)
        #expect(StableHash.hash(double: 7.0) == StableHash.hash(int: 7))
        #expect(StableHash.hash(double: -0.0) == StableHash.hash(double: 0.0))
    }

    /// The true rank range of `v` in sorted `data`, checked against `q` within `KLL.rankError`.
    static func rankWithinBound(_ data: [Double], _ q: Double, _ v: Double) -> Bool {
        let below = data.count(where: { $0 < v }), atOrBelow = data.count(where: { $0 <= v })
        let target = q * Double(data.count)
        let slack = KLL.rankError * Double(data.count)
        return Double(below) - slack <= target && target <= Double(atOrBelow) + slack
    }

    @Test("KLL quantiles within the stated rank error", arguments: ["uniform", "sorted", "reversed", "duplicates", "normal-ish"])
    func kll(shape: String) {
        var g = SeededGenerator(seed: 42)
        let n = 200_000
        var data: [Double] = (0..<n).map { _ in Double.random(in: 0..<1_000, using: &g) }
        switch shape {
        case "sorted": data.sort()
        case "reversed": data.sort(by: >)
        case "duplicates": data = data.map { ($0 / 100).rounded() }
        case "normal-ish": data = (0..<n).map { _ in (0..<6).reduce(0.0) { s, _ in s + Double.random(in: 0..<1, using: &g) } }
        default: break
        }
        var sketch = KLLSketch()
        for x in data { sketch.insert(x) }
        #expect(sketch.count == UInt64(n))
        for q in [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0] {
            let v = sketch.quantile(q)!
            #expect(Self.rankWithinBound(data, q, v), "\(shape) q = \(q): \(v)")
        }
    }

    @Test("KLL merges of many small sketches keep the bound")
    func kllMerged() {
        var g = SeededGenerator(seed: 7)
        var all: [Double] = []
        var merged = KLLSketch()
        for _ in 0..<300 {
            var part = KLLSketch()
            for _ in 0..<Int.random(in: 1...700, using: &g) {
                let x = Double.random(in: -50..<50, using: &g)
                all.append(x)
                part.insert(x)
            }
            merged.merge(part)
        }
        #expect(merged.count == UInt64(all.count))
        for q in stride(from: 0.0, through: 1.0, by: 0.05) {
            #expect(Self.rankWithinBound(all, q, merged.quantile(q)!), "q = \(q)")
        }
    }

    @Test("KLL is exact below its capacity")
    func kllSmallExact() {
        var sketch = KLLSketch()
        let data = (0..<150).map { Double(($0 * 37) % 150) }
        for x in data { sketch.insert(x) }
        #expect(sketch.quantile(0.5) == 74)
        #expect(sketch.quantile(0) == 0)
        #expect(sketch.quantile(1) == 149)
    }
}
