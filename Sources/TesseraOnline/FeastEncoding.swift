import TesseraCore

/// The bytes of Feast's Redis online store (feast 0.67, `infra/online_stores/redis.py` and
/// `infra/key_encoding_utils.py`), written and read without Feast's code:
///
///     key    = serialized entity key (version 3) + project
///              u32 count, per join key sorted by name: u32 2 (STRING), u32 length, name;
///              then per value in the same order: u32 type (2 STRING, 4 INT64), u32 length, bytes
///              (an int64 as 8 little-endian bytes, a string as its UTF-8)
///     field  = murmur3_32("VIEW:FEATURE"), seed 0, as 4 little-endian bytes
///     value  = a serialized `feast.types.Value` (int64_val 4, double_val 5, bool_val 7,
///              string_val 2; a zero is written with its tag, or Feast would read it as null)
///     "_ts:VIEW" = a serialized `google.protobuf.Timestamp` (seconds 1, nanos 2) of the row's
///              event time
///
/// All integers are little-endian. Tessera adds "_created_ts:VIEW" (a Timestamp of the row's
/// created time), which Feast never reads.
enum FeastEncoding {
    static let stringType: UInt32 = 2
    static let int64Type: UInt32 = 4

    /// The key's bytes before the values: the count and the sorted join key names.
    static func keyHead(sortedNames: [String]) -> [UInt8] {
        var out: [UInt8] = []
        appendUInt32(UInt32(sortedNames.count), to: &out)
        for name in sortedNames {
            appendUInt32(stringType, to: &out)
            appendUInt32(UInt32(name.utf8.count), to: &out)
            out.append(contentsOf: name.utf8)
        }
        return out
    }

