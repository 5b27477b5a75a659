import Foundation
import TesseraKafka
import TesseraSource

/// Where rejected events go, with their topic, partition, offset, reason and raw bytes.
public enum DeadLetterDestination: Sendable, Hashable {
    /// JSON lines appended to a local file (payload in base64).
    case file(String)
    /// A Kafka topic: the raw payload as the value, the reason and origin in the key as JSON.
    case topic(String)
}

/// Counts every rejected event by reason and hands it to the destination.
final class DeadLetterSink: @unchecked Sendable {  // owned by the worker thread
    private let destination: DeadLetterDestination
    private var file: FileHandle?
    private let producer: KafkaProducer?
    private(set) var counts: [DeadLetterReason: Int] = [:]
    private var buffer = Data()

    init(destination: DeadLetterDestination, producer: KafkaProducer?) throws {
        self.destination = destination
        self.producer = producer
        if case .file(let path) = destination {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            guard let handle = FileHandle(forWritingAtPath: path) else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
            }
            handle.seekToEndOfFile()
            file = handle
        }
    }

    var total: Int { counts.values.reduce(0, +) }
    static let bufferLimit = 4 << 20

    func record(topic: String, partition: Int32, offset: Int64, rejection: Rejection, payload: UnsafeRawBufferPointer) throws {
        counts[rejection.reason, default: 0] += 1
        let origin = "{\"topic\":\(jsonString(topic)),\"partition\":\(partition),\"offset\":\(offset),\"reason\":\"\(rejection.reason.rawValue)\",\"detail\":\(jsonString(rejection.detail))"
        switch destination {
        case .file:
            buffer.append(contentsOf: origin.utf8)
            buffer.append(contentsOf: ",\"payload_base64\":\"".utf8)
            buffer.append(Data(payload).base64EncodedData())
            buffer.append(contentsOf: "\"}\n".utf8)
            // Rejected payloads may be large (oversized events): write them out as they come rather
            // than holding them until the next flush; `flush` makes them durable.
            if buffer.count >= DeadLetterSink.bufferLimit, let file {
                try file.write(contentsOf: buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        case .topic(let name):
            try producer?.send(topic: name, key: Array((origin + "}").utf8), value: Array(payload))
        }
    }

    /// Makes what was recorded durable (before offsets are committed).
    func flush() throws {
        if let file, !buffer.isEmpty {
            try file.write(contentsOf: buffer)
            try file.synchronize()
            buffer.removeAll(keepingCapacity: true)
        }
        try producer?.flush()
    }
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}
