import TesseraCore
import TesseraTopology

/// What every payload decoder does: one payload in, one row appended to a source's column batch
/// or a rejection (and nothing appended). `JSONEventDecoder`, `AvroEventDecoder` and
/// `ProtobufEventDecoder` are the formats' decoders; the worker holds its source's one directly.
public protocol EventDecoder: Sendable {
    /// The source's fields, in the batch's column order.
    var schema: Schema { get }
    mutating func decode(_ payload: UnsafeRawBufferPointer, into batch: inout ColumnBatch) -> Rejection?
}

extension JSONEventDecoder: EventDecoder {}
extension AvroEventDecoder: EventDecoder {}
extension ProtobufEventDecoder: EventDecoder {}
