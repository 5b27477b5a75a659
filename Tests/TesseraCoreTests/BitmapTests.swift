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

    @Test("every operation agrees with an array of flags: bits, words, runs and counts across word boundaries", arguments: 0..<30)
    func operationsAgreeWithFlags(seed: Int) {
        var g = SeededGenerator(seed: UInt64(seed) &+ 101)
        var bitmap = Bitmap(), flags: [Bool] = []
        if seed % 3 == 0 {
            let n = Int.random(in: 0...200, using: &g), value = Bool.random(using: &g)
            bitmap = Bitmap(repeating: value, count: n)
            flags = Array(repeating: value, count: n)
        }
        for _ in 0..<200 {
            switch Int.random(in: 0...9, using: &g) {
            case 0...3:
                let f = Double.random(in: 0..<1, using: &g) < 0.8
                bitmap.append(f)
                flags.append(f)
            case 4 where !flags.isEmpty:
                bitmap.removeLast()
                flags.removeLast()
            case 5 where !flags.isEmpty:
                let i = Int.random(in: 0..<flags.count, using: &g), f = Bool.random(using: &g)
                bitmap.set(i, f)
                flags[i] = f
            case 6:
                let n = Int.random(in: 0...130, using: &g)
                bitmap.appendSet(count: n)
                flags += Array(repeating: true, count: n)
            case 7:
                let more = (0..<Int.random(in: 0...150, using: &g)).map { _ in Double.random(in: 0..<1, using: &g) < 0.7 }
                more.withUnsafeBufferPointer { bitmap.append(contentsOf: $0) }
                flags += more
            case 8 where Int.random(in: 0...9, using: &g) == 0:
                bitmap.removeAll()
                flags.removeAll()
            default:
                break
            }
            #expect(bitmap.count == flags.count && bitmap.unsetCount == flags.filter { !$0 }.count)
            #expect(flags.indices.allSatisfy { bitmap[$0] == flags[$0] })
            let words = bitmap.words
            #expect(words.count == (flags.count + 63) / 64)
            #expect(flags.indices.allSatisfy { (words[$0 >> 6] >> UInt64($0 & 63)) & 1 == (flags[$0] ? 1 : 0) })
            #expect(words.indices.allSatisfy { w in flags.count >= 64 * (w + 1) || words[w] >> UInt64(flags.count - 64 * w) == 0 },
                    "bits past the last row are clear")
            var runs: [Bool] = Array(repeating: false, count: flags.count)
            bitmap.forEachSetRun(upTo: flags.count) { r in for i in r { runs[i] = true } }
            #expect(runs == flags)
            var rebuilt = Bitmap()
            for f in flags { rebuilt.append(f) }
            #expect(rebuilt == bitmap)
        }
    }
}
