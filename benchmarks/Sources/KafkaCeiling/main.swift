// The ceiling for end-to-end throughput: Tessera's own consumer (same librdkafka settings,
// same batch size) reading a topic to its end with no processing at all.
//   kafka-ceiling BROKERS TOPIC [GROUP]
// Prints a summary line and a JSON line: records, bytes per record, and the rate measured from the
// group's first assignment (as the end-to-end benchmark measures Tessera) and from the first record.
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
var assigned: ContinuousClock.Instant?, firstRecord: ContinuousClock.Instant?
while consumer.assignment.isEmpty || !consumer.atEnd.isSuperset(of: consumer.assignment) {
    let n = try consumer.poll(timeout: 100) { records in
        for r in records { bytes &+= r.payload.count }
    }
    if assigned == nil && !consumer.assignment.isEmpty { assigned = .now }
    if n > 0 && firstRecord == nil { firstRecord = .now }
    count += n
}
let end = ContinuousClock.now
let fromAssignment = assigned.map { (end - $0) / .seconds(1) } ?? 0
let fromFirst = firstRecord.map { (end - $0) / .seconds(1) } ?? 0
consumer.close()
let rate = Double(count) / max(fromAssignment, 1e-9)
print("ceiling: \(count) records (\(bytes / max(count, 1)) bytes each) in \(String(format: "%.2f", fromAssignment)) s from the assignment = \(Int(rate)) records/s")
print("{\"records\":\(count),\"bytes\":\(bytes),\"seconds\":\(String(format: "%.4f", fromAssignment)),\"seconds_from_first_record\":\(String(format: "%.4f", fromFirst)),\"rate\":\(Int(rate))}")
