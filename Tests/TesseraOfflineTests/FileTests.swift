import Foundation
import Testing
import TesseraCore
@testable import TesseraOffline

@Suite("Files written whole")
struct FileTests {
    /// Sizes around the direct writes' alignment and buffer.
    static let sizes = [0, 1, 4_095, 4_096, 4_097, OutputFile.directChunk - 1, OutputFile.directChunk,
                        OutputFile.directChunk + 4_096 + 3, 2 * OutputFile.directChunk + 17]

    @Test("a file written from parts holds exactly their bytes, in order (direct I/O or not)", arguments: ["tmp", "shm"])
    func parts(_ place: String) throws {
        let dir: String
        if place == "shm" {
            // tmpfs: where the kernel refuses direct I/O, the ordinary write is taken.
            guard FileManager.default.fileExists(atPath: "/dev/shm") else { return }
            dir = "/dev/shm/tessera-files-\(UUID().uuidString)"
        } else {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-files-\(UUID().uuidString)").path
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var g = SeededGenerator(seed: 11)
        for (i, size) in Self.sizes.enumerated() {
            // Three parts: a small header, the bulk, a small trailer, none of them aligned.
            let parts: [[UInt8]] = [(0..<(i * 7 + 3)).map { _ in UInt8.random(in: 0...255, using: &g) },
                                    (0..<size).map { _ in UInt8.random(in: 0...255, using: &g) },
                                    (0..<(i + 1)).map { _ in UInt8.random(in: 0...255, using: &g) }]
            let path = "\(dir)/file-\(i)"
            try parts[0].withUnsafeBytes { a in
                try parts[1].withUnsafeBytes { b in
                    try parts[2].withUnsafeBytes { c in try OutputFile.write(path, parts: [a, b, c]) }
                }
            }
            let read = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(read.count == parts.reduce(0) { $0 + $1.count }, "size \(size)")
            #expect(read == parts.flatMap { $0 }, "size \(size)")
        }
    }

    @Test("a direct write refused part-way leaves the file written the ordinary way, whole", arguments: [0, 1, 2])
    func refusedPartWay(_ taken: Int) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-files-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var g = SeededGenerator(seed: 12)
        // Three buffers' worth and a bit: the refusal comes before, between or after the direct
        // writes of the first buffers, and the file already holds what they wrote.
        let bulk = (0..<(3 * OutputFile.directChunk + 5)).map { _ in UInt8.random(in: 0...255, using: &g) }
        let head: [UInt8] = [1, 2, 3]
        let path = "\(dir)/refused"
        // What a file at that path held before is replaced, not merged.
        try Data(repeating: 0xEE, count: 5 * OutputFile.directChunk).write(to: URL(fileURLWithPath: path))
        try head.withUnsafeBytes { a in
            try bulk.withUnsafeBytes { b in try OutputFile.write(path, parts: [a, b], directWritesTaken: taken) }
        }
        let read = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(read.count == head.count + bulk.count)
        #expect(read == head + bulk)
    }
}
