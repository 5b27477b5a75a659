import Foundation
import TesseraCore
import TesseraKafka

/// Partition state saved where every worker of the group can read it (a shared directory):
/// the aggregation state, the offset of the next input record, and where each view's offline
/// log continues — written atomically (temporary file, fsync, rename, fsync of the directory).
///
///     STATE_DIR/GROUP/TOPIC/PARTITION.state
public struct CheckpointStore: Sendable {
    let directory: String

    /// Where each view's offline log of a partition stands in the group's checkpoint: files with a
    /// smaller sequence number survive every recovery, later ones may be replaced. Empty when the
    /// partition has no checkpoint.
    public static func checkpointedSequences(stateDirectory: String, group: String, topic: String,
                                             partition: Int32) throws -> [String: Int64] {
        let store = CheckpointStore(directory: "\(stateDirectory)/\(group)")
        return try store.load(TopicPartition(topic, partition))?.nextSequences ?? [:]
    }

    struct Checkpoint {
        var nextOffset: Int64
        var lastCreated: Micros
        /// The sequence number of each view's next offline file for this partition.
        var nextSequences: [String: Int64]
        var state: [UInt8]
    }

    func path(_ tp: TopicPartition) -> String { "\(directory)/\(tp.topic)/\(tp.partition).state" }

    func save(_ tp: TopicPartition, _ checkpoint: Checkpoint) throws {
        let dir = "\(directory)/\(tp.topic)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var w = ByteWriter()
        w.write("tessera-checkpoint")
        w.write(UInt32(2))
        w.write(checkpoint.nextOffset)
        w.write(checkpoint.lastCreated)
        w.write(UInt64(checkpoint.nextSequences.count))
        for (view, sequence) in checkpoint.nextSequences.sorted(by: { $0.key < $1.key }) {
            w.write(view)
            w.write(sequence)
        }
        w.write(array: checkpoint.state)
        let final = path(tp)
        let temporary = final + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(w.bytes)) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: temporary])
        }
        let fd = open(temporary, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
        guard rename(temporary, final) == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: final]) }
        let dfd = open(dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    func load(_ tp: TopicPartition) throws -> Checkpoint? {
        guard let data = FileManager.default.contents(atPath: path(tp)) else { return nil }
        var r = ByteReader(Array(data))
        try r.expect("tessera-checkpoint")
        guard try r.read(UInt32.self) == 2 else { throw StateFormatError(description: "\(path(tp)): unknown checkpoint version") }
        let next = try r.read(Int64.self)
        let created = try r.read(Int64.self)
        var sequences: [String: Int64] = [:]
        for _ in 0..<(try r.count(limit: 1 << 16)) {
            let view = try r.read(String.self)
            sequences[view] = try r.read(Int64.self)
        }
        let state: [UInt8] = try r.readArray()
        return Checkpoint(nextOffset: next, lastCreated: created, nextSequences: sequences, state: state)
    }
}
