import Foundation
import Testing
@testable import TesseraRedis

/// docs/design.md, "Bad input and faults": the Redis password comes from the environment or a file, never from the URL, and
/// is never printed, not even in the error that refuses a URL holding it.
@Suite("Redis endpoint")
struct RedisEndpointTests {
    static let secret = "s3cr3t-9f1c"

    @Test("the password comes from TESSERA_REDIS_PASSWORD or the file TESSERA_REDIS_PASSWORD_FILE, and is never printed")
    func password() throws {
        let fromVariable = try RedisEndpoint(url: "redis://app@127.0.0.1:6380/2", environment: ["TESSERA_REDIS_PASSWORD": Self.secret])
        #expect(fromVariable.password == Self.secret && fromVariable.user == "app" && fromVariable.port == 6380 && fromVariable.database == 2)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-redis-password-\(UUID().uuidString)")
        try Data((Self.secret + "\n").utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let fromFile = try RedisEndpoint(url: "redis://127.0.0.1", environment: ["TESSERA_REDIS_PASSWORD_FILE": file.path])
        #expect(fromFile.password == Self.secret)
        struct Options { var redis: RedisEndpoint }
        for endpoint in [fromVariable, fromFile] {
            var dumped = ""
            dump(Options(redis: endpoint), to: &dumped)
            for text in ["\(endpoint)", String(reflecting: endpoint), "\(Options(redis: endpoint))", dumped] {
                #expect(!text.contains(Self.secret) && !text.contains("app"), "\(text)")
            }
        }
    }

    @Test("a URL holding a password is refused without echoing it", arguments: [
        "redis://:\(secret)@127.0.0.1:6379",
        "redis://default:\(secret)@127.0.0.1:6379/0",
        "rediss://default:\(secret)@127.0.0.1:6380",
        "http://user:\(secret)@127.0.0.1",
        "redis:/user:\(secret)@127.0.0.1",
        "redis://\(secret)@127.0.0.1:6379",
        "redis://127.0.0.1:6379/0?password=\(secret)",
        "redis://127.0.0.1:\(secret)",
        "redis://127.0.0.1:6379/\(secret)",
        secret,
    ])
    func refused(_ url: String) {
        do {
            _ = try RedisEndpoint(url: url, environment: [:])
            Issue.record("accepted \(url)")
        } catch {
            #expect(!"\(error)".contains(Self.secret), "\(error)")
            #expect(!"\(error)".isEmpty)
        }
    }
}
