/// A validity bitmap: bit `i` is set when row `i` holds a value. Read 64 rows at a time where it pays.
public struct Bitmap: Sendable, Equatable {
    public private(set) var words: [UInt64] = []
    public private(set) var count: Int = 0
    /// Number of cleared bits; zero lets readers skip the bitmap entirely.
    public private(set) var unsetCount: Int = 0

    public init() {}

    public init(repeating value: Bool, count: Int) {
        self.count = count
        words = Array(repeating: value ? ~0 : 0, count: (count + 63) >> 6)
        unsetCount = value ? 0 : count
        if value, count & 63 != 0 { words[words.count - 1] = (1 << UInt64(count & 63)) - 1 }
    }

    @inlinable
    public subscript(i: Int) -> Bool {
        (words[i >> 6] >> UInt64(i & 63)) & 1 != 0
    }

    @inlinable
    public var allSet: Bool { unsetCount == 0 }

    /// Calls `body` with the runs of set bits among the first `n`, in order: one run when every
    /// bit is set, else up to one per word and run of set bits in it.
    @inline(__always)
    public func forEachSetRun(upTo n: Int, _ body: (Range<Int>) -> Void) {
        if allSet {
            if n > 0 { body(0..<n) }
            return
        }
        words.withUnsafeBufferPointer { words in
            var w = 0
            while w &* 64 < n {
                let base = w &* 64
                let end = min(n, base &+ 64)
                var bits = words[w]
                if end &- base < 64 { bits &= (1 &<< UInt64(end &- base)) &- 1 }
                while bits != 0 {
                    let first = bits.trailingZeroBitCount
                    let run = (~(bits &>> UInt64(first))).trailingZeroBitCount   // set bits from `first` on
                    body(base &+ first..<base &+ first &+ run)
                    bits = first &+ run >= 64 ? 0 : bits & ~((1 &<< UInt64(first &+ run)) &- 1)
                }
                w &+= 1
            }
        }
    }

    public mutating func append(_ value: Bool) {
        if count & 63 == 0 { words.append(0) }
        if value {
            words[count >> 6] |= 1 << UInt64(count & 63)
        } else {
            unsetCount += 1
        }
        count += 1
    }

    public mutating func removeLast() {
        precondition(count > 0)
        count -= 1
        let mask: UInt64 = 1 << UInt64(count & 63)
        if words[count >> 6] & mask == 0 { unsetCount -= 1 } else { words[count >> 6] &= ~mask }
        if count & 63 == 0 { words.removeLast() }
    }

    /// Appends one bit per flag: whole words where the bitmap is word-aligned, eight flags per
    /// multiply (a Bool is one byte, 0 or 1).
    public mutating func append(contentsOf flags: UnsafeBufferPointer<Bool>) {
        let n = flags.count
        guard let base = flags.baseAddress else { return }
        let raw = UnsafeRawPointer(base)
        let ones: UInt64 = 0x0101_0101_0101_0101
        // Most columns have no null at all: check that first, eight flags at a time.
        var i = 0
        while i + 8 <= n && raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) == ones { i += 8 }
        while i < n && flags[i] { i += 1 }
        if i == n { return appendSet(count: n) }
        i = 0
        while i < n && count & 63 != 0 {
            append(flags[i])
            i += 1
        }
        words.reserveCapacity(words.count + (n - i + 63) / 64)
        while i + 64 <= n {
            var word: UInt64 = 0
            for b in 0..<8 {
                // Byte k (0 or 1) of `eight` lands on bit 56 + k of the product, with no carries.
                let eight = raw.loadUnaligned(fromByteOffset: i &+ 8 &* b, as: UInt64.self)
                word |= ((eight &* 0x0102_0408_1020_4080) &>> 56) &<< UInt64(8 &* b)
            }
            words.append(word)
            count += 64
            unsetCount += 64 - word.nonzeroBitCount
            i += 64
        }
        while i < n {
            append(flags[i])
            i += 1
        }
    }

    /// Makes room for `n` bits.
    public mutating func reserveCapacity(_ n: Int) { words.reserveCapacity((n + 63) / 64) }

    /// Appends `n` set bits.
    public mutating func appendSet(count n: Int) {
        var left = n
        while left > 0 && count & 63 != 0 {
            append(true)
            left -= 1
        }
        while left >= 64 {
            words.append(~0)
            count += 64
            left -= 64
        }
        while left > 0 {
            append(true)
            left -= 1
        }
    }

    public mutating func set(_ i: Int, _ value: Bool) {
        let was = self[i]
        guard was != value else { return }
        if value {
            words[i >> 6] |= 1 << UInt64(i & 63)
            unsetCount -= 1
        } else {
            words[i >> 6] &= ~(1 << UInt64(i & 63))
            unsetCount += 1
        }
    }

    public mutating func removeAll() {
        words.removeAll(keepingCapacity: true)
        count = 0
        unsetCount = 0
    }
}
