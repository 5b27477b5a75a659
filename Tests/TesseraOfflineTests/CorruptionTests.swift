import Foundation
import Testing
import TesseraCore
import TesseraTestSupport
@testable import TesseraOffline

/// A small file with every type, two row groups and dictionary pages; returns its bytes and columns.
func sampleFile(_ path: String, compression: ParquetCompression, checksums: Bool = true) throws -> ([UInt8], [Column]) {
    var g = SeededGenerator(seed: 5)
    let groups = [randomRowGroup(roundTripSchema, rows: 300, nullRate: 0.2, using: &g),
                  randomRowGroup(roundTripSchema, rows: 200, nullRate: 0.2, using: &g)]
    let writer = try ParquetFileWriter(path: path, schema: roundTripSchema, compression: compression,
                                       metadata: [("k", "v")])
    writer.pageChecksums = checksums
    for group in groups { try writer.write(rowGroup: group) }
    try writer.close()
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    let columns = roundTripSchema.fields.indices.map { i in concatenate(groups.map { $0[i] }) }
    return (bytes, columns)
}

enum Outcome {
    case read([Column])
    case parquetError(String)
    case otherError(String)
}

func readCorrupted(_ bytes: [UInt8], at path: String) -> Outcome {
    do {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let reader = try ParquetFileReader(path: path)
        return .read(try reader.readAll())
    } catch let e as ParquetError {
        return .parquetError(e.description)
    } catch {
        return .otherError("\(error)")
    }
}

/// Structural invariants every returned column must keep, whatever the input bytes were.
func wellFormed(_ columns: [Column]) -> Bool {
    guard let n = columns.first?.count else { return true }
    for c in columns {
        guard c.count == n else { return false }
        switch c.type {
        case .int64, .bool: if c.ints.count != n { return false }
        case .float64: if c.doubles.count != n { return false }
        case .string:
            guard c.offsets.count == n + 1, c.offsets.last.map(Int.init) == c.bytes.count else { return false }
            for i in 0..<n where c.offsets[i] > c.offsets[i + 1] { return false }
        }
    }
    return true
}

