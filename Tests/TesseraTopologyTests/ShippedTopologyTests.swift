import Foundation
import Testing
import TesseraCore
@testable import TesseraTopology

/// The package root, found from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

@Suite("Shipped topologies and the validate command")
struct ShippedTopologyTests {
    static var shipped: [String] {
        let dir = packageRoot.appendingPathComponent("topologies")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted().map { dir.appendingPathComponent($0).path }
    }

    @Test("every file in topologies/ is valid, and growth.yaml holds the reference view")
    func shippedAreValid() throws {
        #expect(Self.shipped.count >= 2)
        let topologies = try TopologyLoader.load(files: Self.shipped)
        let growth = try #require(topologies.first { $0.team == "growth" })
        let view = try #require(growth.views.first { $0.name == "user_stats" })
        #expect(view.ttl == Time.day && view.online && view.offline)
        #expect(view.tags.map { "\($0.key)=\($0.value)" } == ["team=recommendation", "version=v2"])
        let expected: [(String, Aggregate, String?, Window)] = [
            ("total_orders_1h", .count, nil, .sliding(length: Time.hour, hop: 5 * Time.minute)),
            ("total_orders_7d", .count, nil, .sliding(length: 7 * Time.day, hop: Time.hour)),
            ("total_orders", .count, nil, .lifetime),
            ("total_amount_1d", .sum, "amount", .sliding(length: Time.day, hop: Time.hour)),
            ("avg_order_amount_7d", .mean, "amount", .sliding(length: 7 * Time.day, hop: Time.hour)),
            ("max_order_amount_7d", .max, "amount", .sliding(length: 7 * Time.day, hop: Time.hour)),
            ("amount_stddev_7d", .stddev, "amount", .sliding(length: 7 * Time.day, hop: Time.hour)),
            ("distinct_products_7d", .approxCountDistinct, "product_id", .sliding(length: 7 * Time.day, hop: Time.hour)),
            ("last_status", .last, "status", .lifetime),
            ("paid_orders_1d", .count, nil, .sliding(length: Time.day, hop: Time.hour)),
        ]
        #expect(view.features.count == expected.count)
        for (f, e) in zip(view.features, expected) {
            #expect(f.name == e.0 && f.aggregate == e.1 && f.field == e.2 && f.window == e.3, "\(f.name)")
        }
        #expect(view.features.last?.filterText == "status == \"paid\"")
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = packageRoot.appendingPathComponent(".build/debug/tessera")
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    @Test("tessera validate: 0 on the shipped files, 2 and FILE:LINE:COLUMN lines on bad ones")
    func command() throws {
        let ok = try Self.run(["validate"] + Self.shipped)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("user_stats"))

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-validate-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bad = dir.appendingPathComponent("bad.yaml")
        try baseTopology.replacingOccurrences(of: "format: json", with: "format: parquet")
            .replacingOccurrences(of: "window: 1h", with: "window: 1h, hop: 7m")
            .write(to: bad, atomically: true, encoding: .utf8)
        let failed = try Self.run(["validate", Self.shipped[0], bad.path])
        #expect(failed.status == 2)
        let lines = failed.stderr.split(separator: "\n").map(String.init)
        #expect(lines == [
            "\(bad.path):5:13: format 'parquet' is not supported (supported: json, avro, protobuf)",
            "\(bad.path):19:54: hop 7m does not divide window 1h",
        ])
    }
}
