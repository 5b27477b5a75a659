import Testing
@testable import TesseraCore

/// The byte comparisons filters and string dictionaries rely on, against Swift's own equality.
@Suite("Byte comparisons")
struct ByteComparisonTests {
    @Test("bytesEqual: every length up to 40, equal and with one byte changed at every position")
    func bytesEqualEveryLength() {
        for n in 0...40 {
            let a = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            a.withUnsafeBytes { x in
                var b = a
                b.withUnsafeBytes { y in
                    #expect(n == 0 || x.baseAddress!.bytesEqual(y.baseAddress!, count: n), "length \(n)")
                }
                for p in 0..<n {
                    b = a
                    b[p] ^= 0x40
                    b.withUnsafeBytes { y in #expect(!x.baseAddress!.bytesEqual(y.baseAddress!, count: n), "length \(n), byte \(p)") }
                }
            }
        }
    }

    @Test("copyShort: every length up to 40 copies exactly those bytes and writes nothing around them")
    func copyShortEveryLength() {
        for n in 0...40 {
            let source = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ 3) }
            var target = [UInt8](repeating: 0xEE, count: n + 16)
            source.withUnsafeBytes { from in
                target.withUnsafeMutableBytes { to in
                    if n > 0 { (to.baseAddress! + 8).copyShort(from: from.baseAddress!, count: n) }
                }
            }
            #expect(Array(target[8..<8 + n]) == source, "length \(n)")
            #expect(target[..<8].allSatisfy { $0 == 0xEE } && target[(8 + n)...].allSatisfy { $0 == 0xEE }, "length \(n)")
        }
    }

    @Test("string equality filters: == and != against String equality, with and without nulls", arguments: [false, true])
    func stringEquality(nulls: Bool) {
        var g = SeededGenerator(seed: nulls ? 7 : 8)
        // Two letters and lengths up to 12: many values of the same length that differ.
        func draw() -> String { String((0..<Int.random(in: 0...12, using: &g)).map { _ in Bool.random(using: &g) ? "a" : "b" }) }
        for _ in 0..<40 {
            var batch = ColumnBatch(schema: [.string])
            var values: [String?] = []
            for _ in 0..<Int.random(in: 1...200, using: &g) {
                let v: String? = nulls && Int.random(in: 0..<5, using: &g) == 0 ? nil : draw()
                values.append(v)
                batch.append(time: 0, [v.map { .string($0) }])
            }
            #expect(batch.columns[0].validity.allSet != values.contains(nil))
            let literal = draw()
            var equal: [Bool] = [], differ: [Bool] = []
            Predicate.compare(field: 0, .eq, .string(literal)).evaluate(on: batch, into: &equal)
            Predicate.compare(field: 0, .ne, .string(literal)).evaluate(on: batch, into: &differ)
            #expect(equal == values.map { $0 == literal }, "== \"\(literal)\"")
            #expect(differ == values.map { $0 != nil && $0 != literal }, "!= \"\(literal)\"")
        }
    }
}
