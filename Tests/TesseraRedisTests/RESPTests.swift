import Testing
@testable import TesseraRedis

/// The commands the flusher pipelines are RESP arrays of bulk strings (redis.io, "RESP protocol
/// spec"): `*N\r\n`, then `$LEN\r\nBYTES\r\n` per argument.
@Suite("RESP encoding")
struct RESPTests {
    @Test("commands are arrays of bulk strings, whatever the number of arguments and their lengths")
    func bulkStrings() {
        // Counts of one, two and more digits, an empty argument, either side of the longest one
        // assembled on the stack (104 bytes).
        for lengths in [[0], [1, 9], [10, 99, 100], [101, 104, 105, 106], Array(repeating: 3, count: 11), [1_000, 12_345]] {
            let arguments = lengths.enumerated().map { i, n in (0..<n).map { UInt8(truncatingIfNeeded: 0x41 + (i + $0) % 26) } }
            var buffer = RESPBuffer()
            buffer.begin(arguments: arguments.count)
            for a in arguments { buffer.argument(a) }
            var expected = Array("*\(arguments.count)\r\n".utf8)
            for a in arguments { expected += Array("$\(a.count)\r\n".utf8) + a + Array("\r\n".utf8) }
            #expect(buffer.bytes == expected, "lengths \(lengths)")
            #expect(buffer.commands == 1)
        }
    }
}
