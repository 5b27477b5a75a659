import Testing
@testable import TesseraCore

/// Rows gathered from a batch, in any order and with repeats, equal the same rows appended one
/// value at a time.
@Suite("Gathering rows of a batch")
struct ColumnGatherTests {
    @Test("gathered rows equal the rows appended one by one: every type, nulls, empty strings", arguments: 0..<20)
    func gatherEqualsAppend(seed: Int) {
        var g = SeededGenerator(seed: UInt64(seed) &+ 3)
        let types: [ValueType] = [.int64, .float64, .string, .bool]
        var source = ColumnBatch(schema: types)
        let nulls = [0.0, 0.2, 1.0][seed % 3]
        for i in 0..<Int.random(in: 1...200, using: &g) {
            let values: [Value?] = [
                .int(Int64.random(in: .min ... .max, using: &g)), .double(Double.random(in: -1e9...1e9, using: &g)),
                .string(String(repeating: "é", count: Int.random(in: 0...9, using: &g))), .bool(Bool.random(using: &g)),
            ].map { Double.random(in: 0..<1, using: &g) < nulls ? nil : $0 }
            source.append(time: Int64(i) * 1_000, values)
        }
        // Onto a batch that holds rows already.
        var gathered = ColumnBatch(schema: types), expected = ColumnBatch(schema: types)
        gathered.append(time: -1, [.int(1), nil, .string("x"), nil])
        expected.append(time: -1, [.int(1), nil, .string("x"), nil])
        let rows = (0..<Int.random(in: 0...300, using: &g)).map { _ in Int.random(in: 0..<source.count, using: &g) }
        rows.withUnsafeBufferPointer { gathered.append(rows: $0, of: source) }
        for r in rows { expected.append(time: source.eventTimes[r], source.columns.map { $0.value(at: r) }) }
        #expect(gathered.eventTimes == expected.eventTimes)
        for c in types.indices {
            #expect(gathered.columns[c].count == expected.columns[c].count)
            #expect((0..<expected.count).allSatisfy { gathered.columns[c].value(at: $0) == expected.columns[c].value(at: $0) }, "column \(c)")
        }
    }
}
