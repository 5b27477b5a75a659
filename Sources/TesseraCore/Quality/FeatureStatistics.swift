/// The distribution of a feature's numeric values, as counts in log-linear buckets: a value's
/// bucket is its magnitude's top 7 mantissa bits and its exponent (its IEEE-754 bits shifted),
/// positive and negative values apart, so finding it is a shift and buckets are ~0.8 % wide. A
/// quantile is answered with its bucket's midpoint, clamped to the values' range: within **0.4 %
/// relative error** of the exact nearest-rank quantile (`relativeError`); zero (and magnitudes
/// below 2⁻¹⁰²²) is exact. Mergeable (counts add), so partitions and hops combine without error.
public struct ValueSketch: Sendable, Equatable {
    static let mantissaBits: UInt64 = 7
    static let shift: UInt64 = 52 - mantissaBits
    /// Half a bucket's relative width: the bound on a quantile's relative error.
    public static let relativeError = 1.0 / Double(1 << (mantissaBits + 1))

    public private(set) var count = 0
    /// Whether no bucket was ever made addressable.
    var isUnaddressed: Bool { positive.counts.isEmpty && negative.counts.isEmpty }
    /// Zeros (and magnitudes below 2⁻¹⁰²²), apart: buckets are dense between the lowest and the
    /// highest used, and counts of 0 would stretch them over ~1 000 binades.
    private var zeros = 0
    /// Bucket `positive.low + i` of positive values holds `positive.counts[i]` values; likewise
    /// negative values by magnitude.
    private var positive = Buckets()
    private var negative = Buckets()

    public init() {}

    struct Buckets: Sendable, Equatable {
        var low = 0
        var counts: [UInt32] = []

        /// Makes `lo...hi` addressable, with some room around for the next values.
        mutating func cover(_ lo: Int, _ hi: Int) {
            if counts.isEmpty {
                low = Swift.max(1, lo - 8)
                counts = Array(repeating: 0, count: hi + 8 - low + 1)
                return
            }
            if lo < low {
                let newLow = Swift.max(1, lo - Swift.max(8, counts.count / 4))
                counts.insert(contentsOf: repeatElement(0, count: low - newLow), at: 0)
                low = newLow
            }
            if hi >= low + counts.count {
                counts.append(contentsOf: repeatElement(0, count: hi + Swift.max(8, counts.count / 4) - (low + counts.count) + 1))
            }
        }

        /// No values, the same buckets addressable.
        mutating func reset() {
            counts.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        }

        mutating func merge(_ other: Buckets) {
            guard !other.counts.isEmpty else { return }
            cover(other.low, other.low + other.counts.count - 1)
            let offset = other.low - low
            counts.withUnsafeMutableBufferPointer { mine in
                other.counts.withUnsafeBufferPointer { theirs in
                    for i in theirs.indices { mine[offset + i] &+= theirs[i] }
                }
            }
        }
    }

    /// A magnitude's bucket (0 for zero and subnormals below 2⁻¹⁰²²).
    @inline(__always)
    static func bucket(_ magnitude: Double) -> Int { Int(truncatingIfNeeded: magnitude.bitPattern >> shift) }

    /// Adds values (none NaN); `nonNegative` when none is below zero. `missed` is scratch space.
    mutating func add(_ values: UnsafeBufferPointer<Double>, nonNegative: Bool, missed: inout [Double]) {
        count += values.count
        missed.removeAll(keepingCapacity: true)
        var zeros = 0
        defer { self.zeros += zeros }
        let (pLow, nLow) = (positive.low, negative.low)
        positive.counts.withUnsafeMutableBufferPointer { pos in
            let pCount = UInt(pos.count)
            if nonNegative {
                // The bits of a non-negative double, shifted, are its bucket (−0 misses: its sign bit).
                for x in values {
                    let b = Int(truncatingIfNeeded: x.bitPattern >> Self.shift)
                    let i = b &- pLow
                    if UInt(bitPattern: i) < pCount { pos[i] &+= 1 } else if b == 0 { zeros &+= 1 } else { missed.append(x) }
                }
                return
            }
            negative.counts.withUnsafeMutableBufferPointer { neg in
                let nCount = UInt(neg.count)
                for x in values {
                    let b = Self.bucket(abs(x))
                    if b == 0 {
                        zeros &+= 1
                    } else if x > 0 {
                        let i = b &- pLow
                        if UInt(bitPattern: i) < pCount { pos[i] &+= 1 } else { missed.append(x) }
                    } else {
                        let i = b &- nLow
                        if UInt(bitPattern: i) < nCount { neg[i] &+= 1 } else { missed.append(x) }
                    }
                }
            }
        }
        guard !missed.isEmpty else { return }
        // Values outside the buckets so far (none zero): make room for all of them at once.
        var p = (Int.max, Int.min), n = (Int.max, Int.min)
        for x in missed {
            let b = Self.bucket(abs(x))
            if b == 0 { continue }
            if x > 0 { p = (Swift.min(p.0, b), Swift.max(p.1, b)) } else { n = (Swift.min(n.0, b), Swift.max(n.1, b)) }
        }
        if p.0 <= p.1 { positive.cover(p.0, p.1) }
        if n.0 <= n.1 { negative.cover(n.0, n.1) }
        for x in missed {
            let b = Self.bucket(abs(x))
            if b == 0 { zeros += 1 } else if x > 0 { positive.counts[b - positive.low] &+= 1 } else { negative.counts[b - negative.low] &+= 1 }
        }
    }

