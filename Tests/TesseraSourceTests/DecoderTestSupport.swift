import Testing
import TesseraCore
import TesseraSource
import TesseraTestSupport
import TesseraWorkload

/// Shared by the decoder tests of the structured formats.

/// Byte-mutated payloads (`payload(i)` for i in 0..<3 000, one to three bytes changed, removed or
/// inserted after the framing's first five) never leave a batch half-appended: each is a row or a
/// rejection, every column as long as the batch.
func expectMutationsRowOrRejection<D: EventDecoder>(_ decoder: inout D, seed: UInt64, _ payload: (Int) -> [UInt8]) {
    var g = SeededGenerator(seed: seed)
    var batch = ColumnBatch(schema: decoder.schema.types)
    for i in 0..<3_000 {
        var bytes = payload(i)
        for _ in 0..<Int.random(in: 1...3, using: &g) {
            let k = Int.random(in: 5..<bytes.count, using: &g)
            switch Int.random(in: 0..<3, using: &g) {
            case 0: bytes[k] = UInt8.random(in: 0...255, using: &g)
            case 1: bytes.remove(at: k)
            default: bytes.insert(UInt8.random(in: 0...255, using: &g), at: k)
            }
        }
        let before = batch.count
        let r = bytes.withUnsafeBytes { decoder.decode($0, into: &batch) }
        #expect(batch.count == before + (r == nil ? 1 : 0) && batch.columns.allSatisfy { $0.count == batch.count })
    }
}

/// 5 000 reference orders encoded by `encode` decode to the columns the generator appends.
func expectReferenceOrders<D: EventDecoder>(_ decoder: inout D, _ encode: (ReferenceWorkload.Order, inout [UInt8]) -> Void) {
    let workload = ReferenceWorkload(.init(events: 5_000, users: 100, skew: 1.1, span: Time.day, disorder: Time.second))
    var batch = ColumnBatch(schema: decoder.schema.types), expected = ColumnBatch(schema: decoder.schema.types)
    for i in 0..<5_000 {
        var bytes: [UInt8] = []
        encode(workload.order(i), &bytes)
        #expect(bytes.withUnsafeBytes { decoder.decode($0, into: &batch) } == nil)
        ReferenceWorkload.append(workload.order(i), to: &expected)
    }
    #expect(batch.eventTimes == expected.eventTimes)
    for c in 0..<5 { #expect((0..<5_000).allSatisfy { batch.columns[c].value(at: $0) == expected.columns[c].value(at: $0) }) }
}
