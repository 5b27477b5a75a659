/// What every error Tessera reports to its operator carries: a stable code (to alert on and to
/// look up in docs/operations.md), whether retrying can succeed (the worker retries those with
/// backoff instead of stopping), and what to do next.
public protocol TesseraError: Error, CustomStringConvertible, Sendable {
    var code: ErrorCode { get }
    /// Whether the failure may go away by itself (a server down, a full disk): retried, not fatal.
    var isRetriable: Bool { get }
    /// What the operator does next, when there is something to do.
    var remedy: String? { get }
}

extension TesseraError {
    /// The description followed by the remedy: what a log line or the CLI prints.
    public var report: String { remedy.map { "\(description). \($0)" } ?? description }
}

/// A stable error code, `area.problem` (`kafka.transient`, `checkpoint.unusable`, …). Each
/// module declares its own in an extension.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
}

extension ErrorCode {
    /// A stop was requested while the worker waited on something (the next run resumes from the
    /// last checkpoint).
    public static let stopped = ErrorCode("worker.stopped")
}
