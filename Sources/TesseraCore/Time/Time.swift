/// Event time in Tessera is a count of microseconds since the Unix epoch (UTC).
///
/// Sources may declare seconds, milliseconds, microseconds or RFC 3339 strings; the decoder
/// converts them all to microseconds so that every window and tile is computed in one unit.
public typealias Micros = Int64

public enum Time {
    public static let microsecond: Micros = 1
    public static let millisecond: Micros = 1_000
    public static let second: Micros = 1_000_000
    public static let minute: Micros = 60 * second
    public static let hour: Micros = 60 * minute
    public static let day: Micros = 24 * hour

    /// `⌊a / b⌋` for a positive divisor, also for negative `a` (times before 1970).
    @inlinable
    public static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && a < 0) ? q - 1 : q
    }

    /// A duration as the shortest exact text: `90s` → "90s", `3600000000` → "1h".
    public static func format(duration: Micros) -> String {
        if duration == 0 { return "0s" }
        let units: [(Micros, String)] = [(day, "d"), (hour, "h"), (minute, "m"), (second, "s"), (millisecond, "ms"), (1, "us")]
        for (size, name) in units where duration % size == 0 {
            return "\(duration / size)\(name)"
        }
        return "\(duration)us"
    }

    /// Parses `500ms`, `5s`, `10m`, `1h`, `7d`, `2w`, `250us`; nil when the text is not a duration.
    public static func parse(duration text: String) -> Micros? {
        let units: [(String, Micros)] = [("ms", millisecond), ("us", 1), ("µs", 1), ("s", second), ("m", minute), ("h", hour), ("d", day), ("w", 7 * day)]
        for (suffix, size) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int64(number) else { return nil }
            let (product, overflow) = n.multipliedReportingOverflow(by: size)
            return overflow ? nil : product
        }
        return nil
    }
}
