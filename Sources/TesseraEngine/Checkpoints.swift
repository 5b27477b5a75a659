import Foundation
import TesseraCore
import TesseraKafka

/// Partition state saved where every worker of the group can read it (a shared directory):
/// the aggregation state and the offset of the next input record, written atomically.
///
///     STATE_DIR/GROUP/TOPIC/PARTITION.state
struct CheckpointStore: Sendable {
    let directory: String

    struct Checkpoint {
        var nextOffset: Int64
        var lastCreated: Micros
        var state: [UInt8]
    }

    func path(_ tp: TopicPartition) -> String { "\(directory)/\(tp.topic)/\(tp.partition).state" }

    func save(_ tp: TopicPartition, _ checkpoint: Checkpoint) throws {
        let dir = "\(directory)/\(tp.topic)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var w = ByteWriter()
        w.write("tessera-checkpoint")
        w.write(UInt32(1))
        w.write(checkpoint.nextOffset)
        w.write(checkpoint.lastCreated)
        w.write(array: checkpoint.state)
        let final = path(tp)
        let temporary = final + ".tmp"
        let data = Data(w.bytes)
        guard FileManager.default.createFile(atPath: temporary, contents: data) else {
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
        guard try r.read(UInt32.self) == 1 else { throw StateFormatError(description: "\(path(tp)): unknown checkpoint version") }
        let next = try r.read(Int64.self)
        let created = try r.read(Int64.self)
        let state: [UInt8] = try r.readArray()
        return Checkpoint(nextOffset: next, lastCreated: created, state: state)
    }
}
