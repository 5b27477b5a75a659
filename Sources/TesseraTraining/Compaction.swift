import Foundation
import TesseraCore
import TesseraLog
import TesseraOffline
import TesseraTopology

/// Merges the small files of each (view, partition) of an offline log into larger ones, keeping
/// every row once and the partition's order.
///
/// Only files a worker's checkpoint covers are merged (sequence below the checkpoint's next
/// sequence for the view): recovery replaces the files after a checkpoint, and a merged file must
/// never hold rows that a replay writes again. The worker keeps rolling and checkpointing
/// meanwhile; the files it may still replace are never touched.
///
/// Procedure, per partition, under an exclusive lock on `VIEW/.compact.lock` (one compaction per
/// view at a time):
///
/// 1. Finish an interrupted compaction: remove files another file supersedes (see
///    `OfflineLog.files`) and leftover `.compact-*.tmp` files.
/// 2. Runs of consecutive checkpointed files (same schema and view fingerprint) with fewer than
///    `targetRows` rows in total are merged: their rows are copied in order to
///    `.compact-NAME.tmp`, which is closed (fsync) and renamed to `NAME`, numbered like the first
///    input and named by the first input's first offset and the last input's last offset; the
///    directory is fsynced.
/// 3. Only then are the inputs removed, and the directory fsynced again.
///
/// A crash before the rename leaves the inputs and a hidden temporary file; after it, the merged
/// file and some inputs, which it supersedes. Either way `OfflineLog.files` (and so the
/// point-in-time join and `tessera inspect`) reads every row exactly once, and the next compaction
/// removes what is left. A bare `*.parquet` glob sees the inputs twice between the rename and the
/// removals, or after a crash there until the next compaction.
public struct Compaction: Sendable {
    /// What happened to one partition.
    public struct Report: Sendable {
        public var view: String
        public var partition: String
        public var filesBefore: Int
        public var filesAfter: Int
        public var rows: Int
    }

    /// For a view and partition, the sequence number below which its files are covered by a
    /// checkpoint (0: none are).
    public typealias Checkpointed = @Sendable (_ view: FeatureView, _ partition: Int32) throws -> Int64

    public let directory: String
    /// Merged files hold at most this many rows (default 1 000 000); larger files are left alone.
    public var targetRows: Int
    let checkpointed: Checkpointed

    public init(directory: String, targetRows: Int = 1_000_000, checkpointed: @escaping Checkpointed) {
        self.directory = directory
        self.targetRows = targetRows
        self.checkpointed = checkpointed
    }

    /// The checkpoints of the workers of `group` (`tessera run --state-dir --group`); `topics`
    /// names each view's input topic.
    public static func checkpoints(stateDirectory: String, group: String, topics: [String: String]) -> Checkpointed {
        { view, partition in
            guard let topic = topics[view.name] else { return 0 }
            return try CheckpointStore.checkpointedSequences(stateDirectory: stateDirectory, group: group, topic: topic,
                                                            partition: partition)[view.name] ?? 0
        }
    }

