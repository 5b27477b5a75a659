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
        /// The partition's `serialized()` state; when `sealed` is false, without its checksum
        /// (`save` appends it: the hash is computed where the file is written).
        var state: [UInt8]
        var sealed = true
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
        // `write(array:)`'s framing, with the state written from where it lies (it can be large).
        let trailer = checkpoint.sealed ? [] : PartitionAggregator.seal(checkpoint.state)
        w.write(UInt64(checkpoint.state.count + trailer.count))
        let final = path(tp)
        let temporary = final + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CheckpointWriteError(path: temporary, errno: errno) }
        do {
            try Self.write(fd, w.bytes, path: temporary)
            try Self.write(fd, checkpoint.state, path: temporary)
            try Self.write(fd, trailer, path: temporary)
            guard fsync(fd) == 0 else { throw CheckpointWriteError(path: temporary, errno: errno) }
            close(fd)
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        guard rename(temporary, final) == 0 else { throw CheckpointWriteError(path: final, errno: errno) }
        let dfd = open(dir, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    private static func write(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw CheckpointWriteError(path: path, errno: errno) }
                done += n
            }
        }
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

/// A checkpoint file that could not be written (disk full, directory gone, …).
struct CheckpointWriteError: Error, CustomStringConvertible {
    var path: String
    var errno: Int32
    var description: String { "cannot write \(path): \(String(cString: strerror(errno)))" }
}
