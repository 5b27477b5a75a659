import ArgumentParser
import Foundation
import TesseraCore
import TesseraKafka
import TesseraWorkload

/// `tessera produce`: the reference events of docs/workload.md into a topic, keyed by user_id, or into
/// a JSON-lines file (for `tessera backfill`).
struct Produce: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Produce the seeded reference orders to a Kafka topic (key = user_id), or write them as JSON lines.")

    @Option(help: "Kafka bootstrap servers.") var brokers: String?
    @Option(help: "Topic (created with --partitions if missing).") var topic = "orders"
    @Option(help: "Number of events of the stream.") var events = 200_000
    @Option(help: "Produce only events from this index of the stream (to produce a stream in parts).") var from = 0
    @Option(help: "Produce only this many events (default: up to the end of the stream).") var count: Int?
    @Option(help: "Distinct users.") var users = 20_000
    @Option(help: "Zipf exponent of the users' activity.") var skew = 1.1
    @Option(help: "Event-time span, e.g. 2d.") var span = "2d"
    @Option(help: "Largest backwards jitter of event times, e.g. 2s.") var disorder = "0s"
    @Option(help: "Events per second (default: as fast as possible).") var rate: Double?
    @Option(help: "Seed of the generator.") var seed: UInt64 = 1
    @Option(help: "Partitions of the topic when it has to be created.") var partitions = 4
    @Option(help: "A scale of docs/workload.md (quick, standard, hot, steady) instead of the numbers above.") var scale: String?
    @Option(name: .customLong("kafka-config"), help: "A librdkafka property KEY=VALUE (repeatable).") var kafkaConfig: [String] = []
    @Option(help: "Write the events to this JSON-lines file (one payload per line) instead of a topic.") var out: String?

    func run() throws {
        let logger = makeLogger("tessera-produce")
        var parameters: ReferenceWorkload.Parameters
        if let scale {
            guard let p = ReferenceWorkload.Parameters.named(scale) else { throw ValidationError("--scale is quick, standard, hot or steady") }
            parameters = p
            parameters.seed = seed
        } else {
            guard let spanMicros = Time.parse(duration: span), let disorderMicros = Time.parse(duration: disorder) ?? (disorder == "0" ? 0 : nil) else {
                throw ValidationError("--span and --disorder are durations like 2d or 500ms")
            }
            parameters = .init(events: events, users: users, skew: skew, span: spanMicros, disorder: disorderMicros, seed: seed)
        }
        let workload = ReferenceWorkload(parameters)
        var json: [UInt8] = []
        var key: [UInt8] = []
        let started = ContinuousClock.now
        let range = max(0, from)..<min(parameters.events, max(0, from) + (count ?? parameters.events))
        if let out {
            for i in range {
                ReferenceWorkload.json(workload.order(i), into: &json)
                json.append(UInt8(ascii: "\n"))
            }
            guard FileManager.default.createFile(atPath: out, contents: Data(json)) else { throw ValidationError("cannot write \(out)") }
            printError("wrote \(range.count) events to \(out)")
            return
        }
        let brokers = try required(self.brokers, "brokers")
        let producer = try KafkaProducer(brokers: brokers, properties: try kafkaProperties(flags: kafkaConfig, file: nil), logger: logger)
        if try producer.partitionCount(topic: topic) == nil {
            try producer.createTopic(topic, partitions: partitions)
        }
        for i in range {
            let order = workload.order(i)
            json.removeAll(keepingCapacity: true)
            ReferenceWorkload.json(order, into: &json)
            key.removeAll(keepingCapacity: true)
            key.append(contentsOf: String(order.userID).utf8)
            try producer.send(topic: topic, key: key, value: json)
            if let rate, rate > 0 {
                let due = started + .milliseconds(Int(Double(i - range.lowerBound + 1) / rate * 1_000))
                let now = ContinuousClock.now
                if due > now { Thread.sleep(forTimeInterval: (due - now) / .seconds(1)) }
            }
        }
        try producer.flush()
        let seconds = (ContinuousClock.now - started) / .seconds(1)
        printError("produced \(range.count) events to \(topic) in \(String(format: "%.1f", seconds)) s (\(Int(Double(range.count) / seconds)) events/s)")
    }
}
