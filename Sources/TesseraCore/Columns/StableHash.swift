/// 64-bit hashes that are the same in every process and on every run.
///
/// Swift's `Hasher` is seeded per process, so it cannot feed sketches that are checkpointed and
/// merged later. These functions are fixed: a change to them is a state-format change.
public enum StableHash {
    /// The 64-bit finaliser of MurmurHash3: a bijection with full avalanche.
    @inlinable
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z ^= z >> 33
        z &*= 0xff51_afd7_ed55_8ccd
        z ^= z >> 33
        z &*= 0xc4ce_b9fe_1a85_ec53
        z ^= z >> 33
        return z
    }

    @inlinable
    public static func hash(int value: Int64) -> UInt64 {
        mix(UInt64(bitPattern: value) &+ 0x9e37_79b9_7f4a_7c15)
    }

    /// Doubles equal as numbers hash equal: `-0.0` as `0.0`, and integral values as their Int64.
    @inlinable
    public static func hash(double value: Double) -> UInt64 {
        if value == value.rounded(), abs(value) < 9.0e18 { return hash(int: Int64(value)) }
        return mix(value.bitPattern ^ 0x6a09_e667_f3bc_c909)
    }

    @inlinable
    public static func hash(bool value: Bool) -> UInt64 {
        hash(int: value ? 1 : 0)
    }

    /// Hashes bytes eight at a time; the length is folded in so that prefixes differ.
    @inlinable
    public static func hash(bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0x243f_6a88_85a3_08d3 ^ (UInt64(bytes.count) &* 0x9e37_79b9_7f4a_7c15)
        var i = 0
        let n = bytes.count
        guard let base = bytes.baseAddress else { return mix(h) }
        let raw = UnsafeRawPointer(base)
        while i + 8 <= n {
            let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            h = mix(h ^ word) &* 0x9e37_79b9_7f4a_7c15
            i += 8
        }
        if i < n {
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while i < n {
                tail |= UInt64(base[i]) << shift
                shift += 8
                i += 1
            }
            h = mix(h ^ tail) &* 0x9e37_79b9_7f4a_7c15
        }
        return mix(h)
    }

    public static func hash(string: String) -> UInt64 {
        var s = string
        return s.withUTF8 { hash(bytes: $0) }
    }
}

extension UnsafeRawPointer {
    /// Whether `count` bytes here equal those at `other`: eight at a time, the last eight (or,
    /// for 4–7 bytes, the first and last four) read where they end, overlapping what was compared.
    @inlinable @inline(__always)
    func bytesEqual(_ other: UnsafeRawPointer, count: Int) -> Bool {
        if count >= 8 {
            var i = 0
            while i &+ 8 < count {
                if loadUnaligned(fromByteOffset: i, as: UInt64.self) != other.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
                i &+= 8
            }
            return loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self) == other.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)
        }
        if count >= 4 {
            return loadUnaligned(as: UInt32.self) == other.loadUnaligned(as: UInt32.self)
                && loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self) == other.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self)
        }
        var i = 0
        while i < count {
            if load(fromByteOffset: i, as: UInt8.self) != other.load(fromByteOffset: i, as: UInt8.self) { return false }
            i &+= 1
        }
        return true
    }
}

extension UnsafeMutableRawPointer {
    /// Copies `count` bytes from `source` (not overlapping them) without a call: a word at a time,
    /// the last word (or, for 4–7 bytes, the first and last four) read and written where it ends.
    /// For the short strings of feature values.
    @inlinable @inline(__always)
    func copyShort(from source: UnsafeRawPointer, count: Int) {
        if count >= 8 {
            var i = 0
            while i &+ 8 < count {
                storeBytes(of: source.loadUnaligned(fromByteOffset: i, as: UInt64.self), toByteOffset: i, as: UInt64.self)
                i &+= 8
            }
            storeBytes(of: source.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self), toByteOffset: count &- 8, as: UInt64.self)
        } else if count >= 4 {
            let head = source.loadUnaligned(as: UInt32.self), tail = source.loadUnaligned(fromByteOffset: count &- 4, as: UInt32.self)
            storeBytes(of: head, as: UInt32.self)
            storeBytes(of: tail, toByteOffset: count &- 4, as: UInt32.self)
        } else {
            for i in 0..<count { storeBytes(of: source.load(fromByteOffset: i, as: UInt8.self), toByteOffset: i, as: UInt8.self) }
        }
    }
}