    static func appendInt64Key(_ value: Int64, to out: inout [UInt8]) {
        appendUInt32(int64Type, to: &out)
        appendUInt32(8, to: &out)
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    static func appendStringKey(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        appendUInt32(stringType, to: &out)
        appendUInt32(UInt32(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    static func appendUInt32(_ v: UInt32, to out: inout [UInt8]) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    /// The hash field of a feature: murmur3_32 of "VIEW:FEATURE", little-endian.
    static func field(view: String, feature: String) -> [UInt8] {
        let h = murmur3(Array("\(view):\(feature)".utf8))
        return [UInt8(truncatingIfNeeded: h), UInt8(truncatingIfNeeded: h >> 8), UInt8(truncatingIfNeeded: h >> 16), UInt8(truncatingIfNeeded: h >> 24)]
    }

    /// MurmurHash3, x86 32-bit variant.
    static func murmur3(_ data: [UInt8], seed: UInt32 = 0) -> UInt32 {
        @inline(__always) func rotl(_ x: UInt32, _ r: UInt32) -> UInt32 { (x << r) | (x >> (32 - r)) }
        let c1: UInt32 = 0xcc9e_2d51, c2: UInt32 = 0x1b87_3593
        var h = seed
        let blocks = data.count / 4
        for i in 0..<blocks {
            var k = UInt32(data[4 * i]) | UInt32(data[4 * i + 1]) << 8 | UInt32(data[4 * i + 2]) << 16 | UInt32(data[4 * i + 3]) << 24
            k &*= c1
            k = rotl(k, 15)
            k &*= c2
            h ^= k
            h = rotl(h, 13)
            h = h &* 5 &+ 0xe654_6b64
        }
        let tail = blocks * 4
        var k: UInt32 = 0
        switch data.count & 3 {
        case 3:
            k ^= UInt32(data[tail + 2]) << 16
            fallthrough
        case 2:
            k ^= UInt32(data[tail + 1]) << 8
            fallthrough
        case 1:
            k ^= UInt32(data[tail])
            k &*= c1
            k = rotl(k, 15)
            k &*= c2
            h ^= k
        default:
            break
        }
        h ^= UInt32(truncatingIfNeeded: data.count)
        h ^= h >> 16
        h &*= 0x85eb_ca6b
        h ^= h >> 13
        h &*= 0xc2b2_ae35
        h ^= h >> 16
        return h
    }

    // MARK: - Protocol buffers

    /// A `feast.types.Value` holding a non-string value given as bits (an Int64's or a Double's
    /// bit pattern, a Bool as 0/1).
    static func appendValue(bits: UInt64, type: ValueType, to out: inout [UInt8]) {
        switch type {
        case .int64:
            out.append(4 << 3 | 0)
            Varint.append(bits, to: &out)
        case .float64:
            out.append(5 << 3 | 1)
            withUnsafeBytes(of: bits.littleEndian) { out.append(contentsOf: $0) }
        case .bool:
            out.append(7 << 3 | 0)
            out.append(bits != 0 ? 1 : 0)
        case .string:
            preconditionFailure("strings are written by appendString")
        }
    }

    /// A `feast.types.Value` holding a string.
    static func appendString(_ bytes: some Collection<UInt8>, to out: inout [UInt8]) {
        out.append(2 << 3 | 2)
        Varint.append(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    /// A `google.protobuf.Timestamp` of `t` µs since the epoch (zero fields left out, as protobuf
    /// writes them).
    static func appendTimestamp(_ t: Micros, to out: inout [UInt8]) {
        let seconds = Time.floorDiv(t, Time.second)
        let nanos = (t - seconds * Time.second) * 1_000
        if seconds != 0 {
            out.append(1 << 3 | 0)
            Varint.append(UInt64(bitPattern: seconds), to: &out)
        }
        if nanos != 0 {
            out.append(2 << 3 | 0)
            Varint.append(UInt64(nanos), to: &out)
        }
    }

    /// The fields of a protobuf message: (number, varint or fixed bits, or a length-delimited
    /// range). Nil when the bytes are not a well-formed message.
    static func fields(_ b: [UInt8]) -> [(number: UInt64, bits: UInt64, bytes: Range<Int>?)]? {
        var out: [(UInt64, UInt64, Range<Int>?)] = []
        var i = 0
        struct Truncated: Error {}
        func varint() -> UInt64? {
            try? Varint.read {
                guard i < b.count else { throw Truncated() }
                defer { i += 1 }
                return b[i]
            } ?? nil
        }
        func fixed(_ n: Int) -> UInt64? {
            guard i + n <= b.count else { return nil }
            var v: UInt64 = 0
            for j in 0..<n { v |= UInt64(b[i + j]) << UInt64(8 * j) }
            i += n
            return v
        }
        while i < b.count {
            guard let tag = varint() else { return nil }
            switch tag & 7 {
            case 0: guard let v = varint() else { return nil }; out.append((tag >> 3, v, nil))
            case 1: guard let v = fixed(8) else { return nil }; out.append((tag >> 3, v, nil))
            case 5: guard let v = fixed(4) else { return nil }; out.append((tag >> 3, v, nil))
            case 2:
                guard let n = varint(), n <= UInt64(b.count - i) else { return nil }
                out.append((tag >> 3, 0, i..<i + Int(n)))
                i += Int(n)
            default: return nil
            }
        }
        return out
    }

    /// Reads a `feast.types.Value` as a value of `type`: nil for an empty (null) value, or one
    /// Tessera cannot read as that type.
    static func value(_ b: [UInt8], as type: ValueType) -> Value? {
        guard let fields = fields(b), let f = fields.last else { return nil }
        switch (type, f.number) {
        case (.int64, 4): return .int(Int64(bitPattern: f.bits))
        case (.int64, 3): return .int(Int64(Int32(truncatingIfNeeded: f.bits)))
        case (.float64, 5): return .double(Double(bitPattern: f.bits))
        case (.float64, 6): return .double(Double(Float(bitPattern: UInt32(truncatingIfNeeded: f.bits))))
        case (.bool, 7): return .bool(f.bits != 0)
        case (.string, 2): return f.bytes.map { .string(String(decoding: b[$0], as: UTF8.self)) }
        default: return nil
        }
    }

    /// Reads a `google.protobuf.Timestamp` as µs since the epoch.
    static func timestamp(_ b: [UInt8]) -> Micros? {
        guard let fields = fields(b) else { return nil }
        var seconds: Int64 = 0, nanos: Int64 = 0
        for f in fields {
            if f.number == 1 { seconds = Int64(bitPattern: f.bits) }
            if f.number == 2 { nanos = Int64(Int32(truncatingIfNeeded: f.bits)) }
        }
        return seconds * Time.second + nanos / 1_000
    }
}
