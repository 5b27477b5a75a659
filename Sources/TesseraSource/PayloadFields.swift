import TesseraCore
import TesseraTopology

/// The payload fields of a source, as decoders of structured payloads address them: each a slot
/// (in declaration order) at a path; the event time's slot, an extra one when it is not declared.
struct PayloadFields: Sendable {
    /// The column of each declared payload field's slot.
    let columns: [Int]
    let paths: [[String]]
    let types: [ValueType]
    /// Slots in all: the declared ones, plus the event time's when it is not declared.
    let slotCount: Int
    let timestampInPayload: Bool
    let timestampSlot: Int
    /// µs per unit of a numeric event time.
    let timestampScale: Int64

    init(source: Source) {
        var columns: [Int] = [], paths: [[String]] = [], types: [ValueType] = []
        for c in source.schema.names.indices {
            guard let path = source.origin(c).path else { continue }
            columns.append(c)
            paths.append(path)
            types.append(source.schema.types[c])
        }
        let declared = source.schema.index(of: source.timestamp.field)
        if let declared, let slot = columns.firstIndex(of: declared) {
            timestampSlot = slot
            timestampInPayload = true
        } else if declared == nil {
            timestampSlot = columns.count
            paths.append([source.timestamp.field])
            types.append(source.timestamp.unit == .rfc3339 ? .string : .int64)
            timestampInPayload = true
        } else {
            timestampSlot = -1
            timestampInPayload = false
        }
        self.columns = columns
        self.paths = paths
        self.types = types
        slotCount = paths.count
        switch source.timestamp.unit {
        case .seconds: timestampScale = 1_000_000
        case .milliseconds: timestampScale = 1_000
        case .microseconds, .rfc3339: timestampScale = 1
        }
    }

    /// Checks what a decoder read (the event time, UTF-8 text) and appends the row, or says why
    /// the event is rejected (and appends nothing).
    func append(_ slots: [DecodedSlot], payload: UnsafeRawBufferPointer, symbols: [String], timestamp: TimeField,
                into batch: inout ColumnBatch) -> Rejection? {
        var eventTime: Micros = 0
        if timestampInPayload {
            let slot = slots[timestampSlot]
            switch slot.kind {
            case .absent, .null: return Rejection(.missingTimestamp, "no '\(timestamp.field)' field")
            case .int:
                let (t, overflow) = Int64(bitPattern: slot.bits).multipliedReportingOverflow(by: timestampScale)
                guard !overflow else { return Rejection(.timestampOutOfRange, "'\(timestamp.field)' = \(Int64(bitPattern: slot.bits)) overflows") }
                eventTime = t
            case .string:
                let text = payload[slot.start..<slot.end]
                guard timestamp.unit == .rfc3339, let t = RFC3339.parse(Array(text)) else {
                    return Rejection(.wrongType, "'\(timestamp.field)' is not an RFC 3339 timestamp: \(String(decoding: text.prefix(64), as: UTF8.self))")
                }
                eventTime = t
            case .double, .bool, .symbol:
                return Rejection(.wrongType, "'\(timestamp.field)' must be a number of \(timestamp.unit.rawValue) since the epoch")
            }
            guard PartitionAggregator.validTimes.contains(eventTime) else {
                return Rejection(.timestampOutOfRange, "'\(timestamp.field)' is \(eventTime) µs, outside years 0001–9999")
            }
        }
        for s in columns.indices {
            switch slots[s].kind {
            case .string:
                // Text is valid UTF-8 (strings, and bytes read as text).
                guard UTF8Validation.isValid(UnsafeRawBufferPointer(rebasing: payload[slots[s].start..<slots[s].end])) else {
                    return Rejection(.invalidUTF8, "'\(paths[s].joined(separator: "."))' is not valid UTF-8")
                }
            case .double:
                // A NaN or an infinity would stay in every sum it enters (JSON cannot write them either).
                let v = Double(bitPattern: slots[s].bits)
                guard v.isFinite else { return Rejection(.wrongType, "'\(paths[s].joined(separator: "."))' is \(v), not a finite number") }
            default:
                break
            }
        }
        if timestampInPayload { batch.eventTimes.append(eventTime) }
        for (s, c) in columns.enumerated() {
            let slot = slots[s]
            switch slot.kind {
            case .absent, .null: batch.columns[c].appendNull()
            case .int:
                if types[s] == .float64 { batch.columns[c].append(double: Double(Int64(bitPattern: slot.bits))) }
                else { batch.columns[c].append(int: Int64(bitPattern: slot.bits)) }
            case .double: batch.columns[c].append(double: Double(bitPattern: slot.bits))
            case .bool: batch.columns[c].append(bool: slot.bits != 0)
            case .string:
                payload.withMemoryRebound(to: UInt8.self) { b in
                    batch.columns[c].append(utf8: UnsafeBufferPointer(rebasing: b[slot.start..<slot.end]))
                }
            case .symbol: batch.columns[c].append(string: symbols[Int(slot.bits)])
            }
        }
        return nil
    }
}

/// What a decoder of a structured payload read for a slot: an integer, a double's bits, a bool,
/// text in the payload, or an enum symbol (an index into the program's symbols).
struct DecodedSlot: Sendable {
    enum Kind: UInt8, Sendable { case absent, null, int, double, bool, string, symbol }
    var kind: Kind = .absent
    var bits: UInt64 = 0
    var start = 0
    var end = 0
}