@Suite struct CorruptionTests {
    @Test(arguments: [ParquetCompression.none, .zstd(level: 3)])
    func truncatedFilesThrow(compression: ParquetCompression) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (bytes, _) = try sampleFile(dir.path("sample.parquet"), compression: compression)
        var g = SeededGenerator(seed: 17)
        var lengths = Array(0..<64) + Array((bytes.count - 64)..<bytes.count)
        for _ in 0..<150 { lengths.append(Int(g.next() % UInt64(bytes.count))) }
        for n in lengths {
            switch readCorrupted(Array(bytes[0..<n]), at: dir.path("truncated.parquet")) {
            case .parquetError: break
            case .read: Issue.record("a file truncated to \(n) of \(bytes.count) bytes was read")
            case .otherError(let e): Issue.record("truncated to \(n): not a ParquetError: \(e)")
            }
        }
    }

    /// Page bodies are covered by CRC-32s, so any flipped byte there must be reported; flips in page headers
    /// must be reported or harmless; flips in the footer must never crash (a flipped statistic or name can
    /// go unnoticed, as with any Parquet reader).
    @Test(arguments: [ParquetCompression.none, .snappy, .zstd(level: 3)])
    func flippedBytesAreDetected(compression: ParquetCompression) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("sample.parquet")
        let (bytes, original) = try sampleFile(path, compression: compression)
        let pages = try ParquetFileReader(path: path).pageRanges()
        let footerStart = pages.map(\.body.upperBound).max()!
        var g = SeededGenerator(seed: 23)
        var counts = (body: 0, header: 0, footer: 0, thrown: 0)
        // Every page-header byte and the leading magic, plus random positions anywhere.
        var positions = pages.flatMap { Array($0.header) }.map(Int.init) + Array(0..<4)
        for _ in 0..<300 { positions.append(Int(g.next() % UInt64(bytes.count))) }
        for (trial, position) in positions.enumerated() {
            let mask = UInt8(1 + g.next() % 255)
            var corrupted = bytes
            corrupted[position] ^= mask
            let p = Int64(position)
            let outcome = readCorrupted(corrupted, at: dir.path("flipped.parquet"))
            if case .otherError(let e) = outcome {
                Issue.record("trial \(trial), byte \(position): not a ParquetError: \(e)")
                continue
            }
            if case .parquetError = outcome { counts.thrown += 1 }
            if pages.contains(where: { $0.body.contains(p) }) {
                counts.body += 1
                if case .read = outcome { Issue.record("trial \(trial): a flipped page byte at \(position) went unnoticed") }
            } else if pages.contains(where: { $0.header.contains(p) }) || p < 4 {
                counts.header += 1
                if case .read(let columns) = outcome {
                    let same = zip(columns, original).allSatisfy { sameColumn($0, $1) }
                    #expect(same, "trial \(trial): a flipped header byte at \(position) changed the values silently")
                }
            } else {
                #expect(p >= footerStart)
                counts.footer += 1
                if case .read(let columns) = outcome { #expect(wellFormed(columns)) }
            }
        }
        #expect(counts.body > 100 && counts.header > 200 && counts.footer > 5, "coverage: \(counts)")
    }

    /// Without page checksums, garbage reaches every decoder: it must throw ParquetError or return
    /// well-formed columns, never trap.
    @Test(arguments: [ParquetCompression.none, .snappy])
    func decodersSurviveGarbage(compression: ParquetCompression) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let (bytes, _) = try sampleFile(dir.path("sample.parquet"), compression: compression, checksums: false)
        var g = SeededGenerator(seed: 31)
        var thrown = 0
        let trials = 600
        for trial in 0..<trials {
            var corrupted = bytes
            for _ in 0..<(1 + Int(g.next() % 4)) {
                let position = Int(g.next() % UInt64(bytes.count))
                corrupted[position] = g.next() % 2 == 0 ? corrupted[position] ^ UInt8(1 + g.next() % 255)
                                                       : UInt8(truncatingIfNeeded: g.next())
            }
            switch readCorrupted(corrupted, at: dir.path("garbage.parquet")) {
            case .parquetError: thrown += 1
            case .read(let columns): #expect(wellFormed(columns), "trial \(trial)")
            case .otherError(let e): Issue.record("trial \(trial): not a ParquetError: \(e)")
            }
        }
        // Some garbage only changes values (no checksums); much of it must still be caught.
        #expect(thrown > trials / 10)
    }

    @Test func notParquetAndUnsupportedInputsThrowClearly() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("text.parquet")
        try Data("hello, this is not parquet at all".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: ParquetError.self) { _ = try ParquetFileReader(path: path) }

        // A codec the reader does not implement: patch the footer's codec of our file to GZIP.
        let (bytes, _) = try sampleFile(dir.path("sample.parquet"), compression: .none)
        let reader = try ParquetFileReader(path: dir.path("sample.parquet"))
        #expect(reader.rowCount == 500)
        var found = false
        var patched = bytes
        // ColumnMetaData field 4 (codec) follows path_in_schema: header 0x15 (delta 1, i32), value 0 (UNCOMPRESSED).
        // Patch the first one after the footer start to 2 (zigzag 4 = GZIP).
        let footerStart = try reader.pageRanges().map(\.body.upperBound).max()!
        for i in Int(footerStart)..<(bytes.count - 9) where bytes[i] == 0x15 && bytes[i + 1] == 0x00 && bytes[i + 2] == 0x16 {
            patched[i + 1] = 0x04
            found = true
            break
        }
        #expect(found)
        try Data(patched).write(to: URL(fileURLWithPath: path))
        do {
            _ = try ParquetFileReader(path: path).read(rowGroup: 0, columns: [0])
            Issue.record("a GZIP chunk was read")
        } catch let e as ParquetError {
            #expect(e.description.contains("codec GZIP is not supported; write the file with zstd, snappy or no compression"),
                    "\(e)")
        }
    }
}
