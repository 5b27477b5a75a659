import Testing
@testable import TesseraCore

/// Validity bitmaps built from runs of flags agree with appending the flags one at a time.
@Suite("Validity bitmaps")
struct BitmapTests {
    @Test("appending flags in bulk equals appending them one by one", arguments: 0..<40)
    func bulkAppend(seed: Int) {
        var g = SeededGenerator(seed: UInt64(seed) &+ 7)
        var bulk = Bitmap(), single = Bitmap()
        for _ in 0..<Int.random(in: 1...6, using: &g) {
            let n = Int.random(in: 0...300, using: &g)
            // Every flag set, none set, a few nulls, or half and half.
            let nulls = [0.0, 1.0, 0.01, 0.5][Int.random(in: 0...3, using: &g)]
            let flags = (0..<n).map { _ in Double.random(in: 0..<1, using: &g) >= nulls }
            flags.withUnsafeBufferPointer { bulk.append(contentsOf: $0) }
            for f in flags { single.append(f) }
            #expect(bulk == single)
            #expect(bulk.count == single.count && bulk.unsetCount == single.unsetCount)
        }
    }
}
