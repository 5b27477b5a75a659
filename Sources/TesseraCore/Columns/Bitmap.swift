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

    public mutating func append(_ value: Bool) {
        if count & 63 == 0 { words.append(0) }
        if value {
            words[count >> 6] |= 1 << UInt64(count & 63)
        } else {
            unsetCount += 1
        }
        count += 1
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
