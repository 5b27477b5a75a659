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
        guard let base = text.baseAddress else { return false }
        let n = text.count
        var i = 0
        if value < 0 {
            guard n > 0, base.load(as: UInt8.self) == UInt8(ascii: "-") else { return false }
            i = 1
        }
        // One to 19 digits (an Int64's magnitude has at most 19, so the sum below cannot
        // overflow), no leading zero but for 0 itself; read forwards, one multiply-add each.
        guard n - i >= 1 && n - i <= 19 else { return false }
        if n - i > 1 && base.load(fromByteOffset: i, as: UInt8.self) == UInt8(ascii: "0") { return false }
        var magnitude: UInt64 = 0
        while i < n {
            let digit = base.load(fromByteOffset: i, as: UInt8.self) &- UInt8(ascii: "0")
            guard digit < 10 else { return false }
            magnitude = magnitude &* 10 &+ UInt64(digit)
            i &+= 1
        }
        return magnitude == value.magnitude
    }

    /// The integer `text` spells: an optional `-`, then one or more ASCII digits, within Int64's
    /// range; nil for anything else (signs other than a leading `-`, spaces, an empty text).
    public static func parse(_ text: UnsafeRawBufferPointer) -> Int64? {
        let negative = text.first == UInt8(ascii: "-")
        let digits = text.dropFirst(negative ? 1 : 0)
        guard !digits.isEmpty else { return nil }
        var magnitude: UInt64 = 0
        for c in digits {
            guard c >= 0x30 && c <= 0x39 else { return nil }
            let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (next, o2) = times10.addingReportingOverflow(UInt64(c - 0x30))
            guard !o1, !o2 else { return nil }
            magnitude = next
        }
        if negative { return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }
}
