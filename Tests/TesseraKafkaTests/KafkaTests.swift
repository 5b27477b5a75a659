import Logging
import Testing
@testable import TesseraKafka

let quiet: Logger = {
    var l = Logger(label: "test")
    l.logLevel = .error
    return l
}()

final class Recorder: RebalanceListener {
    var assigned: [TopicPartition] = []
    var revoked: [TopicPartition] = []
    var start: [TopicPartition: Int64] = [:]
    func assigned(_ partitions: [TopicPartition]) -> [TopicPartition: Int64] {
        assigned += partitions
        return start.filter { partitions.contains($0.key) }
    }
    func revoked(_ partitions: [TopicPartition]) { revoked += partitions }
}

@Suite("Kafka over librdkafka's mock cluster", .serialized)
struct KafkaTests {
    @Test("produce, consume every record once in order per partition, commit, resume from the commit")
    func roundTrip() throws {
        let cluster = try MockKafkaCluster(brokers: 1, logger: quiet)
        try cluster.createTopic("orders", partitions: 4)
        let producer = try KafkaProducer(brokers: cluster.bootstrapServers, logger: quiet)
        for i in 0..<2_000 {
            try producer.send(topic: "orders", key: Array("\(i % 37)".utf8), value: Array("message \(i)".utf8))
        }
        try producer.flush()
        #expect(producer.delivered == 2_000)
        #expect(try producer.partitionCount(topic: "orders") == 4)

        var seen: [TopicPartition: [Int64]] = [:]
        var keysByPartition: [Int32: Set<String>] = [:]
        do {
            let consumer = try KafkaConsumer(brokers: cluster.bootstrapServers, group: "g", topics: ["orders"],
                                             properties: [("session.timeout.ms", "6000")], reportEndOfPartition: true, logger: quiet)
            let recorder = Recorder()
            consumer.setListener(recorder)
            var total = 0
            while total < 2_000 || consumer.atEnd.count < 4 {
                total += try consumer.poll(timeout: 100) { records in
                    for r in records {
                        seen[TopicPartition(consumer.topics[r.topic], r.partition), default: []].append(r.offset)
                        keysByPartition[r.partition, default: []].insert(String(decoding: r.key, as: UTF8.self))
                        // librdkafka's partitioner put it where Kafka's default partitioner says.
                        #expect(KafkaPartitioner.partition(key: r.key, partitions: 4) == r.partition)
                        #expect(String(decoding: r.payload, as: UTF8.self).hasPrefix("message "))
                    }
                }
            }
            #expect(total == 2_000)
            #expect(Set(recorder.assigned) == Set((0..<4).map { TopicPartition("orders", $0) }))
            // Keys keep to one partition; offsets are dense from 0 in every partition.
            #expect(keysByPartition.values.reduce(0) { $0 + $1.count } == 37)
            for (_, offsets) in seen { #expect(offsets == Array(0..<Int64(offsets.count))) }
            var commit: [TopicPartition: Int64] = [:]
            for (tp, offsets) in seen { commit[tp] = Int64(offsets.count / 2) }
            try consumer.commit(commit)
            #expect(try consumer.committed(Array(commit.keys)) == commit)
            consumer.close()
        }
        // A new member of the group resumes from the committed offsets.
        let again = try KafkaConsumer(brokers: cluster.bootstrapServers, group: "g", topics: ["orders"],
                                      properties: [("session.timeout.ms", "6000")], reportEndOfPartition: true, logger: quiet)
        var count = 0
        while again.atEnd.count < 4 || count == 0 {
            count += try again.poll(timeout: 100) { _ in }
        }
        #expect(count == 2_000 - seen.values.reduce(0) { $0 + $1.count / 2 })
        again.close()
    }

    @Test("messages lent to the producer uncopied arrive whole, each key and payload as written, keyed to their partitions")
    func uncopiedMessages() throws {
        let cluster = try MockKafkaCluster(brokers: 1, logger: quiet)
        try cluster.createTopic("lent", partitions: 4)
        let producer = try KafkaProducer(brokers: cluster.bootstrapServers, logger: quiet)
        // Keys and payloads of differing lengths, back to back in one buffer, as the load generator
        // keeps them; each message's bytes are written just before it is sent.
        var buffer = [UInt8](repeating: 0, count: 64 * 1_000)
        var expected: [String: String] = [:]
        try buffer.withUnsafeMutableBytes { all in
            var at = 0
            for i in 0..<1_000 {
                let key = Array("user-\(i % 53)".utf8), value = Array("order \(i) \(String(repeating: "x", count: i % 17))".utf8)
                (all.baseAddress! + at).copyMemory(from: key, byteCount: key.count)
                (all.baseAddress! + at + key.count).copyMemory(from: value, byteCount: value.count)
                try producer.sendUncopied(topic: "lent", key: UnsafeRawBufferPointer(rebasing: all[at..<at + key.count]),
                                          value: UnsafeRawBufferPointer(rebasing: all[at + key.count..<at + key.count + value.count]))
                expected[String(decoding: value, as: UTF8.self)] = String(decoding: key, as: UTF8.self)
                at += key.count + value.count
            }
            try producer.flush()
        }
        let consumer = try KafkaConsumer(brokers: cluster.bootstrapServers, group: "lent", topics: ["lent"],
                                         properties: [("session.timeout.ms", "6000")], reportEndOfPartition: true, logger: quiet)
        var received: [String: String] = [:]
        var total = 0
        while total < 1_000 || consumer.atEnd.count < 4 {
            total += try consumer.poll(timeout: 100) { records in
                for r in records {
                    received[String(decoding: r.payload, as: UTF8.self)] = String(decoding: r.key, as: UTF8.self)
                    #expect(KafkaPartitioner.partition(key: r.key, partitions: 4) == r.partition)
                }
            }
        }
        #expect(total == 1_000)
        #expect(received == expected)
        consumer.close()
    }

    /// Topic "t" of two partitions holding records "0", "1", … alternately, and a consumer of it.
    static func twoPartitions(records: Int, group: String, batchSize: Int = 8_192) throws -> (MockKafkaCluster, KafkaProducer, KafkaConsumer) {
        let cluster = try MockKafkaCluster(brokers: 1, logger: quiet)
        try cluster.createTopic("t", partitions: 2)
        let producer = try KafkaProducer(brokers: cluster.bootstrapServers, logger: quiet)
        for i in 0..<records { try producer.send(topic: "t", partition: Int32(i % 2), key: [], value: Array("\(i)".utf8)) }
        try producer.flush()
        let consumer = try KafkaConsumer(brokers: cluster.bootstrapServers, group: group, topics: ["t"],
                                         properties: [("session.timeout.ms", "6000")], reportEndOfPartition: true, batchSize: batchSize, logger: quiet)
        return (cluster, producer, consumer)
    }

    @Test("the rebalance listener chooses where assigned partitions start")
    func startOffsets() throws {
        let (cluster, producer, consumer) = try Self.twoPartitions(records: 100, group: "h")
        defer { withExtendedLifetime((cluster, producer)) {} }
        let recorder = Recorder()
        recorder.start = [TopicPartition("t", 0): 40, TopicPartition("t", 1): 45]
        consumer.setListener(recorder)
        var first: [Int32: Int64] = [:]
        var count = 0
        while consumer.atEnd.count < 2 || count == 0 {
            count += try consumer.poll(timeout: 100) { records in
                for r in records where first[r.partition] == nil { first[r.partition] = r.offset }
            }
        }
        #expect(first == [0: 40, 1: 45])
        #expect(count == 10 + 5)
        consumer.close()
    }

    @Test("a held partition's records are kept back while the others flow, then come complete and in order once released")
    func holdAndRelease() throws {
        let (cluster, producer, consumer) = try Self.twoPartitions(records: 1_000, group: "k", batchSize: 64)
        defer { withExtendedLifetime(cluster) {} }
        consumer.setListener(Recorder())
        let p0 = TopicPartition("t", 0)
        var seen: [Int32: [Int64]] = [:]
        func poll() throws -> Int {
            try consumer.poll(timeout: 100) { records in
                for r in records {
                    #expect(String(decoding: r.payload, as: UTF8.self) == "\(r.offset * 2 + Int64(r.partition))")
                    seen[r.partition, default: []].append(r.offset)
                }
            }
        }
        while consumer.assignment.count < 2 { _ = try poll() }
        consumer.hold(p0)
        let before = seen[0, default: []].count
        // Both partitions at their end: every record of partition 0 has come out of the queue since.
        while seen[1, default: []].count < 500 || !consumer.atEnd.isSuperset(of: [p0, TopicPartition("t", 1)]) { _ = try poll() }
        #expect(seen[0, default: []].count == before)
        #expect(consumer.keepsRecords == (before < 500))
        consumer.release(p0)
        while seen[0, default: []].count < 500 { _ = try poll() }
        #expect(!consumer.keepsRecords)
        #expect(seen[0] == Array(0..<500))
        #expect(seen[1] == Array(0..<500))
        // Held again with records kept: closing (the partitions revoked) frees them.
        for i in 0..<10 { try producer.send(topic: "t", partition: 0, key: [], value: Array("\(1_000 + 2 * i)".utf8)) }
        try producer.flush()
        consumer.hold(p0)
        while !consumer.keepsRecords { #expect(try poll() == 0) }
        consumer.close()
        #expect(!consumer.keepsRecords)
    }

    @Test("a held partition that is paused hands over none of the records kept for it")
    func pauseWhileHeld() throws {
        let (cluster, producer, consumer) = try Self.twoPartitions(records: 1_000, group: "p", batchSize: 64)
        defer { withExtendedLifetime((cluster, producer)) {} }
        consumer.setListener(Recorder())
        let p0 = TopicPartition("t", 0), p1 = TopicPartition("t", 1)
        var seen: [Int32: Int] = [:]
        func poll() throws -> Int {
            try consumer.poll(timeout: 100) { records in
                for r in records { seen[r.partition, default: 0] += 1 }
            }
        }
        while consumer.assignment.count < 2 { _ = try poll() }
        consumer.hold(p0)
        let before = seen[0, default: 0]
        while seen[1, default: 0] < 500 || !consumer.atEnd.isSuperset(of: [p0, p1]) { _ = try poll() }
        try #require(before < 500, "partition 0 was read to its end before the hold")
        #expect(consumer.keepsRecords)
        try consumer.pause([p0])
        #expect(!consumer.keepsRecords)
        consumer.release(p0)
        for _ in 0..<5 { _ = try poll() }
        #expect(seen[0, default: 0] == before)
        #expect(consumer.paused == [p0])
        consumer.close()
    }

    @Test("a partition paused while its released records are handed over gets none of the rest of them")
    func pauseWhileReleased() throws {
        let (cluster, producer, consumer) = try Self.twoPartitions(records: 1_000, group: "r", batchSize: 64)
        defer { withExtendedLifetime((cluster, producer)) {} }
        consumer.setListener(Recorder())
        let p0 = TopicPartition("t", 0), p1 = TopicPartition("t", 1)
        var seen: [Int32: Int] = [:]
        var pauseOnRecord = false
        func poll() throws -> Int {
            try consumer.poll(timeout: 100) { records in
                for r in records { seen[r.partition, default: 0] += 1 }
                // As the dead-letter policy does: the batch's handling pauses the partition.
                if pauseOnRecord, records.contains(where: { $0.partition == 0 }) {
                    try consumer.pause([p0])
                    pauseOnRecord = false
                }
            }
        }
        while consumer.assignment.count < 2 { _ = try poll() }
        consumer.hold(p0)
        let before = seen[0, default: 0]
        while seen[1, default: 0] < 500 || !consumer.atEnd.isSuperset(of: [p0, p1]) { _ = try poll() }
        try #require(500 - before > 2 * 64, "too few records of partition 0 kept for more than one released batch")
        consumer.release(p0)
        pauseOnRecord = true
        for _ in 0..<5 { _ = try poll() }
        // The first released batch went through; what followed it was dropped with the pause.
        #expect(seen[0, default: 0] == before + 64)
        #expect(!consumer.keepsRecords && consumer.paused == [p0])
        consumer.close()
    }
}

@Suite struct RepeatedLogLines {
    @Test func aLineRepeatedWithinTheQuietSpellIsCountedAndReportedWithItsNextShowing() {
        let sink = LogSink(logger: quiet, quiet: .seconds(10))
        let t0 = ContinuousClock.now
        let refused = "FAIL: 127.0.0.1:9092/bootstrap: Connect failed: Connection refused"
        #expect(sink.admit(refused, at: t0) == refused)
        #expect(sink.admit(refused, at: t0 + .milliseconds(50)) == nil)
        #expect(sink.admit(refused, at: t0 + .milliseconds(100)) == nil)
        #expect(sink.admit("ERROR: 1/1 brokers are down", at: t0 + .milliseconds(120)) == "ERROR: 1/1 brokers are down")
        #expect(sink.admit(refused, at: t0 + .seconds(11)) == refused + " (and 2 more times since its last showing)")
        #expect(sink.admit(refused, at: t0 + .seconds(22)) == refused)
    }
}
