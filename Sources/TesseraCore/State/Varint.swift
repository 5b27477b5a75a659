/// ULEB128 integers and their zigzag form, as Parquet's encodings, Thrift's compact protocol and
/// protocol buffers (Feast's online values) write them: the one reader and writer of all three.
public enum Varint {
    public static func append(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// Writes `value` at `p` (at most 10 bytes) and returns the end.
    @inline(__always)
    public static func write(_ value: UInt64, to p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        var v = value, p = p
        while v >= 0x80 {
            p.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, as: UInt8.self)
            p += 1
            v >>= 7
        }
        p.storeBytes(of: UInt8(v), as: UInt8.self)
        return p + 1
    }

    /// Reads one varint from `next()`'s bytes; nil when it runs past 64 bits.
    public static func read(_ next: () throws -> UInt8) rethrows -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try next()
            guard shift < 64 else { return nil }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    public static func zigzag(_ value: Int64) -> UInt64 { UInt64(bitPattern: (value << 1) ^ (value >> 63)) }
    public static func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }
}
