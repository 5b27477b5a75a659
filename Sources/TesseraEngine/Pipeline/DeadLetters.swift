import Foundation
import TesseraCore
import TesseraKafka
import TesseraSource

/// Where rejected events go, with their topic, partition, offset, reason and raw bytes.
public enum DeadLetterDestination: Sendable, Hashable {
    /// JSON lines appended to a local file (payload in base64).
    case file(String)
    /// A Kafka topic: the raw payload as the value, the reason and origin in the key as JSON.
    case topic(String)
}

/// Where a rejected event came from: a topic, partition and offset (`tessera run`), or an
/// event file, the partition it was placed in (-1 when it could not be) and its line or row.
struct DeadLetterOrigin {
    var topic: String
    var partition: Int32
    var offset: Int64
}

/// Counts every rejected event by reason and hands it to the destination. Owned by one thread
/// (the worker's, or the backfill's).
final class DeadLetterSink {
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

    func record(_ from: DeadLetterOrigin, rejection: Rejection, payload: UnsafeRawBufferPointer) throws {
        counts[rejection.reason, default: 0] += 1
        let origin = "{\"topic\":\(JSONText.quoted(from.topic)),\"partition\":\(from.partition),\"offset\":\(from.offset),\"reason\":\"\(rejection.reason.rawValue)\",\"detail\":\(JSONText.quoted(rejection.detail))"
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
