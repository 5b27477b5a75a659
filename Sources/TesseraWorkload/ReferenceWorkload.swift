import Foundation
import TesseraCore

/// The reference event stream of docs/workload.md: orders of users drawn from a Zipf distribution,
/// evenly spread over an event-time span, optionally disordered. Seeded and deterministic:
/// the same parameters give the same events on every machine.
public struct ReferenceWorkload: Sendable {
    public struct Parameters: Sendable, Hashable {
        public var events: Int
        public var users: Int
        public var skew: Double
        public var span: Micros
        /// Each event's time moves back by up to this much (0: in order).
        public var disorder: Micros
        public var seed: UInt64
        /// Event time of the first event: 2026-01-01T00:00:00Z.
        public var start: Micros = 1_767_225_600 * Time.second

        public init(events: Int, users: Int, skew: Double, span: Micros, disorder: Micros, seed: UInt64 = 1) {
            self.events = events
            self.users = users
            self.skew = skew
            self.span = span
            self.disorder = disorder
            self.seed = seed
        }

        /// The scales of docs/workload.md.
        public static let quick = Parameters(events: 200_000, users: 20_000, skew: 1.1, span: 2 * Time.day, disorder: 0)
        public static let standard = Parameters(events: 10_000_000, users: 1_000_000, skew: 1.1, span: 7 * Time.day, disorder: 2 * Time.second)
        public static let hot = Parameters(events: 10_000_000, users: 1_000, skew: 1.3, span: Time.day, disorder: 0)
        /// 28 days: the 7-day windows slide for three quarters of the run, as in a long-running worker.
        public static let steady = Parameters(events: 20_000_000, users: 1_000_000, skew: 1.1, span: 28 * Time.day, disorder: 2 * Time.second)
        /// `steady`'s shape at `quick`'s size, for smoke tests of what is measured at `steady`.
        public static let quickSteady = Parameters(events: 400_000, users: 20_000, skew: 1.1, span: 28 * Time.day, disorder: 2 * Time.second)

        public static func named(_ name: String) -> Parameters? {
            switch name {
            case "quick": return .quick
            case "standard": return .standard
            case "hot": return .hot
            case "steady": return .steady
            case "quick-steady": return .quickSteady
            default: return nil
            }
        }
    }

    public struct Order: Sendable, Equatable {
        public var orderID: Int64
        public var userID: Int64
        public var productID: Int64
        /// Cents; the JSON carries `amount` with two decimals.
        public var amountCents: Int64
        public var status: Status
        public var eventTimeMillis: Int64

        public var amount: Double { Double(amountCents) / 100 }
    }

    public enum Status: String, Sendable, CaseIterable {
        case paid, refunded, cancelled
    }

    public static let products: Int64 = 50_000
    /// The source schema of the reference topology, in its declared order.
    public static let schema = Schema([
        ("order_id", .int64), ("user_id", .int64), ("product_id", .int64), ("amount", .float64), ("status", .string),
    ])

    public let parameters: Parameters
    private let cdf: [Double]
    /// `guide[k]`: the first rank whose cumulative weight reaches k / 2¹⁶, so that a draw's binary
    /// search starts within one 2⁻¹⁶ slice of the distribution instead of the whole of it.
    private let guide: [Int32]
    private static let guideSlices = 1 << 16

    public init(_ parameters: Parameters) {
        precondition(parameters.events > 0 && parameters.users > 0)
        self.parameters = parameters
        // Cumulative Zipf weights of ranks 1…users; rank r is user_id r.
        var cdf = [Double](repeating: 0, count: parameters.users)
        var total = 0.0
        for r in 0..<parameters.users {
            total += 1 / pow(Double(r + 1), parameters.skew)
            cdf[r] = total
        }
        for r in cdf.indices { cdf[r] /= total }
        self.cdf = cdf
        var guide = [Int32](repeating: Int32(parameters.users - 1), count: Self.guideSlices + 1)
        var r = 0
        for k in 0...Self.guideSlices {
            let bound = Double(k) / Double(Self.guideSlices)
            while r < cdf.count - 1 && cdf[r] < bound { r += 1 }
            guide[k] = Int32(r)
        }
        self.guide = guide
    }