    /// Compacts every partition of `views` that has files.
    public func run(views: [FeatureView]) throws -> [Report] {
        guard targetRows > 1 else { throw HistoricalError("the target row count must be at least 2") }
        var reports: [Report] = []
        for view in views {
            let base = "\(directory)/\(view.name)"
            guard FileManager.default.fileExists(atPath: base) else { continue }
            let lock = open("\(base)/.compact.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard lock >= 0 else { throw HistoricalError("cannot open \(base)/.compact.lock: \(String(cString: strerror(errno)))") }
            defer { close(lock) }
            guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
                throw HistoricalError("another compaction of \(view.name) is running (it holds \(base)/.compact.lock)")
            }
            let partitions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [])
                .compactMap { name in name.hasPrefix("partition=") ? Int32(name.dropFirst("partition=".count)).map { (name, $0) } : nil }
                .sorted { $0.1 < $1.1 }
            for (name, partition) in partitions {
                let limit: Int64
                do { limit = try checkpointed(view, partition) } catch {
                    throw HistoricalError("\(view.name)/\(name): cannot read its checkpoint: \(error)")
                }
                reports.append(try compact(view: view.name, partition: name, directory: "\(base)/\(name)", below: limit))
            }
        }
        return reports
    }

    private func compact(view: String, partition: String, directory dir: String, below limit: Int64) throws -> Report {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        for name in names where name.hasPrefix(".compact-") && name.hasSuffix(".tmp") {
            try remove("\(dir)/\(name)")
        }
        let logged = names.filter { OfflineLog.parse(fileName: $0) != nil }
        let current = OfflineLog.current(logged)
        let kept = Set(current)
        for name in logged where !kept.contains(name) { try remove("\(dir)/\(name)") }
        if logged.count > current.count { AtomicFile.syncDirectory(dir) }

        var rows = 0
        var candidates: [(name: String, sequence: Int64, first: Int64, last: Int64, reader: ParquetFileReader)] = []
        for name in current {
            let reader: ParquetFileReader
            do { reader = try ParquetFileReader(path: "\(dir)/\(name)") } catch { throw HistoricalError("\(error)") }
            rows += reader.rowCount
            let parsed = OfflineLog.parse(fileName: name)!
            if parsed.sequence < limit { candidates.append((name, parsed.sequence, parsed.first, parsed.last, reader)) }
        }
        var filesAfter = current.count
        var run: [Int] = []
        var runRows = 0
        func flush() throws {
            defer { run.removeAll(); runRows = 0 }
            guard run.count > 1 else { return }
            let inputs = run.map { candidates[$0] }
            let name = OfflineLog.fileName(sequence: inputs[0].sequence, first: inputs[0].first, last: inputs[inputs.count - 1].last)
            try merge(inputs.map { (path: "\(dir)/\($0.name)", reader: $0.reader) }, into: name, in: dir)
            filesAfter -= run.count - 1
        }
        for (i, candidate) in candidates.enumerated() {
            let count = candidate.reader.rowCount
            if let previous = run.last, !Compaction.compatible(candidates[previous].reader, candidate.reader) { try flush() }
            if runRows + count > targetRows { try flush() }
            if count < targetRows {
                run.append(i)
                runRows += count
            } else {
                try flush()
            }
        }
        try flush()
        return Report(view: view, partition: partition, filesBefore: current.count, filesAfter: filesAfter, rows: rows)
    }

    /// Whether two files can share a merged file: same schema and same view fingerprint.
    static func compatible(_ a: ParquetFileReader, _ b: ParquetFileReader) -> Bool {
        let fingerprint = { (r: ParquetFileReader) in r.metadata.first { $0.0 == "tessera.view_fingerprint" }?.1 }
        return a.schema == b.schema && fingerprint(a) == fingerprint(b)
    }

    private func merge(_ inputs: [(path: String, reader: ParquetFileReader)], into name: String, in dir: String) throws {
        let expected = inputs.reduce(0) { $0 + $1.reader.rowCount }
        do {
            try AtomicFile.replace("\(dir)/\(name)", temporary: "\(dir)/.compact-\(name).tmp") { temporary in
                let first = inputs[0].reader
                let writer = try ParquetFileWriter(path: temporary, schema: first.schema, compression: .zstd(level: 1),
                                                   metadata: first.metadata.filter { $0.0.hasPrefix("tessera.") })
                var buffer: [Column] = []
                for (_, reader) in inputs {
                    for g in reader.rowGroups.indices {
                        let columns = try reader.read(rowGroup: g)
                        if buffer.isEmpty {
                            buffer = columns
                        } else {
                            for c in buffer.indices { buffer[c].append(contentsOf: columns[c]) }
                        }
                        if (buffer.first?.count ?? 0) >= Frame.rowGroupRows {
                            try writer.write(rowGroup: buffer)
                            buffer = []
                        }
                    }
                }
                if !buffer.isEmpty { try writer.write(rowGroup: buffer) }
                try writer.close()
                guard writer.rowCount == expected else {
                    throw HistoricalError("\(temporary): wrote \(writer.rowCount) rows, the inputs hold \(expected)")
                }
            }
        } catch let e as ParquetError {
            throw HistoricalError("\(e)")
        } catch let e as FileError {
            throw HistoricalError("\(e)")
        }
        for (path, _) in inputs { try remove(path) }
        AtomicFile.syncDirectory(dir)
    }

    private func remove(_ path: String) throws {
        guard unlink(path) == 0 || errno == ENOENT else {
            throw HistoricalError("cannot remove \(path): \(String(cString: strerror(errno)))")
        }
    }
}
