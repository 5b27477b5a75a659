import Foundation
import TesseraCore
import TesseraOffline
import TesseraTopology

/// The offline log: every emission of a view, per partition, in stream-time order, rolled into
/// Parquet files. A roll writes a temporary file, fsyncs it and renames it into place, so a file
/// is either whole or absent; offsets are committed only after the roll (DESIGN §3, §5).
///
///     DIR/VIEW/partition=P/OFFSET_FIRST-OFFSET_LAST.parquet
///
/// Columns: the join keys, the features, `event_timestamp` and `created_timestamp` (UTC µs),
/// and `_offset`, the input offset whose processing made the row current (recovery trims by it).
public final class OfflineLog: @unchecked Sendable {  // owned by the worker thread
    public let directory: String
    let compression: ParquetCompression
    private var buffers: [Key: Buffer] = [:]
    private let views: [String: FeatureView]

    struct Key: Hashable {
        var view: String
        var partition: Int32
    }

    struct Buffer {
        var columns: [Column]
        var firstOffset: Int64 = -1
        var lastOffset: Int64 = -1
        var rows: Int { columns.first?.count ?? 0 }
    }

    public static let offsetColumn = "_offset"

    public init(directory: String, views: [FeatureView], compression: ParquetCompression = .zstd(level: 1)) throws {
        self.directory = directory
        self.compression = compression
        self.views = Dictionary(uniqueKeysWithValues: views.map { ($0.name, $0) })
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// The Parquet schema of a view's files.
    public static func schema(of view: FeatureView) -> ParquetSchema {
        var fields = view.joinKeys.map { ParquetField(name: $0.name, type: $0.type == .string ? .string : .int64, nullable: false) }
        for f in view.spec.features {
            let type: ParquetType
            switch view.spec.outputType(of: f) {
            case .int64: type = .int64
            case .float64: type = .double
            case .string: type = .string
            case .bool: type = .bool
            }
            fields.append(ParquetField(name: f.name, type: type, nullable: true))
        }
        fields.append(ParquetField(name: "event_timestamp", type: .timestampMicros, nullable: false))
        fields.append(ParquetField(name: "created_timestamp", type: .timestampMicros, nullable: false))
        fields.append(ParquetField(name: offsetColumn, type: .int64, nullable: false))
        return ParquetSchema(fields)
    }

    /// Buffers the emissions of one view and partition. `created` and `offsets` give each row's
    /// created timestamp and input offset.
    func append(view: String, partition: Int32, emissions: EmissionBatch, created: [Micros], offsets: [Int64]) {
        guard let spec = views[view], emissions.count > 0 else { return }
        let key = Key(view: view, partition: partition)
        var buffer = buffers.removeValue(forKey: key) ?? Buffer(columns: OfflineLog.schema(of: spec).fields.map { f in
            switch f.type {
            case .string: return Column(type: .string)
            case .double: return Column(type: .float64)
            case .bool: return Column(type: .bool)
            default: return Column(type: .int64)
            }
        })
        var c = 0
        for k in emissions.keys { buffer.columns[c].append(contentsOf: k); c += 1 }
        for f in emissions.features { buffer.columns[c].append(contentsOf: f); c += 1 }
        buffer.columns[c].ints.append(contentsOf: emissions.eventTimes)
        buffer.columns[c].validity.appendSet(count: emissions.count)
        buffer.columns[c + 1].ints.append(contentsOf: created)
        buffer.columns[c + 1].validity.appendSet(count: emissions.count)
        buffer.columns[c + 2].ints.append(contentsOf: offsets)
        buffer.columns[c + 2].validity.appendSet(count: emissions.count)
        if buffer.firstOffset < 0 { buffer.firstOffset = offsets.first ?? 0 }
        buffer.lastOffset = max(buffer.lastOffset, offsets.max() ?? buffer.lastOffset)
        buffers[key] = buffer
    }

    public var bufferedRows: Int { buffers.values.reduce(0) { $0 + $1.rows } }

    /// Writes every buffered (view, partition) to its own file, optionally only some partitions.
    /// On failure nothing buffered is lost (the failed buffers stay and are retried).
    @discardableResult
    func roll(partitions: Set<Int32>? = nil) throws -> Int {
        var rows = 0
        for (key, buffer) in buffers where buffer.rows > 0 && (partitions?.contains(key.partition) ?? true) {
            try write(key, buffer)
            rows += buffer.rows
            buffers[key] = nil
        }
        return rows
    }

    /// Drops what is buffered for partitions that are no longer ours (after a failed revoke).
    func discard(partitions: Set<Int32>) {
        for key in buffers.keys where partitions.contains(key.partition) { buffers[key] = nil }
    }

    func directory(view: String, partition: Int32) -> String {
        "\(directory)/\(view)/partition=\(partition)"
    }

    private func write(_ key: Key, _ buffer: Buffer) throws {
        guard let view = views[key.view] else { return }
        let dir = directory(view: key.view, partition: key.partition)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let name = String(format: "%020lld-%020lld.parquet", buffer.firstOffset, buffer.lastOffset)
        let temporary = "\(dir)/.\(name).tmp"
        let writer = try ParquetFileWriter(path: temporary, schema: OfflineLog.schema(of: view), compression: compression,
                                           metadata: [("tessera.view", key.view), ("tessera.partition", String(key.partition)),
                                                      ("tessera.view_fingerprint", view.spec.fingerprint)])
        do {
            try writer.write(rowGroup: buffer.columns)
            try writer.close()
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        guard rename(temporary, "\(dir)/\(name)") == 0 else {
            throw ParquetError("cannot rename \(temporary): \(String(cString: strerror(errno)))")
        }
        let fd = open(dir, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    /// Every Parquet file of a view, in offset order per partition.
    public static func files(directory: String, view: String) -> [String] {
        let base = "\(directory)/\(view)"
        let fm = FileManager.default
        let partitions = ((try? fm.contentsOfDirectory(atPath: base)) ?? []).filter { $0.hasPrefix("partition=") }.sorted()
        return partitions.flatMap { p in
            ((try? fm.contentsOfDirectory(atPath: "\(base)/\(p)")) ?? []).filter { $0.hasSuffix(".parquet") && !$0.hasPrefix(".") }
                .sorted().map { "\(base)/\(p)/\($0)" }
        }
    }
}
