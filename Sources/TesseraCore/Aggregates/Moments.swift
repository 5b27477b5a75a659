/// A double-double number: `hi + lo` with |lo| ≤ ½ ulp(hi), about 106 bits of precision
/// (Dekker, Knuth). Sums kept this way can have tiles subtracted from them again and give what
/// summing the remaining tiles would, to far below a double's rounding.
public struct DoubleDouble: BitwiseCopyable, Sendable, Equatable {
    public var hi: Double
    public var lo: Double

    public static let zero = DoubleDouble(hi: 0, lo: 0)

    @inline(__always)
    public init(hi: Double, lo: Double) {
        self.hi = hi
        self.lo = lo
    }

    /// The exact product `a · b` (Dekker's TwoProduct with Veltkamp splitting: plain multiplies
    /// and adds, since a fused multiply-add is a library call on baseline x86-64). Exact unless
    /// |a| or |b| exceeds 2⁹⁹⁵.
    @inline(__always)
    public static func product(_ a: Double, _ b: Double) -> DoubleDouble {
        let p = a * b
        let (ah, al) = split(a), (bh, bl) = split(b)
        return DoubleDouble(hi: p, lo: ((ah * bh - p) + ah * bl + al * bh) + al * bl)
    }

    /// `a = hi + lo` with each half holding 26 significant bits.
    @inline(__always)
    static func split(_ a: Double) -> (Double, Double) {
        let c = 134_217_729.0 * a  // 2²⁷ + 1
        let hi = c - (c - a)
        return (hi, a - hi)
    }

    /// Adds `b` (TwoSum of the high parts, then the low parts folded in and renormalised).
    @inline(__always)
    public mutating func add(_ bHi: Double, _ bLo: Double) {
        let s = hi + bHi
        let v = s - hi
        var e = (hi - (s - v)) + (bHi - v)
        e += lo + bLo
        hi = s + e
        lo = e - (hi - s)
    }

    @inline(__always)
    public mutating func add(_ b: DoubleDouble) { add(b.hi, b.lo) }

    @inline(__always)
    public mutating func subtract(_ b: DoubleDouble) { add(-b.hi, -b.lo) }

    /// `self · b`, rounded to double-double.
    @inline(__always)
    func times(_ b: DoubleDouble) -> DoubleDouble {
        var r = DoubleDouble.product(hi, b.hi)
        r.add(0, hi * b.lo + lo * b.hi)
        return r
    }

    /// `self · b` for a double `b`, rounded to double-double.
    @inline(__always)
    func times(_ b: Double) -> DoubleDouble {
        var r = DoubleDouble.product(hi, b)
        r.add(0, lo * b)
        return r
    }
}

/// Count, sum and sum of squares of a set of numbers, each sum in double-double: one partial
/// serves `sum`, `mean`, `variance` and `stddev`, and it is invertible — a tile leaving a window
/// is subtracted from it in O(1) instead of the window being rebuilt from its tiles.
///
/// The variance is `(n·Σx² − (Σx)²) / (n·(n − 1))`, the numerator evaluated in double-double: its
/// absolute error is about 2⁻¹⁰⁴ · mean², far below a double's rounding of the result unless the
/// mean exceeds the standard deviation by more than 2²⁵.
public struct MomentsPartial: BitwiseCopyable, Sendable, Equatable {
    public var count: Int64
    public var sum: DoubleDouble
    public var squares: DoubleDouble

    public static let zero = MomentsPartial(count: 0, sum: .zero, squares: .zero)

    /// The first part of a partial, count and sum: what a partial without sums of squares keeps
    /// (the fields of a window no variance or standard deviation reads).
    struct Sums: BitwiseCopyable {
        var count: Int64
        var sum: DoubleDouble

        static let zero = Sums(count: 0, sum: .zero)

        @inline(__always)
        mutating func add(_ x: Double) {
            count &+= 1
            sum.add(x, 0)
        }
    }

    /// Where `squares` is in a partial's bytes (after the `Sums`).
    static let squaresOffset = MemoryLayout<Sums>.stride

    public init(count: Int64, sum: DoubleDouble, squares: DoubleDouble) {
        self.count = count
        self.sum = sum
        self.squares = squares
    }

    @inline(__always)
    public mutating func add(_ x: Double, squares withSquares: Bool = true) {
        count &+= 1
        sum.add(x, 0)
        if withSquares {
            let p = DoubleDouble.product(x, x)
            squares.add(p.hi, p.lo)
        }
    }

    @inline(__always)
    public mutating func merge(_ other: MomentsPartial) {
        count &+= other.count
        sum.add(other.sum)
        squares.add(other.squares)
    }

    /// Removes a part merged earlier (its squares too unless `squares` is false: a partial that
    /// never took them); exactly zero once nothing is left.
    @inline(__always)
    public mutating func retract(_ part: MomentsPartial, squares withSquares: Bool = true) {
        count &-= part.count
        if count == 0 {
            self = .zero
            return
        }
        sum.subtract(part.sum)
        if withSquares { squares.subtract(part.squares) }
    }

    /// The sum rounded to a double (the high part of a normalised double-double); exactly 0 when empty.
    public var sumValue: Double { count == 0 ? 0 : sum.hi }

    /// The mean; nil when empty.
    public var mean: Double? { count == 0 ? nil : sum.hi / Double(count) }

    /// The sample variance (n − 1 in the denominator); nil below two values.
    @inline(__always)
    public var variance: Double? {
        guard count >= 2 else { return nil }
        let n = Double(count)
        var centered = squares.times(n)
        centered.subtract(sum.times(sum))
        return Swift.max(0, (centered.hi + centered.lo) / (n * (n - 1)))
    }

    /// Output modes of the moments kernel.
    public enum Mode: Int, Sendable, BitwiseCopyable {
        case sum = 0, mean = 1, variance = 2, stddev = 3
    }

    /// The value of `mode` as its bit pattern, or nil for null.
    @inline(__always)
    public func finalize(_ mode: Mode) -> UInt64? {
        switch mode {
        case .sum: return sumValue.bitPattern
        case .mean: return mean?.bitPattern
        case .variance: return variance?.bitPattern
        case .stddev: return variance.map { $0.squareRoot() }?.bitPattern
        }
    }
}
