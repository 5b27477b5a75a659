import Logging

/// One synchronous Redis connection, used by one thread at a time. A whole pipeline is written
/// at once and its replies read back; a connection failure drops the connection and throws a
/// retriable `RedisError`, and the next call reconnects (the caller decides when, with backoff).
public final class RedisConnection {
    public let endpoint: RedisEndpoint
    private var context: HiredisContext?
    private let timeoutMs: Int
    private let logger: Logger

    public init(endpoint: RedisEndpoint, timeoutMs: Int = 2_000, logger: Logger) {
        self.endpoint = endpoint
        self.timeoutMs = timeoutMs
        self.logger = logger
    }

    public var isConnected: Bool { context != nil }

    public func disconnect() { context = nil }

    /// Connects (and authenticates, and selects the database) if not connected.
    public func connect() throws(RedisError) {
        guard context == nil else { return }
        context = try HiredisContext(host: endpoint.host, port: endpoint.port, timeoutMs: timeoutMs)
        var setup = RESPBuffer()
        if let password = endpoint.password {
            if let user = endpoint.user { setup.command(["AUTH", user, password]) } else { setup.command(["AUTH", password]) }
        } else {
            // A server that requires a password accepts the connection, then refuses every command
            // (or drops the connection on a large pipeline, which would look like an outage): ask
            // now, so that the error says what is missing.
            setup.command(["PING"])
        }
        if endpoint.database != 0 { setup.command(["SELECT", String(endpoint.database)]) }
        let replies = try send(setup)
        if let failure = replies.first(where: { if case .error = $0 { return true } else { return false } }), case .error(let message) = failure {
            disconnect()
            // Redis's own words, except about authentication: never more than "it failed".
            let reason = message.hasPrefix("NOAUTH") ? "it requires a password; set TESSERA_REDIS_PASSWORD or TESSERA_REDIS_PASSWORD_FILE"
                : message.hasPrefix("WRONGPASS") || message.uppercased().contains("AUTH") ? "authentication failed" : message
            throw RedisError(message: "Redis refused the connection setup: \(reason)", isRetriable: false)
        }
    }

    /// Sends a pipeline and reads one reply per command. Connection failures disconnect and throw
    /// a retriable error; Redis error replies are returned as `.error`.
    public func send(_ pipeline: RESPBuffer) throws(RedisError) -> [RedisReply] {
        let c = try connected()
        guard c.append(pipeline.bytes) else { throw fail(c, "write") }
        var replies: [RedisReply] = []
        replies.reserveCapacity(pipeline.commands)
        for _ in 0..<pipeline.commands {
            guard case .reply(let reply) = c.readReply() else { throw fail(c, "read") }
            replies.append(reply)
        }
        return replies
    }

    /// Sends a pipeline whose replies only need checking: returns the number of error replies and
    /// the first error message.
    public func sendChecked(_ pipeline: RESPBuffer) throws(RedisError) -> (errors: Int, first: String?) {
        try exchange(pipeline) { _ in }
    }

    /// `sendChecked`, also giving each reply's integer value in `integers` (-1 where the reply
    /// is not an integer), one per command.
    public func sendChecked(_ pipeline: RESPBuffer, integers: inout [Int64]) throws(RedisError) -> (errors: Int, first: String?) {
        integers.removeAll(keepingCapacity: true)
        return try exchange(pipeline) { integers.append($0) }
    }

    private func exchange(_ pipeline: RESPBuffer, _ integer: (Int64) -> Void) throws(RedisError) -> (errors: Int, first: String?) {
        try queue(pipeline)
        return try collect(pipeline.commands, integer)
    }

    /// Sends a pipeline without waiting for its replies (`collect` reads them), so a caller can
    /// send the next pipeline before reading the replies of the previous one and Redis works on
    /// one while the caller reads the other. Replies come in sending order.
    public func queue(_ pipeline: RESPBuffer) throws(RedisError) {
        let c = try connected()
        guard c.append(pipeline.bytes) else { throw fail(c, "write") }
    }

    /// Reads the replies of the `commands` oldest commands queued (sending what is queued first)
    /// as `sendChecked(_:integers:)` does.
    public func collectChecked(_ commands: Int, integers: inout [Int64]) throws(RedisError) -> (errors: Int, first: String?) {
        integers.removeAll(keepingCapacity: true)
        return try collect(commands) { integers.append($0) }
    }

    private func collect(_ commands: Int, _ integer: (Int64) -> Void) throws(RedisError) -> (errors: Int, first: String?) {
        guard let c = context else { throw RedisError(message: "not connected", isRetriable: true) }
        var errors = 0
        var first: String?
        for _ in 0..<commands {
            let reply = c.checkReply()
            if reply.failed { throw fail(c, "read") }
            integer(reply.integer)
            if let error = reply.error {
                errors += 1
                if first == nil { first = error }
            }
        }
        return (errors, first)
    }

    public func command(_ arguments: [String]) throws(RedisError) -> RedisReply {
        var p = RESPBuffer()
        p.command(arguments)
        return try send(p)[0]
    }

    private func connected() throws(RedisError) -> HiredisContext {
        try connect()
        guard let context else { throw RedisError(message: "not connected", isRetriable: true) }
        return context
    }

    private func fail(_ c: HiredisContext, _ what: String) -> RedisError {
        let (code, text) = c.error
        let message = text == "Resource temporarily unavailable" ? "no answer within \(timeoutMs) ms" : text
        disconnect()
        return RedisError(message: "Redis \(what) failed: \(message.isEmpty ? "connection lost" : message)", isRetriable: true, hiredisCode: code)
    }
}
