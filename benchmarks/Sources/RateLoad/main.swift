// Load for the freshness benchmark: the reference orders (users and amounts from the generator of
// docs/workload.md) produced at a fixed rate for a fixed time, each stamped with the wall clock as its
// event time, so that the topic looks like live traffic. LINGER_MS is the producer's `linger.ms`
// (default 5, as Tessera's producer).
//   rate-load BROKERS TOPIC RATE SECONDS [USERS] [SKEW] [LINGER_MS]
// Prints one JSON line at the end: {"produced":N,"seconds":S,"rate":R}.
import Foundation
import Logging
import TesseraCore
import TesseraKafka
import TesseraWorkload

let args = CommandLine.arguments
guard args.count >= 5, let rate = Double(args[3]), rate > 0, let seconds = Double(args[4]) else {
    print("usage: rate-load BROKERS TOPIC RATE SECONDS [USERS] [SKEW] [LINGER_MS]")
    exit(2)
}
let users = args.count > 5 ? Int(args[5]) ?? 20_000 : 20_000
let skew = args.count > 6 ? Double(args[6]) ?? 1.1 : 1.1
let linger = args.count > 7 ? Int(args[7]) ?? 5 : 5
var logger = Logger(label: "rate-load")
logger.logLevel = .warning
let workload = ReferenceWorkload(.init(events: Int(rate * seconds) + 1, users: users, skew: skew, span: Time.day, disorder: 0, seed: 11))
let producer = try KafkaProducer(brokers: args[1], properties: [("linger.ms", String(linger))], logger: logger)
if try producer.partitionCount(topic: args[2]) == nil { try producer.createTopic(args[2], partitions: 4) }

func wallMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000 + Int64(ts.tv_nsec) / 1_000_000
}

var json: [UInt8] = [], key: [UInt8] = []
let total = Int(rate * seconds)
let started = ContinuousClock.now
var sent = 0
while sent < total {
    // Everything due by now goes out at once; then a short sleep (sub-millisecond pacing).
    let due = min(total, Int(((ContinuousClock.now - started) / .seconds(1)) * rate))
    if due <= sent {
        usleep(200)
        continue
    }
    let now = wallMillis()
    while sent < due {
        var order = workload.order(sent)
        order.eventTimeMillis = now
        json.removeAll(keepingCapacity: true)
        ReferenceWorkload.json(order, into: &json)
        key.removeAll(keepingCapacity: true)
        DecimalText.append(order.userID, to: &key)
        try producer.send(topic: args[2], key: key, value: json)
        sent += 1
    }
}
try producer.flush()
let elapsed = (ContinuousClock.now - started) / .seconds(1)
print("{\"produced\":\(sent),\"seconds\":\(String(format: "%.3f", elapsed)),\"rate\":\(Int(Double(sent) / elapsed))}")
