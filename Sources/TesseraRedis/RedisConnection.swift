import CHiredis
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Where Redis is: `redis://[user@]HOST:PORT[/DB]`. The password never comes from the URL (argv
/// is visible to every user of the machine): it is read from `TESSERA_REDIS_PASSWORD` or from the
/// file named by `TESSERA_REDIS_PASSWORD_FILE`.
public struct RedisEndpoint: Sendable, Hashable, CustomStringConvertible, CustomReflectable {
    public var host: String
    public var port: Int32
    public var database: Int
    public var user: String?
    /// Never printed.
    public var password: String?

    public init(host: String, port: Int32, database: Int = 0, user: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.database = database
        self.user = user
        self.password = password
    }

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(url: String, environment: [String: String]) throws {
        // Errors describe what is wrong without quoting the URL: whatever is misplaced in it may be a
        // password (`redis://HOST:PASSWORD`, `?password=…`, a password given as the URL).
        guard url.hasPrefix("redis://") else { throw ParseError(description: "the Redis URL must look like redis://[USER@]HOST:PORT[/DB]") }
        var rest = Substring(url.dropFirst("redis://".count))
        if let at = rest.firstIndex(of: "@") {
            let credentials = rest[..<at]
            if credentials.contains(":") {
                throw ParseError(description: "do not put the Redis password in the URL; set TESSERA_REDIS_PASSWORD or TESSERA_REDIS_PASSWORD_FILE")
            }
            user = credentials.isEmpty ? nil : String(credentials)
            rest = rest[rest.index(after: at)...]
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            guard db.isEmpty || Int(db) != nil else { throw ParseError(description: "the database in the Redis URL must be a number (redis://HOST:PORT/DB)") }
            database = Int(db) ?? 0
            rest = rest[..<slash]
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let first = parts.first, !first.isEmpty else { throw ParseError(description: "the Redis URL has no host (redis://HOST:PORT)") }
        host = String(first)
        if parts.count == 2 {
            guard let p = Int32(parts[1]), p > 0 else { throw ParseError(description: "the port in the Redis URL must be a number (redis://HOST:PORT)") }
            port = p
        } else {
            port = 6379
        }
        self.database = database
        if let p = environment["TESSERA_REDIS_PASSWORD"], !p.isEmpty {
            password = p
        } else if let file = environment["TESSERA_REDIS_PASSWORD_FILE"] {
            guard let fd = fopen(file, "r") else { throw ParseError(description: "cannot read TESSERA_REDIS_PASSWORD_FILE \(file)") }
            defer { fclose(fd) }
            var buffer = [CChar](repeating: 0, count: 4096)
            let n = fread(&buffer, 1, buffer.count - 1, fd)
            password = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self).trimmingSuffix { $0 == "\n" || $0 == "\r" }
        }
    }

    public var description: String { "redis://\(user.map { "\($0)@" } ?? "")\(host):\(port)/\(database)" }

    /// What `dump` and debuggers show: everything but the password.
    public var customMirror: Mirror {
        Mirror(self, children: ["host": host, "port": port, "database": database, "user": user as Any, "password": password == nil ? "nil" : "***"],
               displayStyle: .struct)
    }
}

extension String {
    func trimmingSuffix(while predicate: (Character) -> Bool) -> String {
        var s = self
        while let last = s.last, predicate(last) { s.removeLast() }
        return s
    }
}

/// A reply from Redis.
public enum RedisReply: Sendable, Equatable {
    case string([UInt8])
    case status(String)
    case integer(Int64)
    case array([RedisReply])
    case null
    case error(String)

    public var text: String? {
        switch self {
        case .string(let b): return String(decoding: b, as: UTF8.self)
        case .status(let s): return s
        case .integer(let i): return String(i)
        default: return nil
        }
    }
}

public struct RedisError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// Connection-level failures are retriable; a command Redis refused is not.
    public var isRetriable: Bool
    public var description: String { message }
    public init(message: String, isRetriable: Bool) {
        self.message = message
        self.isRetriable = isRetriable
    }
}

/// Builds a pipeline of commands in RESP, ready to send in one write.
public struct RESPBuffer: Sendable {
    public private(set) var bytes: [UInt8] = []
    public private(set) var commands = 0

    public init() {}

    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        commands = 0
    }

    /// Starts a command of `arguments` arguments (the name included).
    public mutating func begin(arguments: Int) {
        bytes.append(UInt8(ascii: "*"))
        appendDecimal(Int64(arguments))
        bytes.append(contentsOf: [0x0D, 0x0A])
        commands += 1
    }

    public mutating func argument(_ value: UnsafeRawBufferPointer) {
        bytes.append(UInt8(ascii: "$"))
        appendDecimal(Int64(value.count))
        bytes.append(contentsOf: [0x0D, 0x0A])
        bytes.append(contentsOf: value)
        bytes.append(contentsOf: [0x0D, 0x0A])
    }

    public mutating func argument(_ value: [UInt8]) { value.withUnsafeBytes { argument($0) } }

    public mutating func argument(_ value: String) {
        var v = value
        v.withUTF8 { argument(UnsafeRawBufferPointer($0)) }
    }

    public mutating func argument(_ value: Int64) {
        var digits: [UInt8] = []
        RESPBuffer.decimal(value, into: &digits)
        argument(digits)
    }

    public mutating func command(_ arguments: [String]) {
        begin(arguments: arguments.count)
        for a in arguments { argument(a) }
    }

    private mutating func appendDecimal(_ v: Int64) { RESPBuffer.decimal(v, into: &bytes) }

    /// ASCII decimal of an integer.
    public static func decimal(_ value: Int64, into out: inout [UInt8]) {
        if value == 0 { return out.append(UInt8(ascii: "0")) }
        var v = value.magnitude
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            while v > 0 {
                d[n] = UInt8(v % 10) + 0x30
                v /= 10
                n += 1
            }
            for k in stride(from: n - 1, through: 0, by: -1) { out.append(d[k]) }
        }
    }
}

