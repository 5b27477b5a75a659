import Foundation
import TesseraCore

/// How a view's feature quality is watched (`quality:` in a feature view): statistics of its
/// rows over a rolling event-time window, and drift against a baseline.
public struct ViewQuality: Sendable {
    /// The rolling window of the statistics and the drift measures, and how often it moves.
    public var window: Micros = ViewQuality.defaultWindow
    public var hop: Micros = ViewQuality.defaultHop
    /// The distribution the features are compared with (`tessera stats baseline`), if any.
    public var baseline: DriftBaseline?
    /// Where it was read from, as written in the topology and resolved.
    public var baselinePath: String?
    /// Above these, a feature has drifted (the shipped alert rules compare with them).
    public var psiThreshold = 0.2
    public var ksThreshold = 0.1
    /// Drift is measured only over windows with at least this many rows.
    public var minRows = 100

    public static let defaultWindow: Micros = Time.hour
    public static let defaultHop: Micros = 5 * Time.minute

    public init() {}
}

/// A view's features as the data a user trusts had them (training data: the offline log over a
/// time range, or a training-set file): per feature, quantile bins of its values and the share
/// of rows in each, and the share of nulls. Written by `tessera stats baseline` as JSON.
public struct DriftBaseline: Sendable, Codable, Equatable {
    public var view: String
    /// What it was built from (a description for people).
    public var source: String
    public var rows: Int
    public var features: [Feature]

    public struct Feature: Sendable, Codable, Equatable {
        public var name: String
        public var rows: Int
        public var nullFraction: Double
        /// Bin edges e₁ < … < eₖ₋₁: bin j holds (eⱼ, eⱼ₊₁], e₀ = −∞, eₖ = +∞. Empty for a text
        /// feature (only its null share is compared).
        public var edges: [Double]
        /// The share of non-null values in each bin (k of them).
        public var fractions: [Double]

        enum CodingKeys: String, CodingKey {
            case name, rows, edges, fractions
            case nullFraction = "null_fraction"
        }

        public init(name: String, rows: Int, nullFraction: Double, edges: [Double], fractions: [Double]) {
            self.name = name
            self.rows = rows
            self.nullFraction = nullFraction
            self.edges = edges
            self.fractions = fractions
        }
    }

    public init(view: String, source: String, rows: Int, features: [Feature]) {
        self.view = view
        self.source = source
        self.rows = rows
        self.features = features
    }

    public func feature(_ name: String) -> Feature? { features.first { $0.name == name } }

    /// The baseline of `values` (one array per feature, nil for a null): `bins` quantile bins of
    /// each feature's non-null values (fewer where values repeat), text features (nil arrays)
    /// counted by nulls only.
    public static func build(view: String, source: String, features: [(name: String, values: [Double?]?, nulls: Int, rows: Int)],
                             bins: Int) -> DriftBaseline {
        var out: [Feature] = []
        var rows = 0
        for f in features {
            rows = max(rows, f.rows)
            let nullFraction = f.rows > 0 ? Double(f.nulls) / Double(f.rows) : 0
            guard let values = f.values else {
                out.append(Feature(name: f.name, rows: f.rows, nullFraction: nullFraction, edges: [], fractions: [1]))
                continue
            }
            let sorted = values.compactMap { $0 }.sorted()
            var edges: [Double] = []
            if !sorted.isEmpty {
                for j in 1..<max(1, bins) {
                    let rank = Int((Double(sorted.count) * Double(j) / Double(bins)).rounded(.up)) - 1
                    let e = sorted[min(max(rank, 0), sorted.count - 1)]
                    if edges.last.map({ e > $0 }) ?? true, e < sorted.last! { edges.append(e) }
                }
                // One value throughout: it bounds the first bin, any larger value falls in the second.
                if edges.isEmpty { edges = [sorted[0]] }
            }
            var counts = Array(repeating: 0, count: edges.count + 1)
            edges.withUnsafeBufferPointer { e in for x in sorted { counts[DriftBins.bin(x, e)] += 1 } }
            let n = Double(max(1, sorted.count))
            out.append(Feature(name: f.name, rows: f.rows, nullFraction: nullFraction, edges: edges, fractions: counts.map { Double($0) / n }))
        }
        return DriftBaseline(view: view, source: source, rows: rows, features: out)
    }

    public static func read(path: String) throws -> DriftBaseline {
        guard let data = FileManager.default.contents(atPath: path) else { throw BaselineError("cannot read \(path)") }
        do { return try JSONDecoder().decode(DriftBaseline.self, from: data) } catch {
            throw BaselineError("\(path) is not a baseline written by `tessera stats baseline`: \(error)")
        }
    }

    public func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try! encoder.encode(self)
    }
}

public struct BaselineError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// How far a distribution has moved from a baseline's: the population stability index over
/// the baseline's bins plus a null bin, Σ (a − e)·ln(a / e) with shares floored at 10⁻⁴, and
/// the largest gap between the two cumulative distributions of non-null values at the bins'
/// edges (a Kolmogorov–Smirnov statistic on the binned values).
public enum Drift {
    public static let floor = 1e-4

    /// `counts`: values per baseline bin; `nulls` and `rows` of the same rows.
    public static func psi(_ f: DriftBaseline.Feature, counts: [Int], nulls: Int, rows: Int) -> Double {
        guard rows > 0 else { return .nan }
        let n = Double(rows)
        var psi = term(actual: Double(nulls) / n, expected: f.nullFraction)
        if !counts.isEmpty {
            for (j, c) in counts.enumerated() where j < f.fractions.count {
                psi += term(actual: Double(c) / n, expected: (1 - f.nullFraction) * f.fractions[j])
            }
        }
        return psi
    }

    private static func term(actual: Double, expected: Double) -> Double {
        if actual == 0 && expected == 0 { return 0 }
        let a = max(actual, floor), e = max(expected, floor)
        return (a - e) * log(a / e)
    }

    public static func ks(_ f: DriftBaseline.Feature, counts: [Int]) -> Double {
        let n = counts.reduce(0, +)
        guard n > 0, counts.count == f.fractions.count else { return .nan }
        var actual = 0.0, expected = 0.0, gap = 0.0
        for j in counts.indices {
            actual += Double(counts[j]) / Double(n)
            expected += f.fractions[j]
            gap = max(gap, abs(actual - expected))
        }
        return gap
    }
}
