// Load for the freshness benchmark: the reference orders (users and amounts from the generator of
// docs/workload.md) produced at a fixed rate for a fixed time, each stamped with the wall clock as its
// event time, so that the topic looks like live traffic. LINGER_MS is the producer's `linger.ms`
// (default 5, as Tessera's producer).
//   rate-load BROKERS TOPIC RATE SECONDS [USERS] [SKEW] [LINGER_MS]
// Prints `ready` once every payload is written, then produces, then one JSON line:
// {"produced":N,"seconds":S,"rate":R}.
//
// The load shares the machine with what it measures, so it does as little as it can while it runs:
// every payload and key is written before `ready`, into one buffer that librdkafka reads without
// copying; while producing, only the event time (the payload's last 13 digits) is written, once
// per message, from digits formatted once per millisecond. Delivery reports come only for errors.
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
let total = Int(rate * seconds)
let workload = ReferenceWorkload(.init(events: total + 1, users: users, skew: skew, span: Time.day, disorder: 0, seed: 11))
let producer = try KafkaProducer(brokers: args[1], properties: [("linger.ms", String(linger)), ("delivery.report.only.error", "true")],
                                 logger: logger)
if try producer.partitionCount(topic: args[2]) == nil { try producer.createTopic(args[2], partitions: 4) }

func wallMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000 + Int64(ts.tv_nsec) / 1_000_000
}

/// Every message's key and payload, one after the other: message i is its key at starts[i]
/// (keyLengths[i] bytes) followed by its payload up to starts[i + 1]. The payloads carry a 13-digit
/// placeholder event time, replaced as each message is sent. The array is not resized once written,
/// so librdkafka may read from it until `flush` returns.
let timeDigits = 13
var bytes: [UInt8] = [], starts: [Int] = [], keyLengths: [UInt8] = []
bytes.reserveCapacity(total * 112)
starts.reserveCapacity(total + 1)
keyLengths.reserveCapacity(total)
for i in 0..<total {
    var order = workload.order(i)
    order.eventTimeMillis = 1_000_000_000_000
    starts.append(bytes.count)
    let keyStart = bytes.count
    DecimalText.append(order.userID, to: &bytes)
    keyLengths.append(UInt8(bytes.count - keyStart))
    ReferenceWorkload.json(order, into: &bytes)
}
starts.append(bytes.count)
FileHandle.standardOutput.write(Data("ready\n".utf8))   // unbuffered: the harness waits for it

let started = ContinuousClock.now
try bytes.withUnsafeMutableBytes { buffer in
    var stamp: [UInt8] = [], stampMillis: Int64 = -1
    var sent = 0
    while sent < total {
        // Everything due by now goes out at once; then a short sleep (sub-millisecond pacing).
        let due = min(total, Int(((ContinuousClock.now - started) / .seconds(1)) * rate))
        if due <= sent {
            usleep(200)
            continue
        }
        let now = wallMillis()
        if now != stampMillis {
            stampMillis = now
            stamp.removeAll(keepingCapacity: true)
            DecimalText.append(now, to: &stamp)
            precondition(stamp.count == timeDigits, "the wall clock in milliseconds has \(timeDigits) digits until 2286")
        }
        while sent < due {
            let keyStart = starts[sent], valueStart = keyStart + Int(keyLengths[sent]), end = starts[sent + 1]
            // The payload ends with the event time's digits and "}".
            stamp.withUnsafeBytes { (buffer.baseAddress! + end - 1 - timeDigits).copyMemory(from: $0.baseAddress!, byteCount: timeDigits) }
            try producer.sendUncopied(topic: args[2], key: UnsafeRawBufferPointer(rebasing: buffer[keyStart..<valueStart]),
                                      value: UnsafeRawBufferPointer(rebasing: buffer[valueStart..<end]))
            sent += 1
        }
    }
    try producer.flush()
}
let elapsed = (ContinuousClock.now - started) / .seconds(1)
print("{\"produced\":\(total),\"seconds\":\(String(format: "%.3f", elapsed)),\"rate\":\(Int(Double(total) / elapsed))}")
