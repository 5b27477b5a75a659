import Foundation
import Testing
import TesseraCore
import TesseraLog

/// Checkpoint files sealed end to end: a checkpoint whose header (offsets, created time, offline
/// sequences) or state was altered is refused, never resumed from.
@Suite("Checkpoint files")
struct CheckpointTests {
    static let schema = Schema([("user", .int64), ("amount", .float64)])
    static let spec = try! ViewSpec(name: "v", schema: schema, keyFields: [0], features: [
        FeatureSpec(name: "total", aggregate: .sum, field: 1, window: .lifetime),
    ])

    static func state(users: Int64) -> PartitionAggregator {
        var core = PartitionAggregator(views: [spec], allowedLateness: 0)
        var b = ColumnBatch(schema: schema.types)
        for u in 0..<users { b.append(time: 1_000_000 + u, [.int(u), .double(Double(u))]) }
        core.ingest(b)
        return core
    }

    static let position = CheckpointStore.Position(nextOffset: 1_000, lastCreated: 5_000, nextSequences: ["v": 1])

    @Test("a checkpoint of an earlier state format is refused with the reason and the way forward, not half read")
    func earlierStateFormat() throws {
        let store = CheckpointStore(stateDirectory: temporaryDirectory("checkpoint"), group: "g")
        try FileManager.default.createDirectory(atPath: store.directory + "/orders", withIntermediateDirectories: true)
        let bytes = Data(base64Encoded: earlierCheckpointBase64, options: .ignoreUnknownCharacters)!
        try bytes.write(to: URL(fileURLWithPath: store.path(topic: "orders", partition: 1)))
        // The file's own seal and header still hold; the state in it is of format 3.
        let saved = try #require(try store.load(topic: "orders", partition: 1))
        let view = try growth().views[0]
        #expect {
            _ = try PartitionAggregator(views: [view.spec], allowedLateness: 0, restoring: saved.state)
        } throws: { error in
            let text = (error as? StateFormatError)?.description ?? ""
            return text.contains("state format 3 is not supported (this build reads 4)") && text.contains("replay the topic")
        }
    }

    /// The checkpoint's bytes with `change` applied, loaded back.
    static func tampered(_ change: (inout [UInt8]) -> Void) throws -> CheckpointStore.Saved? {
        let store = CheckpointStore(stateDirectory: temporaryDirectory("checkpoint"), group: "g")
        try store.save(topic: "t", partition: 0, position: position, state: state(users: 50))
        let path = store.path(topic: "t", partition: 0)
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        change(&bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return try store.load(topic: "t", partition: 0)
    }

    /// Where the header's fields lie: magic (length-prefixed), version, next offset, last created,
    /// the sequence count, then the view's name (length-prefixed) and its sequence.
    static let nextOffset = 8 + "tessera-checkpoint".utf8.count + 4
    static let lastCreated = nextOffset + 8
    static let sequence = lastCreated + 8 + 8 + 8 + 1

    static func add(_ delta: Int64, at offset: Int, _ bytes: inout [UInt8]) {
        var value: Int64 = 0
        withUnsafeMutableBytes(of: &value) { $0.copyBytes(from: bytes[offset..<offset + 8]) }
        value += delta
        withUnsafeBytes(of: value) { bytes.replaceSubrange(offset..<offset + 8, with: $0) }
    }

    @Test("an untouched checkpoint loads as it was saved")
    func roundTrip() throws {
        let saved = try #require(try Self.tampered { _ in })
        #expect(saved.nextOffset == 1_000 && saved.position.lastCreated == 5_000 && saved.nextSequences == ["v": 1])
        let restored = try PartitionAggregator(views: [Self.spec], allowedLateness: 0, restoring: saved.state)
        #expect(restored.serialized() == Self.state(users: 50).serialized())
    }

    @Test("an altered header is refused: next offset ±100, last created, offline sequence 1 → 0",
          arguments: [[nextOffset, -100], [nextOffset, 100], [lastCreated, 1], [sequence, -1]] as [[Int]])
    func header(_ change: [Int]) throws {
        let (field, delta) = (change[0], Int64(change[1]))
        #expect(throws: StateFormatError.self) { try Self.tampered { Self.add(delta, at: field, &$0) } }
        do { _ = try Self.tampered { Self.add(delta, at: field, &$0) } } catch {
            #expect("\(error)".contains("header checksum does not match") && "\(error)".contains("--reset-state"))
        }
    }

    @Test("an altered state byte is refused when the state is restored")
    func state() throws {
        let saved = try #require(try Self.tampered { $0[$0.count - 100] ^= 0x10 })
        #expect(throws: StateFormatError.self) {
            try PartitionAggregator(views: [Self.spec], allowedLateness: 0, restoring: saved.state)
        }
    }

    @Test("a header spliced onto another checkpoint's state is refused")
    func spliced() throws {
        let other = CheckpointStore(stateDirectory: temporaryDirectory("checkpoint"), group: "g")
        try other.save(topic: "t", partition: 0, position: Self.position, state: Self.state(users: 51))
        let otherBytes = [UInt8](FileManager.default.contents(atPath: other.path(topic: "t", partition: 0))!)
        #expect(throws: StateFormatError.self) {
            try Self.tampered { bytes in
                // Same header length (same view names); the state of the other checkpoint.
                let header = Self.sequence + 8 + 4
                bytes = Array(bytes[..<header]) + Array(otherBytes[header...])
            }
        }
    }
}
