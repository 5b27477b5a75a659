import Foundation
@_exported import TesseraProcess

/// A real `redis-server` for a test, on a free loopback port, in its own temporary directory.
/// (Started through `RedisServerProcess`, whose clean signal mask lets it be stopped.)
public typealias RedisServer = RedisServerProcess

extension RedisServerProcess {
    public convenience init() throws {
        try self.init(directory: NSTemporaryDirectory() + "tessera-redis-\(UUID().uuidString)")
    }
}
