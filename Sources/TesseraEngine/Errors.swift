import TesseraCore
import TesseraKafka
import TesseraRedis

/// An error of the worker or of a backfill: what went wrong, its code, and what to do next.
/// None of these is retriable: a retriable failure (`RedisError`, `KafkaError`, `StorageError`)
/// is retried with backoff where it happens and becomes an `EngineError` only when a stop is
/// requested meanwhile.
public struct EngineError: TesseraError {
    public var code: ErrorCode
    public var message: String
    public var remedy: String?
    public var isRetriable: Bool { false }
    public var description: String { message }

    public init(_ code: ErrorCode, _ message: String, remedy: String? = nil) {
        self.code = code
        self.message = message
        self.remedy = remedy
    }
}

extension ErrorCode {
    /// A setting is missing or out of range (`WorkerConfiguration`, `BackfillOptions`).
    public static let configuration = ErrorCode("worker.configuration")
    /// The topologies cannot run together (no view, one topic declared twice differently).
    public static let topology = ErrorCode("worker.topology")
    /// A partition's checkpoint cannot be used (corrupt, written by another format, or its views'
    /// features changed): resuming would count events twice or lose them.
    public static let checkpointUnusable = ErrorCode("checkpoint.unusable")
    /// A partition has no checkpoint although its group committed offsets for it (the state
    /// directory was lost or is not the group's): starting empty from there would lose its history.
    public static let checkpointMissing = ErrorCode("checkpoint.missing")
    /// A partition yielded only bad events under `--bad-partition stop`.
    public static let badPartition = ErrorCode("input.bad_partition")
    /// The backfill's input cannot be read or placed.
    public static let backfillInput = ErrorCode("backfill.input")
    /// An event the worker's lifecycle does not allow in its state (a defect: report it).
    public static let lifecycle = ErrorCode("worker.lifecycle")
    /// Writing the offline log, a checkpoint or dead letters failed (retried).
    public static let storage = ErrorCode("storage.write")
}

/// Writing the offline log, a checkpoint or dead letters failed (disk full, directory not
/// writable): retried until the operator fixes it.
public struct StorageError: TesseraError {
    public var description: String
    public var code: ErrorCode { .storage }
    public var isRetriable: Bool { true }
    public var remedy: String? { "Retried with backoff; free disk space or fix the directory's permissions" }
    public init(_ description: String) { self.description = description }
}
