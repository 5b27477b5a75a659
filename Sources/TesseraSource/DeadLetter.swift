import TesseraCore

/// Why an event was not aggregated (docs/design.md, "Bad input and faults"). Every rejected event is counted by reason and
/// written to the dead-letter sink with its raw bytes; none is dropped silently.
public enum DeadLetterReason: String, Sendable, CaseIterable, Hashable {
    case notJSON = "not_json"
    case wrongType = "wrong_type"
    case missingKey = "missing_key"
    case missingTimestamp = "missing_timestamp"
    case timestampOutOfRange = "timestamp_out_of_range"
    case invalidUTF8 = "invalid_utf8"
    case oversized
    case late
    /// Stamped further ahead of when it was produced than the source's `max_future_skew`.
    case futureTimestamp = "future_timestamp"
    /// The record key is not the event's key field (mis-keyed: its entity is on another partition).
    case keyMismatch = "key_mismatch"
    /// The record has no key.
    case nullKey = "null_key"
    /// Not in the schema registry's wire format (magic byte, schema id), or its bytes do not
    /// decode under the schema it names.
    case undecodable
    /// The schema registry does not have the schema the record names (it answered, without it).
    case schemaUnavailable = "schema_unavailable"
    /// The writer's schema cannot be read as the source declares its fields (a type that does not
    /// resolve to the declared one, a timestamp in another unit).
    case schemaMismatch = "schema_mismatch"
}

/// A rejected event's reason and a human-readable detail (field, position, value).
public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: DeadLetterReason
    public var detail: String

    public init(_ reason: DeadLetterReason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { "\(reason.rawValue): \(detail)" }

    /// The core's rejections, in the same vocabulary.
    public init(_ core: PartitionAggregator.Rejection) {
        switch core {
        case .late: self.init(.late, core.description)
        case .timeOutOfRange: self.init(.timestampOutOfRange, core.description)
        case .missingKey: self.init(.missingKey, core.description)
        case .future: self.init(.futureTimestamp, core.description)
        }
    }
}
