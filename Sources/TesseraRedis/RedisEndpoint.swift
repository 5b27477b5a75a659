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
        // `redis://SECRET@HOST` is a common way of writing a password: a user without one is
        // refused (without quoting it), never sent as a user name nor printed.
        if user != nil && password == nil {
            throw ParseError(description: "the Redis URL names a user (USER@HOST) but no password is set: a password goes in TESSERA_REDIS_PASSWORD or TESSERA_REDIS_PASSWORD_FILE, never in the URL")
        }
    }

    /// The URL without its user, which may be a misplaced password.
    public var description: String { "redis://\(user == nil ? "" : "***@")\(host):\(port)/\(database)" }

    /// What `dump` and debuggers show: everything but the password.
    public var customMirror: Mirror {
        Mirror(self, children: ["host": host, "port": port, "database": database, "user": user == nil ? "nil" : "***", "password": password == nil ? "nil" : "***"],
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