/// One synchronous hiredis connection, used from one thread. A whole pipeline is written at
/// once and its replies read back; a connection error closes the context, and the next call
/// reconnects (the caller decides when, with backoff).
public final class RedisConnection: @unchecked Sendable {  // confined to its owner's thread
    public let endpoint: RedisEndpoint
    private var context: UnsafeMutablePointer<redisContext>?
    private let timeoutMs: Int
    private let logger: Logger

    public init(endpoint: RedisEndpoint, timeoutMs: Int = 2_000, logger: Logger) {
        self.endpoint = endpoint
        self.timeoutMs = timeoutMs
        self.logger = logger
    }

    deinit { disconnect() }

    public var isConnected: Bool { context != nil }

    public func disconnect() {
        if let c = context { redisFree(c) }
        context = nil
    }

    /// Connects (and authenticates, and selects the database) if not connected.
    public func connect() throws {
        guard context == nil else { return }
        let tv = timeval(tv_sec: timeoutMs / 1_000, tv_usec: (timeoutMs % 1_000) * 1_000)
        guard let c = redisConnectWithTimeout(endpoint.host, endpoint.port, tv) else {
            throw RedisError(message: "cannot allocate a Redis context", isRetriable: true)
        }
        if c.pointee.err != 0 {
            let message = Self.errorText(c)
            redisFree(c)
            throw RedisError(message: "cannot connect to \(endpoint): \(message)", isRetriable: true)
        }
        _ = redisSetTimeout(c, tv)
        _ = redisEnableKeepAlive(c)
        context = c
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

    private static func errorText(_ c: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: c.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Sends a pipeline and reads one reply per command. Connection failures disconnect and throw
    /// a retriable error; Redis error replies are returned as `.error`.
    public func send(_ pipeline: RESPBuffer) throws -> [RedisReply] {
        try connect()
        guard let c = context else { throw RedisError(message: "not connected", isRetriable: true) }
        let appended = pipeline.bytes.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(c, $0.baseAddress, $0.count) }
        }
        guard appended == REDIS_OK else { return try fail("write") }
        var replies: [RedisReply] = []
        replies.reserveCapacity(pipeline.commands)
        for _ in 0..<pipeline.commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(c, &raw) == REDIS_OK, let raw else { return try fail("read") }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            replies.append(Self.convert(reply))
            freeReplyObject(raw)
        }
        return replies
    }

    /// Sends a pipeline whose replies only need checking: returns the number of error replies and
    /// the first error message.
    public func sendChecked(_ pipeline: RESPBuffer) throws -> (errors: Int, first: String?) {
        try connect()
        guard let c = context else { throw RedisError(message: "not connected", isRetriable: true) }
        let appended = pipeline.bytes.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(c, $0.baseAddress, $0.count) }
        }
        guard appended == REDIS_OK else { _ = try fail("write"); return (0, nil) }
        var errors = 0
        var first: String?
        for _ in 0..<pipeline.commands {
            var raw: UnsafeMutableRawPointer?
            guard redisGetReply(c, &raw) == REDIS_OK, let raw else { _ = try fail("read"); return (0, nil) }
            let reply = raw.assumingMemoryBound(to: redisReply.self)
            if reply.pointee.type == REDIS_REPLY_ERROR {
                errors += 1
                if first == nil { first = String(decoding: UnsafeRawBufferPointer(start: reply.pointee.str, count: reply.pointee.len), as: UTF8.self) }
            }
            freeReplyObject(raw)
        }
        return (errors, first)
    }

    public func command(_ arguments: [String]) throws -> RedisReply {
        var p = RESPBuffer()
        p.command(arguments)
        return try send(p)[0]
    }

    private func fail(_ what: String) throws -> [RedisReply] {
        var message = context.map(Self.errorText) ?? "connection lost"
        if message == "Resource temporarily unavailable" { message = "no answer within \(timeoutMs) ms" }
        disconnect()
        throw RedisError(message: "Redis \(what) failed: \(message)", isRetriable: true)
    }

    private static func convert(_ r: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let v = r.pointee
        switch v.type {
        case REDIS_REPLY_STRING: return .string(Array(UnsafeRawBufferPointer(start: v.str, count: v.len)))
        case REDIS_REPLY_STATUS: return .status(String(decoding: UnsafeRawBufferPointer(start: v.str, count: v.len), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: UnsafeRawBufferPointer(start: v.str, count: v.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(v.integer)
        case REDIS_REPLY_ARRAY: return .array((0..<v.elements).map { convert(v.element[$0]!) })
        default: return .null
        }
    }
}