    /// Event `i` (0-based) of the stream.
    public func order(_ i: Int) -> Order {
        var g = Mixer(seed: parameters.seed, index: UInt64(i))
        let u = g.unit()
        // The first rank whose cumulative weight reaches u: between the guides of u's slice.
        let k = Int(u * Double(Self.guideSlices))
        var lo = Int(guide[k]), hi = Int(guide[k + 1])
        while lo < hi {
            let mid = (lo + hi) / 2
            if cdf[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        let product = Int64(g.next() % UInt64(ReferenceWorkload.products)) + 1
        let x = g.unit()
        let cents = 100 + Int64(x * x * 24_900)  // 1.00 … 250.00, most orders small
        let s = g.next() % 100
        let status: Status = s < 85 ? .paid : (s < 95 ? .refunded : .cancelled)
        let base = parameters.start + Int64((Double(i) / Double(parameters.events)) * Double(parameters.span))
        let jitter = parameters.disorder > 0 ? Int64(g.next() % UInt64(parameters.disorder + 1)) : 0
        let micros = base - jitter
        return Order(orderID: Int64(i) + 1, userID: Int64(lo + 1), productID: product, amountCents: cents,
                     status: status, eventTimeMillis: Time.floorDiv(micros, Time.millisecond))
    }

    /// The JSON payload of an order, as the load generator produces it.
    public static func json(_ o: Order, into out: inout [UInt8]) {
        out.append(contentsOf: Self.orderIDField)
        DecimalText.append(o.orderID, to: &out)
        out.append(contentsOf: Self.userIDField)
        DecimalText.append(o.userID, to: &out)
        out.append(contentsOf: Self.productIDField)
        DecimalText.append(o.productID, to: &out)
        out.append(contentsOf: Self.amountField)
        if o.amountCents < 0 { out.append(UInt8(ascii: "-")) }
        DecimalText.append(Int64(o.amountCents.magnitude / 100), to: &out)
        let cents = UInt8(o.amountCents.magnitude % 100)
        out.append(UInt8(ascii: "."))
        out.append(UInt8(ascii: "0") + cents / 10)
        out.append(UInt8(ascii: "0") + cents % 10)
        out.append(contentsOf: Self.statusField)
        out.append(contentsOf: o.status.rawValue.utf8)
        out.append(contentsOf: Self.eventTimestampField)
        DecimalText.append(o.eventTimeMillis, to: &out)
        out.append(UInt8(ascii: "}"))
    }

    private static let orderIDField = Array("{\"order_id\":".utf8), userIDField = Array(",\"user_id\":".utf8)
    private static let productIDField = Array(",\"product_id\":".utf8), amountField = Array(",\"amount\":".utf8)
    private static let statusField = Array(",\"status\":\"".utf8), eventTimestampField = Array("\",\"event_timestamp\":".utf8)

    /// The reference order as an Avro record (what `avro` encodes).
    public static let avroSchema = """
        {"type": "record", "name": "Order", "namespace": "tessera.reference", "fields": [
          {"name": "order_id", "type": "long"}, {"name": "user_id", "type": "long"}, {"name": "product_id", "type": "long"},
          {"name": "amount", "type": "double"},
          {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["paid", "refunded", "cancelled"]}},
          {"name": "event_timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
        """

    /// The Avro payload of an order in the schema registry's wire format (`avroSchema` registered
    /// under `schemaID`).
    public static func avro(_ o: Order, schemaID: UInt32, into out: inout [UInt8]) {
        out += [0, UInt8(schemaID >> 24), UInt8(schemaID >> 16 & 0xff), UInt8(schemaID >> 8 & 0xff), UInt8(schemaID & 0xff)]
        for v in [o.orderID, o.userID, o.productID] { Varint.append(Varint.zigzag(v), to: &out) }
        withUnsafeBytes(of: o.amount.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        Varint.append(Varint.zigzag(Int64(Status.allCases.firstIndex(of: o.status)!)), to: &out)
        Varint.append(Varint.zigzag(o.eventTimeMillis), to: &out)
    }

    /// The reference order as a Protobuf message, a serialized `FileDescriptorProto` (base64):
    /// `tessera/reference.proto`, proto3, `enum Status {paid = 0; refunded = 1; cancelled = 2}`,
    /// `message Order {int64 order_id = 1; int64 user_id = 2; int64 product_id = 3; double amount = 4;
    /// Status status = 5; int64 event_timestamp = 6}`.
    public static let protobufDescriptor = "Chd0ZXNzZXJhL3JlZmVyZW5jZS5wcm90bxIRdGVzc2VyYS5yZWZlcmVuY2UikgEKBU9yZGVyEhAKCG9yZGVyX2lkGAEgASgDEg8KB3VzZXJfaWQYAiABKAMSEgoKcHJvZHVjdF9pZBgDIAEoAxIOCgZhbW91bnQYBCABKAESKQoGc3RhdHVzGAUgASgOMhkudGVzc2VyYS5yZWZlcmVuY2UuU3RhdHVzEhcKD2V2ZW50X3RpbWVzdGFtcBgGIAEoAyovCgZTdGF0dXMSCAoEcGFpZBAAEgwKCHJlZnVuZGVkEAESDQoJY2FuY2VsbGVkEAJiBnByb3RvMw=="

    /// The Protobuf payload of an order in the schema registry's wire format (`protobufDescriptor`
    /// registered under `schemaID`; the message index list [0]).
    public static func protobuf(_ o: Order, schemaID: UInt32, into out: inout [UInt8]) {
        out += [0, UInt8(schemaID >> 24), UInt8(schemaID >> 16 & 0xff), UInt8(schemaID >> 8 & 0xff), UInt8(schemaID & 0xff), 0]
        for (field, v) in [(1, o.orderID), (2, o.userID), (3, o.productID)] {
            out.append(UInt8(field << 3))
            Varint.append(UInt64(bitPattern: v), to: &out)
        }
        out.append(4 << 3 | 1)
        withUnsafeBytes(of: o.amount.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        let status = Status.allCases.firstIndex(of: o.status)!
        if status != 0 {
            out.append(5 << 3)
            out.append(UInt8(status))
        }
        out.append(6 << 3)
        Varint.append(UInt64(bitPattern: o.eventTimeMillis), to: &out)
    }

    /// Appends an order to a batch with `schema`'s columns.
    public static func append(_ o: Order, to batch: inout ColumnBatch) {
        batch.eventTimes.append(o.eventTimeMillis * Time.millisecond)
        batch.columns[0].append(int: o.orderID)
        batch.columns[1].append(int: o.userID)
        batch.columns[2].append(int: o.productID)
        batch.columns[3].append(double: o.amount)
        batch.columns[4].append(string: o.status.rawValue)
    }
}

/// A counter-based generator: event `i` draws from its own stream, so any event can be produced
/// without producing the ones before it (workers can generate disjoint ranges in parallel).
struct Mixer {
    var state: UInt64
    init(seed: UInt64, index: UInt64) {
        state = StableHash.mix(seed &* 0x9e37_79b9_7f4a_7c15 ^ StableHash.mix(index &+ 0x632b_e59b_d9b4_e019))
    }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        return StableHash.mix(state)
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }
}
