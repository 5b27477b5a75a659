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

    /// Parses an RFC 3339 timestamp: `2026-01-01T12:00:00Z`, `2026-01-01 12:00:00.123456+02:00`;
    /// one without an offset is taken as UTC (as pandas and Feast take naive timestamps).
    public static func parse(_ text: UnsafeBufferPointer<UInt8>) -> Micros? { RFC3339.parse(text, missingOffset: .utc) }

    public static func parse(_ text: String) -> Micros? { RFC3339.parse(text, missingOffset: .utc) }
}
