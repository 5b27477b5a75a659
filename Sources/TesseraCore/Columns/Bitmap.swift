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

    /// Appends one bit per flag, 64 at a time where the bitmap is word-aligned.
    public mutating func append(contentsOf flags: UnsafeBufferPointer<Bool>) {
        var i = 0
        let n = flags.count
        while i < n && count & 63 != 0 {
            append(flags[i])
            i += 1
        }
        words.reserveCapacity(words.count + (n - i + 63) / 64)
        while i + 64 <= n {
            var word: UInt64 = 0
            var unset = 0
            for b in 0..<64 {
                let bit: UInt64 = flags[i + b] ? 1 : 0
                word |= bit << UInt64(b)
                unset &+= Int(1 &- bit)
            }
            words.append(word)
            count += 64
            unsetCount += unset
            i += 64
        }
        while i < n {
            append(flags[i])
            i += 1
        }
    }

    /// Appends `count` bits read from `flags[0], flags[stride], flags[2·stride], …`.
    public mutating func append(strided flags: UnsafePointer<Bool>, stride: Int, count n: Int) {
        // Most columns have no null at all: check that first, then append whole words.
        var all = true
        for i in 0..<n where !flags[i &* stride] {
            all = false
            break
        }
        if all { return appendSet(count: n) }
        var i = 0
        while i < n && count & 63 != 0 {
            append(flags[i &* stride])
            i += 1
        }
        words.reserveCapacity(words.count + (n - i + 63) / 64)
        while i + 64 <= n {
            var word: UInt64 = 0
            for b in 0..<64 { word |= UInt64(unsafeBitCast(flags[(i &+ b) &* stride], to: UInt8.self)) << UInt64(b) }
            words.append(word)
            count += 64
            unsetCount += 64 - word.nonzeroBitCount
            i += 64
        }
        while i < n {
            append(flags[i &* stride])
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
