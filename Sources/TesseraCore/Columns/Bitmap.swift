/// A validity bitmap: bit `i` is set when row `i` holds a value. Read 64 rows at a time where it pays.
public struct Bitmap: Sendable, Equatable {
    /// The complete words (bit `i` of word `w` is row `64 · w + i`); the rows after them, fewer
    /// than 64, are the low bits of `tail`. Appending a row then writes `tail`, not the array: a
    /// decoder appends every field's validity once per row.
    @usableFromInline var full: [UInt64] = []
    @usableFromInline var tail: UInt64 = 0
    public private(set) var count: Int = 0
    /// Number of cleared bits; zero lets readers skip the bitmap entirely.
    public private(set) var unsetCount: Int = 0

    public init() {}

    public init(repeating value: Bool, count: Int) {
        self.count = count
        full = Array(repeating: value ? ~0 : 0, count: count >> 6)
        tail = value && count & 63 != 0 ? (1 << UInt64(count & 63)) - 1 : 0
        unsetCount = value ? 0 : count
    }

    /// Every row's bit, 64 to a word, the last word's unused bits clear. A new array when the
    /// last word is partial: read it once per batch, not per row.
    public var words: [UInt64] { count & 63 == 0 ? full : full + [tail] }

    @inlinable
    public subscript(i: Int) -> Bool {
        (word(i >> 6) >> UInt64(i & 63)) & 1 != 0
    }

    @inlinable
    func word(_ w: Int) -> UInt64 { w < full.count ? full[w] : tail }

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
        full.withUnsafeBufferPointer { words in
            var w = 0
            while w &* 64 < n {
                let base = w &* 64
                let end = min(n, base &+ 64)
                var bits = w < words.count ? words[w] : tail
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
        if value {
            tail |= 1 &<< UInt64(count & 63)
        } else {
            unsetCount += 1
        }
        count += 1
        if count & 63 == 0 {
            full.append(tail)
            tail = 0
        }
    }

    public mutating func removeLast() {
        precondition(count > 0)
        if count & 63 == 0 { tail = full.removeLast() }
        count -= 1
        let mask: UInt64 = 1 << UInt64(count & 63)
        if tail & mask == 0 { unsetCount -= 1 } else { tail &= ~mask }
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
        full.reserveCapacity(full.count + (n - i + 63) / 64)
        while i + 64 <= n {
            var word: UInt64 = 0
            for b in 0..<8 {
                // Byte k (0 or 1) of `eight` lands on bit 56 + k of the product, with no carries.
                let eight = raw.loadUnaligned(fromByteOffset: i &+ 8 &* b, as: UInt64.self)
                word |= ((eight &* 0x0102_0408_1020_4080) &>> 56) &<< UInt64(8 &* b)
            }
            full.append(word)
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
    public mutating func reserveCapacity(_ n: Int) { full.reserveCapacity(n / 64) }

    /// Appends `n` set bits.
    public mutating func appendSet(count n: Int) {
        var left = n
        while left > 0 && count & 63 != 0 {
            append(true)
            left -= 1
        }
        while left >= 64 {
            full.append(~0)
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
        let bit: UInt64 = 1 << UInt64(i & 63)
        if i >> 6 < full.count {
            if value { full[i >> 6] |= bit } else { full[i >> 6] &= ~bit }
        } else {
            if value { tail |= bit } else { tail &= ~bit }
        }
        unsetCount += value ? -1 : 1
    }

    public mutating func removeAll() {
        full.removeAll(keepingCapacity: true)
        tail = 0
        count = 0
        unsetCount = 0
    }
}
