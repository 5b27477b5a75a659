// The ceiling for end-to-end throughput: Tessera's own consumer (same librdkafka settings,
// same batch size) reading a topic to its end with no processing at all.
//   kafka-ceiling BROKERS TOPIC [GROUP]
import Foundation
import Logging
import TesseraKafka

let args = CommandLine.arguments
guard args.count >= 3 else {
    print("usage: kafka-ceiling BROKERS TOPIC [GROUP]")
    exit(2)
}
var logger = Logger(label: "ceiling")
logger.logLevel = .warning
let consumer = try KafkaConsumer(brokers: args[1], group: args.count > 3 ? args[3] : "ceiling-\(getpid())", topics: [args[2]],
                                 properties: [("session.timeout.ms", "6000")], reportEndOfPartition: true, logger: logger)
var count = 0, bytes = 0
var started: ContinuousClock.Instant?
while consumer.assignment.isEmpty || !consumer.atEnd.isSuperset(of: consumer.assignment) {
    let n = try consumer.poll(timeout: 100) { records in
        for r in records { bytes &+= r.payload.count }
    }
    if n > 0 && started == nil { started = .now }
    count += n
}
let seconds = started.map { (ContinuousClock.now - $0) / .seconds(1) } ?? 0
consumer.close()
print("ceiling: \(count) records (\(bytes / max(count, 1)) bytes each) in \(String(format: "%.2f", seconds)) s = \(Int(Double(count) / max(seconds, 1e-9))) records/s")