    /// No values; the buckets stay addressable (the next hop's values are much like the last's).
    mutating func reset() {
        count = 0
        zeros = 0
        positive.reset()
        negative.reset()
    }

    public mutating func merge(_ other: ValueSketch) {
        count += other.count
        zeros += other.zeros
        positive.merge(other.positive)
        negative.merge(other.negative)
    }

    /// The midpoint of a bucket of magnitudes.
    private static func midpoint(_ b: Int) -> Double {
        let low = Double(bitPattern: UInt64(b) << shift), high = Double(bitPattern: UInt64(b + 1) << shift)
        return (low + high) / 2
    }

    /// The q-quantile (nearest rank: the ⌈q·n⌉-th smallest value), approximately; nil when empty.
    public func quantile(_ q: Double, within range: ClosedRange<Double>) -> Double? {
        guard count > 0 else { return nil }
        let rank = max(1, Int((q * Double(count)).rounded(.up)))
        var seen = 0
        for i in stride(from: negative.counts.count - 1, through: 0, by: -1) {
            seen += Int(negative.counts[i])
            if seen >= rank { return min(max(-Self.midpoint(negative.low + i), range.lowerBound), range.upperBound) }
        }
        seen += zeros
        if seen >= rank { return 0 }
        for i in positive.counts.indices {
            seen += Int(positive.counts[i])
            if seen >= rank { return min(max(Self.midpoint(positive.low + i), range.lowerBound), range.upperBound) }
        }
        return range.upperBound
    }
}

/// What is known of one feature's values over some rows: how many, how many null, the range,
/// mean and variance (sums of the values less a shift, the first value, so that the variance
/// does not cancel), their distribution, and their counts in a baseline's bins.
public struct FeatureSummary: Sendable {
    public internal(set) var rows = 0
    public internal(set) var nulls = 0
    public internal(set) var min = Double.infinity
    public internal(set) var max = -Double.infinity
    private var shift = 0.0
    private var sum = 0.0
    private var sumSquares = 0.0
    public internal(set) var sketch = ValueSketch()
    /// Values per baseline bin (`DriftBins`), empty without a baseline.
    public internal(set) var bins: [Int]

    init(bins: Int) { self.bins = Array(repeating: 0, count: bins) }

    /// Non-null numeric values (0 for a text feature, whose values are only counted as rows).
    public var values: Int { sketch.count }
    public var mean: Double? { values > 0 ? shift + sum / Double(values) : nil }
    /// The population standard deviation.
    public var stddev: Double? {
        guard values > 0 else { return nil }
        let n = Double(values)
        return (Swift.max(0, sumSquares - sum * sum / n) / n).squareRoot()
    }

    /// Adds a run of rows: `values` (the non-null ones, none NaN) and how many were null.
    mutating func add(_ values: UnsafeBufferPointer<Double>, nulls: Int, edges: UnsafeBufferPointer<Double>, missed: inout [Double]) {
        rows += values.count + nulls
        self.nulls += nulls
        guard !values.isEmpty else { return }
        if sketch.count == 0 { shift = values[0] }
        // Four lanes at a time (a sum's add waits for the previous one; four chains do not).
        let k = SIMD4<Double>(repeating: shift)
        var lo = SIMD4<Double>(repeating: min), hi = SIMD4<Double>(repeating: max)
        var s = SIMD4<Double>.zero, ss = SIMD4<Double>.zero
        let raw = UnsafeRawPointer(values.baseAddress!)
        let n = values.count
        var i = 0
        while i + 4 <= n {
            let x = raw.loadUnaligned(fromByteOffset: i &* 8, as: SIMD4<Double>.self)
            lo.replace(with: x, where: x .< lo)
            hi.replace(with: x, where: x .> hi)
            let d = x - k
            s += d
            ss += d * d
            i &+= 4
        }
        var (tailLo, tailHi, tailS, tailSS) = (lo.min(), hi.max(), 0.0, 0.0)
        while i < n {
            let x = values[i]
            tailLo = x < tailLo ? x : tailLo
            tailHi = x > tailHi ? x : tailHi
            let d = x - k[0]
            tailS += d
            tailSS += d * d
            i &+= 1
        }
        (min, max) = (tailLo, tailHi)
        sum += s.sum() + tailS
        sumSquares += ss.sum() + tailSS
        sketch.add(values, nonNegative: tailLo >= 0, missed: &missed)
        if !bins.isEmpty {
            bins.withUnsafeMutableBufferPointer { bins in
                for x in values { bins[DriftBins.bin(x, edges)] += 1 }
            }
        }
    }

