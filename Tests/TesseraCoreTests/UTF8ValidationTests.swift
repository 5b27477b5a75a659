import Testing
import TesseraCore
import TesseraTestSupport

@Suite("UTF-8 validation")
struct UTF8ValidationTests {
    @Test("agrees with the standard library on random bytes and on every kind of malformed sequence", arguments: 0..<4)
    func agrees(seed: Int) {
        var g = SeededGenerator(seed: UInt64(seed) &+ 41)
        let pieces: [[UInt8]] = [Array("abcdefgh".utf8), Array("é".utf8), Array("€".utf8), Array("😀".utf8), [0xC0, 0x80], [0xE0, 0x80, 0x80],
                                 [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xF8], [0x80], [0xE2, 0x82], [0xF0, 0x9F, 0x98]]
        for _ in 0..<5_000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 0...12, using: &g) {
                if Bool.random(using: &g) { bytes += pieces.randomElement(using: &g)! } else { bytes.append(UInt8.random(in: 0...255, using: &g)) }
            }
            let mine = bytes.withUnsafeBytes { UTF8Validation.isValid($0) }
            #expect(mine == (String(validating: bytes, as: UTF8.self) != nil), "\(bytes)")
        }
    }
}
