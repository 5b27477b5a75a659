import Foundation
import Testing
import TesseraCore
@testable import TesseraOffline

@Suite("Files written whole")
struct FileTests {
    /// Sizes around the direct writes' alignment and buffer.
    static let sizes = [0, 1, 4_095, 4_096, 4_097, StreamedFile.chunk - 1, StreamedFile.chunk,
                        StreamedFile.chunk + 4_096 + 3, 2 * StreamedFile.chunk + 17]

    /// Streams `parts` into a new file at `path`, then overwrites its bytes 1 and 2 with `patch`.
    static func stream(_ parts: [[UInt8]], to path: String, patch: [UInt8], directWritesTaken: Int = .max) throws {
        let file = try StreamedFile(creating: path, directWritesTaken: directWritesTaken)
        for part in parts { part.withUnsafeBytes { file.take($0) } }
        #expect(file.count == parts.reduce(0) { $0 + $1.count })
        file.patch(at: 1, patch)
        try file.close()
    }

    /// A new directory in the temporary directory ("tmp") or on tmpfs ("shm", where kernels
    /// before 6.6 refuse direct I/O and the ordinary write is taken); nil without /dev/shm.
    static func directory(_ place: String) throws -> String? {
        let dir: String
        if place == "shm" {
            guard FileManager.default.fileExists(atPath: "/dev/shm") else { return nil }
            dir = "/dev/shm/tessera-files-\(UUID().uuidString)"
        } else {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-files-\(UUID().uuidString)").path
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("a streamed file holds exactly the bytes it was given, in order, with its head patched (direct I/O or not)", arguments: ["tmp", "shm"])
    func parts(_ place: String) throws {
        guard let dir = try Self.directory(place) else { return }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var g = SeededGenerator(seed: 11)
        for (i, size) in Self.sizes.enumerated() {
            // Three parts: a small header, the bulk, a small trailer, none of them aligned.
            let parts: [[UInt8]] = [(0..<(i * 7 + 3)).map { _ in UInt8.random(in: 0...255, using: &g) },
                                    (0..<size).map { _ in UInt8.random(in: 0...255, using: &g) },
                                    (0..<(i + 1)).map { _ in UInt8.random(in: 0...255, using: &g) }]
            let path = "\(dir)/file-\(i)"
            let patch: [UInt8] = [0xA5, 0x5A]
            try Self.stream(parts, to: path, patch: patch)
            var expected = parts.flatMap { $0 }
            expected.replaceSubrange(1..<3, with: patch)
            let read = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(read.count == expected.count, "size \(size)")
            #expect(read == expected, "size \(size)")
        }
    }

    @Test("an output file holds what was written, cut back where it was truncated (direct I/O or not)", arguments: ["tmp", "shm"], [false, true])
    func outputFile(_ place: String, direct: Bool) throws {
        guard let dir = try Self.directory(place) else { return }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var g = SeededGenerator(seed: 13)
        let path = "\(dir)/out"
        // What a file at that path held before is replaced.
        try Data(repeating: 0xEE, count: 3 * OutputFile.stagingBytes).write(to: URL(fileURLWithPath: path))
        let file = try OutputFile(creating: path, direct: direct)
        var expected: [UInt8] = []
        func write(_ n: Int) throws {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
            try file.write(bytes)
            expected += bytes
        }
        func truncate(to size: Int) throws {
            try file.truncate(to: Int64(size))
            expected.removeLast(expected.count - size)
        }
        try write(5)
        try write(OutputFile.stagingBytes - 3)           // past one staging buffer
        try truncate(to: expected.count - 10)            // within what is still staged
        try write(4_097)
        try truncate(to: OutputFile.stagingBytes - 100)  // behind what is on the disk, mid-block
        try write(2 * OutputFile.stagingBytes + 11)
        try truncate(to: 2 * OutputFile.stagingBytes)    // on a block boundary
        try write(1)
        try truncate(to: OutputFile.stagingBytes + 3 * 4_096 + 1)  // far behind, keeping what came before
        try write(777)
        try file.close()
        let read = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(read.count == expected.count)
        #expect(read == expected)
    }

    @Test("a direct write refused part-way leaves the rest written the ordinary way: the file is whole", arguments: [0, 1, 2, 3])
    func refusedPartWay(_ taken: Int) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-files-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var g = SeededGenerator(seed: 12)
        // Three buffers' worth and a bit, written as the second and third buffers, the rest and
        // then the first: the refusal comes before, between or after them.
        let bulk = (0..<(3 * StreamedFile.chunk + 5)).map { _ in UInt8.random(in: 0...255, using: &g) }
        let head: [UInt8] = [1, 2, 3]
        let path = "\(dir)/refused"
        // What a file at that path held before is replaced, not merged.
        try Data(repeating: 0xEE, count: 5 * StreamedFile.chunk).write(to: URL(fileURLWithPath: path))
        try Self.stream([head, bulk], to: path, patch: [7, 8], directWritesTaken: taken)
        let read = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(read.count == head.count + bulk.count)
        #expect(read == [1, 7, 8] + bulk)
    }

    @Test("a write that fails is thrown by close(), and what follows it is dropped")
    func failedWrite() throws {
        let path = "/dev/full"
        guard FileManager.default.fileExists(atPath: path) else { return }
        let file = try StreamedFile(creating: path, directWritesTaken: 0)
        let bulk = [UInt8](repeating: 1, count: StreamedFile.chunk + 1)
        bulk.withUnsafeBytes { file.take($0) }
        bulk.withUnsafeBytes { file.take($0) }
        #expect(throws: FileError.self) { try file.close() }
    }
}
