import TesseraCore

/// Timestamps of entity frames and training sets: RFC 3339 text and integer epochs, to and from
/// microseconds since the epoch (UTC).
public enum Timestamps {
    /// How integer epoch timestamps (a CSV column of integers, an int32/int64 Parquet column) are read.
    public enum EpochUnit: String, Sendable, CaseIterable {
        /// Chosen per column from its largest magnitude: below 10¹¹ seconds, below 10¹⁴ milliseconds,
        /// below 10¹⁷ microseconds, else nanoseconds. Unambiguous for instants from 1973-03-03 to 5138-11-16.
        case auto
        case seconds = "s"
        case milliseconds = "ms"
        case microseconds = "us"
        case nanoseconds = "ns"

        /// The unit `.auto` picks for a column whose largest absolute value is `largest`.
        static func detect(largest: UInt64) -> EpochUnit {
            switch largest {
            case ..<100_000_000_000: return .seconds
            case ..<100_000_000_000_000: return .milliseconds
            case ..<100_000_000_000_000_000: return .microseconds
            default: return .nanoseconds
            }
        }

        /// `value` in this (resolved) unit as microseconds; nil on overflow.
        func micros(_ value: Int64) -> Micros? {
            switch self {
            case .auto: preconditionFailure("resolve .auto with detect(largest:) first")
            case .seconds:
                let (r, o) = value.multipliedReportingOverflow(by: Time.second)
                return o ? nil : r
            case .milliseconds:
                let (r, o) = value.multipliedReportingOverflow(by: Time.millisecond)
                return o ? nil : r
            case .microseconds: return value
            case .nanoseconds: return Time.floorDiv(value, 1000)
            }
        }
    }

    /// Parses an RFC 3339 timestamp: `2026-01-01T12:00:00Z`, `2026-01-01 12:00:00.123456+02:00`.
    /// `t`/space separators and `z` are accepted, digits past microseconds are truncated, and a
    /// timestamp without an offset is taken as UTC (as pandas and Feast take naive timestamps).
    public static func parse(_ text: UnsafeBufferPointer<UInt8>) -> Micros? {
        var i = 0
        let n = text.count
        func digits(_ count: Int) -> Int? {
            guard i + count <= n else { return nil }
            var v = 0
            for k in 0..<count {
                let c = text[i + k]
                guard c >= 0x30 && c <= 0x39 else { return nil }
                v = v * 10 + Int(c - 0x30)
            }
            i += count
            return v
        }
        func expect(_ a: UInt8, _ b: UInt8 = 0, _ c: UInt8 = 0) -> Bool {
            guard i < n, text[i] == a || (b != 0 && text[i] == b) || (c != 0 && text[i] == c) else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(0x2D), let month = digits(2), expect(0x2D), let day = digits(2),
              expect(0x54, 0x74, 0x20), let hour = digits(2), expect(0x3A), let minute = digits(2), expect(0x3A),
              let second = digits(2),
              (1...12).contains(month), day >= 1, day <= RFC3339.daysIn(month: month, year: year),
              hour < 24, minute < 60, second < 61
        else { return nil }
        var micros = 0
        if i < n && text[i] == 0x2E {
            i += 1
            var scale = 100_000
            let start = i
            while i < n, text[i] >= 0x30 && text[i] <= 0x39 {
                micros += Int(text[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        var offset = 0
        if i == n {
            offset = 0
        } else if expect(0x5A, 0x7A) {
            offset = 0
        } else if text[i] == 0x2B || text[i] == 0x2D {
            let sign = text[i] == 0x2D ? -1 : 1
            i += 1
            guard let oh = digits(2), expect(0x3A), let om = digits(2), oh < 24, om < 60 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil
        }
        guard i == n else { return nil }
        let days = RFC3339.daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + min(second, 59)) - Int64(offset)
        return seconds * Time.second + Int64(micros)
    }

    public static func parse(_ text: String) -> Micros? {
        var copy = text
        return copy.withUTF8 { parse($0) }
    }
}
