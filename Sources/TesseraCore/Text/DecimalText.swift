/// The Swift runtime's shortest round-trip formatter of doubles (what `Double.description` calls,
/// bound the way the standard library binds it): writes into `buffer`, returns the length.
@_silgen_name("swift_float64ToString")
private func swiftFloat64ToString(_ buffer: UnsafeMutablePointer<UInt8>, _ bufferLength: UInt, _ value: Double, _ debug: Bool) -> UInt64

/// ASCII decimal text of numbers, appended to a byte buffer without allocating: the one
/// formatter of Redis commands and values, CSV training sets and Parquet-free text output.
public enum DecimalText {
    /// `value.description`'s bytes (the shortest text that reads back as the same double: `1.5`,
    /// `1e-07`, `inf`, `nan`), without making a String.
    public static func append(_ value: Double, to out: inout [UInt8]) {
        if value.isNaN {
            // Any NaN, whatever its sign and payload (which the formatter would print).
            out.append(contentsOf: [UInt8(ascii: "n"), UInt8(ascii: "a"), UInt8(ascii: "n")])
            return
        }
        // Filled with "0"s: the formatter leaves some of the zero digits it places (before the
        // decimal point of 0.x, after it in 0.00x) as the buffer had them.
        let zeros: UInt64 = 0x3030_3030_3030_3030
        var buffer = (zeros, zeros, zeros, zeros, zeros)
        withUnsafeMutableBytes(of: &buffer) { b in
            let p = b.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let n = Int(swiftFloat64ToString(p, UInt(b.count), value, false))
            out.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        }
    }

    /// `value.description`'s bytes: the sign and at most 19 digits, written two at a time from
    /// the end of a stack buffer and appended at once (a timestamp in µs is 16 digits).
    public static func append(_ value: Int64, to out: inout [UInt8]) {
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { d in
            var start = d.count
            @inline(__always) func pair(_ r: UInt64) {
                start &-= 2
                let tens = r / 10
                d[start] = UInt8(truncatingIfNeeded: tens) &+ 0x30
                d[start &+ 1] = UInt8(truncatingIfNeeded: r &- tens &* 10) &+ 0x30
            }
            while magnitude >= 100 {
                let q = magnitude / 100
                pair(magnitude &- q &* 100)
                magnitude = q
            }
            if magnitude >= 10 {
                pair(magnitude)
            } else {
                start &-= 1
                d[start] = UInt8(truncatingIfNeeded: magnitude) &+ 0x30
            }
            if value < 0 {
                start &-= 1
                d[start] = UInt8(ascii: "-")
            }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[start...]))
        }
    }

    /// Whether `text` is exactly `value`'s decimal text (what `append` writes: no sign but a
    /// leading `-`, no leading zeros).
    public static func matches(_ text: UnsafeRawBufferPointer, _ value: Int64) -> Bool {
        var i = 0
        if value < 0 {
            guard text.first == UInt8(ascii: "-") else { return false }
            i = 1
        }
        // No leading zero but for 0 itself.
        if text.count - i > 1 && text[i] == UInt8(ascii: "0") { return false }
        return magnitude(text, from: i) == value.magnitude
    }

    /// The integer `text` spells: an optional `-`, then one or more ASCII digits, within Int64's
    /// range; nil for anything else (signs other than a leading `-`, spaces, an empty text).
    public static func parse(_ text: UnsafeRawBufferPointer) -> Int64? {
        let negative = text.first == UInt8(ascii: "-")
        var i = negative ? 1 : 0
        // Leading zeros, however many, do not count against `magnitude`'s 19 digits.
        while i < text.count - 1 && text[i] == UInt8(ascii: "0") { i += 1 }
        guard let magnitude = magnitude(text, from: i) else { return nil }
        if negative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    /// The number the ASCII digits `text[start...]` spell, read forwards with one multiply-add
    /// each; nil unless there are 1 to 19 of them and nothing else (an Int64's magnitude has at
    /// most 19 digits, so the sum cannot overflow).
    @inline(__always)
    private static func magnitude(_ text: UnsafeRawBufferPointer, from start: Int) -> UInt64? {
        let n = text.count
        guard n - start >= 1 && n - start <= 19, let base = text.baseAddress else { return nil }
        var magnitude: UInt64 = 0
        var i = start
        while i < n {
            let digit = base.load(fromByteOffset: i, as: UInt8.self) &- UInt8(ascii: "0")
            guard digit < 10 else { return nil }
            magnitude = magnitude &* 10 &+ UInt64(digit)
            i &+= 1
        }
        return magnitude
    }
}
