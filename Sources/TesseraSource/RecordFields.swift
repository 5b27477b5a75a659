import TesseraCore
import TesseraTopology

/// The fields a source takes from the Kafka record around the payload — its key, its timestamp,
/// its headers — each read as its declared type (text for keys and headers: an int64 as decimal
/// digits, a float64 as a number, a bool as `true`/`false`). A record without one gives null; a
/// value that does not read as its type rejects the event (`wrong_type`), and so does a record
/// without a timestamp when the event time is its timestamp (`missing_timestamp`).
///
/// Two steps, so that a rejected record leaves the batch untouched: `read` checks the record's
/// values before the payload is decoded, `append` adds them (and the event time, when it is the
/// record's) once the payload was.
public struct RecordFields: Sendable {
    struct Entry: Sendable {
        var column: Int
        var origin: FieldOrigin
        var type: ValueType
        /// Index into `headerNames`, for a header.
        var header: Int
    }

    private let entries: [Entry]
    /// The header names the source reads, in the order `read`'s lookup is asked for them.
    public let headerNames: [String]
    /// The entry that is the event time (the record timestamp), if it is one.
    private let timeEntry: Int?
    private let timeField: String
    /// What `read` found, per entry (`Value` is enough: these are few fields per record).
    private var values: [Value?]
    private var eventTime: Micros = 0

    /// Nil when the source takes nothing from the record.
    public init?(source: Source) {
        var entries: [Entry] = []
        var headers: [String] = []
        for c in source.schema.names.indices {
            let origin = source.origin(c)
            guard origin.path == nil else { continue }
            var header = -1
            if case .header(let name) = origin {
                header = headers.firstIndex(of: name) ?? headers.count
                if header == headers.count { headers.append(name) }
            }
            entries.append(Entry(column: c, origin: origin, type: source.schema.types[c], header: header))
        }
        guard !entries.isEmpty else { return nil }
        self.entries = entries
        headerNames = headers
        timeField = source.timestamp.field
        timeEntry = entries.firstIndex { source.schema.names[$0.column] == source.timestamp.field }
        values = Array(repeating: nil, count: entries.count)
    }

    /// Reads the record's values, or says why the event is rejected. `header(i)` is the value of
    /// header `headerNames[i]` (nil when the record has none).
    public mutating func read(key: UnsafeRawBufferPointer?, timestampMillis: Int64,
                              header: (Int) -> UnsafeRawBufferPointer?) -> Rejection? {
        for (i, e) in entries.enumerated() {
            let text: UnsafeRawBufferPointer?
            switch e.origin {
            case .recordTimestamp:
                values[i] = timestampMillis >= 0 ? .int(timestampMillis) : nil
                continue
            case .recordKey: text = key.flatMap { $0.count > 0 ? $0 : nil }
            case .header: text = header(e.header)
            case .payload: continue
            }
            guard let text else {
                values[i] = nil
                continue
            }
            guard let value = RecordFields.parse(text, as: e.type) else {
                let preview = String(decoding: text.prefix(64), as: UTF8.self)
                return Rejection(.wrongType, "\(e.origin) is '\(preview)', not \(e.type == .int64 ? "an int64" : "a \(e.type.rawValue)")")
            }
            values[i] = value
        }
        if let t = timeEntry {
            guard case .int(let millis)? = values[t] else { return Rejection(.missingTimestamp, "the record has no timestamp ('\(timeField)')") }
            let (micros, overflow) = millis.multipliedReportingOverflow(by: 1_000)
            guard !overflow, PartitionAggregator.validTimes.contains(micros) else {
                return Rejection(.timestampOutOfRange, "the record timestamp \(millis) ms is outside years 0001–9999")
            }
            eventTime = micros
        }
        return nil
    }

    /// Appends what `read` found to the row the payload decoder just added.
    public func append(into batch: inout ColumnBatch) {
        if timeEntry != nil { batch.eventTimes.append(eventTime) }
        for (i, e) in entries.enumerated() { batch.columns[e.column].append(values[i]) }
    }

    /// A key's or header's text as `type`.
    static func parse(_ text: UnsafeRawBufferPointer, as type: ValueType) -> Value? {
        guard let string = String(validating: text, as: UTF8.self) else { return nil }
        switch type {
        case .string: return .string(string)
        case .int64: return DecimalText.parse(text).map { .int($0) }
        case .float64: return Double(string).flatMap { $0.isFinite ? .double($0) : nil }
        case .bool: return string == "true" ? .bool(true) : (string == "false" ? .bool(false) : nil)
        }
    }
}
