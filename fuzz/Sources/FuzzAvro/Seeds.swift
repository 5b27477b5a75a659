import TesseraCore

/// Avro's binary encoding, by hand, for the seeds.
struct AvroBytes {
    var bytes: [UInt8]

    init(schema id: UInt32) { bytes = [0, UInt8(id >> 24), UInt8(id >> 16 & 0xff), UInt8(id >> 8 & 0xff), UInt8(id & 0xff)] }

    mutating func long(_ v: Int64) { Varint.append(Varint.zigzag(v), to: &bytes) }
    mutating func string(_ s: String) { long(Int64(s.utf8.count)); bytes += Array(s.utf8) }
    mutating func double(_ d: Double) { withUnsafeBytes(of: d.bitPattern.littleEndian) { bytes += $0 } }
    mutating func float(_ f: Float) { withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes += $0 } }
}

func avroSeeds() -> [(name: String, bytes: [UInt8])] {
    var v1 = AvroBytes(schema: 1)
    v1.long(912_345); v1.long(1001); v1.long(52); v1.double(37.5); v1.long(0); v1.long(1_767_225_600_123)
    v1.long(2); v1.string("a"); v1.float(1); v1.string("b"); v1.float(2); v1.long(0)
    var block = AvroBytes(schema: 0)
    block.bytes = []
    block.string("k"); block.long(1)
    v1.long(-1); v1.long(Int64(block.bytes.count)); v1.bytes += block.bytes; v1.long(0)

    var v2 = AvroBytes(schema: 2)
    v2.long(7); v2.long(1); v2.string("SAVE10"); v2.long(1); v2.long(1002); v2.long(3)
    v2.long(1); v2.long(2); v2.bytes += [0x30, 0x39]; v2.long(1_767_225_600_000)
    v2.bytes += [1, 2, 3, 4]; v2.bytes.append(1); v2.long(0); v2.string("refunded")

    var v3 = AvroBytes(schema: 3)
    v3.long(5); v3.long(9); v3.long(1003); v3.float(2.5); v3.string("cancelled")
    v3.long(1); v3.long(1); v3.string("x"); v3.long(1); v3.double(0.5); v3.long(0); v3.long(0)
    v3.long(1_767_225_600_000)

    var v4 = AvroBytes(schema: 4)
    v4.string("12.5"); v4.long(1)
    var unknown = AvroBytes(schema: 5)
    unknown.long(1)
    return [("v1", v1.bytes), ("v2", v2.bytes), ("v3", v3.bytes), ("mismatch", v4.bytes), ("unknown", unknown.bytes),
            ("not-framed", Array("{\"order_id\": 1}".utf8))]
}

/// Tokens libFuzzer splices in: framings of each schema id, varints of every length, block markers.
let avroDictionary: [String] = [
    "\u{0}\u{0}\u{0}\u{0}\u{1}", "\u{0}\u{0}\u{0}\u{0}\u{2}", "\u{0}\u{0}\u{0}\u{0}\u{3}", "\u{0}\u{0}\u{0}\u{0}\u{4}", "\u{0}\u{0}\u{0}\u{0}\u{5}",
    "\u{1}", "\u{2}", "\u{3}", "\u{7F}", "\u{80}\u{1}", "\u{FF}\u{FF}\u{FF}\u{FF}\u{F}", "paid", "refunded",
]