    public mutating func merge(_ other: FeatureSummary) {
        rows += other.rows
        nulls += other.nulls
        min = Swift.min(min, other.min)
        max = Swift.max(max, other.max)
        if other.sketch.count > 0 {
            if sketch.count == 0 {
                (shift, sum, sumSquares) = (other.shift, other.sum, other.sumSquares)
            } else {
                // The other's sums, moved to this shift.
                let delta = other.shift - shift, n = Double(other.sketch.count)
                sum += other.sum + n * delta
                sumSquares += other.sumSquares + 2 * delta * other.sum + n * delta * delta
            }
        }
        sketch.merge(other.sketch)
        for i in bins.indices where i < other.bins.count { bins[i] += other.bins[i] }
    }

    public func quantile(_ q: Double) -> Double? { sketch.quantile(q, within: values > 0 ? min...max : 0...0) }

    /// No rows, the sketch's buckets kept.
    mutating func reset() {
        (rows, nulls, min, max, shift, sum, sumSquares) = (0, 0, .infinity, -.infinity, 0, 0, 0)
        sketch.reset()
        for i in bins.indices { bins[i] = 0 }
    }
}

/// Bins of a baseline's values: edges e₁ < … < eₖ₋₁ make k bins, bin j holding (eⱼ, eⱼ₊₁]
/// with e₀ = −∞ and eₖ = +∞.
public enum DriftBins {
    @inline(__always)
    public static func bin(_ x: Double, _ edges: UnsafeBufferPointer<Double>) -> Int {
        var lo = 0, hi = edges.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if edges[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

/// One view's statistics in one partition: per feature, a summary of every closed row (the rows
/// the offline log keeps, i.e. the training data's population) by event-time hop, over a ring of
/// the last `hops` hops (the rolling window), and since the worker started. Rows are taken a run
/// of one hop at a time, a feature column at a time.
public struct ViewStatistics: Sendable {
    public let hop: Micros
    /// Hops in the rolling window.
    public let hops: Int
    /// Per feature, its baseline's bin edges (nil: no bins counted).
    public let edges: [[Double]?]
    /// Rows of hops that left the ring (and rows too late for it), per feature.
    private(set) var earlier: [FeatureSummary]
    /// Slot `h % hops` holds hop `h` (if `ringHops[slot] == h`).
    private(set) var ring: [[FeatureSummary]]
    private(set) var ringHops: [Int64]
    /// The newest hop seen.
    public private(set) var newest: Int64 = .min
    /// Scratch: a run's non-null values as doubles, and values outside a sketch's buckets.
    private var scratch: [Double] = []
    private var missed: [Double] = []

    public init(features: Int, window: Micros, hop: Micros, edges: [[Double]?]? = nil) {
        self.hop = hop
        hops = Swift.max(1, Int((window + hop - 1) / hop))
        self.edges = edges ?? Array(repeating: nil, count: features)
        let empty = self.edges.map { FeatureSummary(bins: $0.map { $0.count + 1 } ?? 0) }
        earlier = empty
        ring = Array(repeating: empty, count: hops)
        ringHops = Array(repeating: .min, count: hops)
    }

    private var empty: [FeatureSummary] { edges.map { FeatureSummary(bins: $0.map { $0.count + 1 } ?? 0) } }

    /// Adds the rows `rows` of `e` (closed rows, in time order).
    public mutating func add(_ e: EmissionBatch, rows: Range<Int>) {
        var start = rows.lowerBound
        while start < rows.upperBound {
            let h = Self.floorDiv(e.eventTimes[start], hop)
            var end = start + 1
            let hopStart = h &* hop, hopEnd = h >= Int64.max / hop ? Int64.max : (h + 1) * hop
            while end < rows.upperBound && e.eventTimes[end] < hopEnd && e.eventTimes[end] >= hopStart { end += 1 }
            // Taken out while added to (so that it is not copied), then put back.
            if let slot = slot(for: h) {
                var summaries = ring[slot]
                ring[slot] = []
                add(e, start..<end, into: &summaries)
                ring[slot] = summaries
            } else {
                var summaries = earlier
                earlier = []
                add(e, start..<end, into: &summaries)
                earlier = summaries
            }
            start = end
        }
    }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }

    /// The ring slot of hop `h`, advancing the ring to it; nil if `h` is older than the ring.
    private mutating func slot(for h: Int64) -> Int? {
        if h > newest {
            // Hops leaving the ring fold into `earlier`; their slots are emptied in place.
            for s in ring.indices where ringHops[s] != .min && ringHops[s] <= h - Int64(hops) {
                for f in earlier.indices {
                    earlier[f].merge(ring[s][f])
                    ring[s][f].reset()
                }
                ringHops[s] = .min
            }
        } else if h <= newest - Int64(hops) {
            return nil
        }
        let s = Int(((h % Int64(hops)) + Int64(hops)) % Int64(hops))
        if ringHops[s] != h {
            // A slot never used takes the newest hop's buckets (emptied), not to grow them again.
            if ringHops[s] != .min {
                for f in earlier.indices {
                    earlier[f].merge(ring[s][f])
                    ring[s][f].reset()
                }
            } else if ring[s].first?.sketch.isUnaddressed ?? false, newest != .min, let from = slot(of: newest) {
                ring[s] = ring[from]
                for f in ring[s].indices { ring[s][f].reset() }
            }
            ringHops[s] = h
        }
        newest = Swift.max(newest, h)
        return s
    }

    /// The slot holding hop `h`, if any.
    private func slot(of h: Int64) -> Int? {
        let s = Int(((h % Int64(hops)) + Int64(hops)) % Int64(hops))
        return ringHops[s] == h ? s : nil
    }

    private mutating func add(_ e: EmissionBatch, _ range: Range<Int>, into summaries: inout [FeatureSummary]) {
        for f in summaries.indices {
            let column = e.features[f]
            let allValid = column.validity.allSet
            if column.type == .string {
                // Text features: rows and nulls only.
                let nulls = allValid ? 0 : range.count(where: { !column.validity[$0] })
                summaries[f].rows += range.count
                summaries[f].nulls += nulls
                continue
            }
            if column.type == .float64 && allValid {
                column.doubles.withUnsafeBufferPointer { values in
                    let run = UnsafeBufferPointer(rebasing: values[range])
                    (edges[f] ?? []).withUnsafeBufferPointer { summaries[f].add(run, nulls: 0, edges: $0, missed: &missed) }
                }
                continue
            }
            // Integers, or values with nulls: the run's non-null values as doubles first.
            if scratch.count < range.count { scratch = Array(repeating: 0, count: Swift.max(range.count, 2 * scratch.count)) }
            var n = 0
            scratch.withUnsafeMutableBufferPointer { out in
                if column.type == .float64 {
                    column.doubles.withUnsafeBufferPointer { v in
                        for i in range where column.validity[i] { out[n] = v[i]; n &+= 1 }
                    }
                } else if allValid {
                    column.ints.withUnsafeBufferPointer { v in
                        for i in range { out[n] = Double(v[i]); n &+= 1 }
                    }
                } else {
                    column.ints.withUnsafeBufferPointer { v in
                        for i in range where column.validity[i] { out[n] = Double(v[i]); n &+= 1 }
                    }
                }
            }
            let nulls = range.count - n
            scratch.withUnsafeBufferPointer { all in
                let run = UnsafeBufferPointer(rebasing: all[0..<n])
                (edges[f] ?? []).withUnsafeBufferPointer { summaries[f].add(run, nulls: nulls, edges: $0, missed: &missed) }
            }
        }
    }

    /// Folds the rolling window's hops (those after `newest − hops`, given the newest hop of all
    /// partitions) into `window`, and every row since the start into `total`.
    public func collect(newest: Int64, window: inout [FeatureSummary], total: inout [FeatureSummary]) {
        for f in total.indices { total[f].merge(earlier[f]) }
        for s in ring.indices where ringHops[s] != .min {
            for f in total.indices {
                total[f].merge(ring[s][f])
                if ringHops[s] > newest - Int64(hops) { window[f].merge(ring[s][f]) }
            }
        }
    }

    public var emptySummaries: [FeatureSummary] { empty }
}
