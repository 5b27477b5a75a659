import Foundation
import Synchronization
import Testing
import TesseraCore
@testable import TesseraOnline
import TesseraRedis
import TesseraTestSupport
import TesseraTopology

/// The online layout's write encoders and read parsers against each other, and the bounded
/// connection pool of `tessera serve`.
@Suite("Online layout and pool")
struct LayoutTests {
    @Test("every value written to a hash reads back as the same value", arguments: 0..<4)
    func valuesRoundTrip(seed: Int) {
        var g = SeededGenerator(seed: UInt64(seed))
        var values: [(Value, ValueType)] = [
            (.int(0), .int64), (.int(.min), .int64), (.int(.max), .int64), (.double(0), .float64), (.double(-0.0), .float64),
            (.double(1e15), .float64), (.double(-1e300), .float64), (.double(.leastNonzeroMagnitude), .float64),
            (.double(.infinity), .float64), (.double(-.infinity), .float64), (.bool(true), .bool), (.bool(false), .bool),
            (.string(""), .string), (.string("a:b\\c ü"), .string),
        ]
        for _ in 0..<2_000 {
            values.append((.int(Int64.random(in: .min ... .max, using: &g)), .int64))
            values.append((.double(Double(bitPattern: UInt64.random(in: 0 ... .max, using: &g))), .float64))
            values.append((.double(Double(Int64.random(in: -1 << 52 ... 1 << 52, using: &g)) / 8), .float64))
        }
        for (value, type) in values {
            let text = OnlineLayout.text(of: value)
            let back = OnlineLayout.parse(text, as: type)
            if case .double(let d) = value, d.isNaN {
                guard case .double(let b)? = back else { Issue.record("NaN read back as \(String(describing: back))"); continue }
                #expect(b.isNaN)
            } else {
                #expect(back == value, "\(value) written as \(text)")
            }
        }
    }

    @Test("the key of an entity is the same whether built from values or from emission columns")
    func keys() throws {
        let pair = try FeastLayoutTests.views(layout: "{layout: tessera}")[2]  // keys card_id (string), user_id (int64)
        let codec = OnlineLayout(prefix: "p:").codec(pair)
        var names = Column(type: .string), ids = Column(type: .int64)
        names.append(.string("a:b\\c"))
        ids.append(.int(-42))
        var bytes: [UInt8] = []
        codec.appendKey(columns: [names, ids], row: 0, to: &bytes)
        #expect(bytes == codec.key([.string("a:b\\c"), .int(-42)]))
        #expect(String(decoding: bytes, as: UTF8.self) == "p:pair:a\\:b\\\\c:-42")
    }

    @Test("the pool never opens more connections than its size, however many requests wait")
    func boundedPool() async throws {
        let redis = try RedisServer()
        let pool = RedisPool(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), size: 3, logger: quiet)
        final class Gauge: Sendable {
            let inFlight = Atomic<Int>(0), most = Atomic<Int>(0)
        }
        let gauge = Gauge()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                group.addTask {
                    let reply = try await pool.with { connection in
                        let now = gauge.inFlight.add(1, ordering: .relaxed).newValue
                        _ = gauge.most.max(now, ordering: .relaxed)
                        defer { gauge.inFlight.subtract(1, ordering: .relaxed) }
                        usleep(2_000)
                        return try connection.command(["ECHO", "\(i)"])
                    }
                    #expect(reply.text == "\(i)")
                }
            }
            try await group.waitForAll()
        }
        #expect(pool.opened <= 3)
        #expect(gauge.most.load(ordering: .relaxed) <= 3)
    }
}
