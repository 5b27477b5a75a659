import Testing
import TesseraCore
import TesseraTestSupport
@testable import TesseraOffline

@Suite struct EncodingTests {
    @Test func crc32MatchesTheCheckValue() {
        let data = Array("123456789".utf8)
        #expect(data.withUnsafeBytes { PageChecksum.crc32($0) } == 0xCBF4_3926)
        var generator = SeededGenerator(seed: 7)
        let long = (0..<5_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        // The folded CRC (64 bytes and more, in 16-byte steps, the rest bytewise) agrees with the
        // bitwise definition at every length around its steps and at any alignment.
        let lengths = Array(0...300) + [1_023, 1_024, 1_025, 4_095, 4_999 - 3]
        for start in [0, 1, 3, 8] {
            for n in lengths where start + n <= long.count {
                var crc: UInt32 = 0xFFFF_FFFF
                for b in long[start..<start + n] {
                    crc ^= UInt32(b)
                    for _ in 0..<8 { crc = crc & 1 != 0 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
                }
                #expect(long[start..<start + n].withUnsafeBytes { PageChecksum.crc32($0) } == ~crc, "\(n) bytes from \(start)")
            }
        }
    }

    @Test func bitPackedRunMatchesTheSpecExample() throws {
        // Encodings.md: values 0...7 with bit width 3 pack into 10001000 11000110 11111010.
        let bytes: [UInt8] = [0x03, 0x88, 0xC6, 0xFA]   // header: 1 group << 1 | 1
        var out = [UInt32](repeating: 99, count: 8)
        try bytes.withUnsafeBytes { buf in
            try out.withUnsafeMutableBufferPointer { _ = try Hybrid.decode(buf, bitWidth: 3, count: 8, into: $0.baseAddress!) }
        }
        #expect(out == [0, 1, 2, 3, 4, 5, 6, 7])
        var encoded: [UInt8] = []
        [UInt32](0..<8).withUnsafeBufferPointer { Hybrid.encode($0, bitWidth: 3, into: &encoded) }
        #expect(encoded == bytes)
    }

    @Test func hybridRoundTripsRandomSequences() throws {
        var g = SeededGenerator(seed: 11)
        for trial in 0..<300 {
            let width = 1 + Int(g.next() % 32)
            let n = Int(g.next() % 3000)
            let maxValue: UInt64 = width == 32 ? UInt64(UInt32.max) : (1 << UInt64(width)) - 1
            var values: [UInt32] = []
            while values.count < n {
                let v = UInt32(g.next() % (maxValue + 1))
                let run = g.next() % 3 == 0 ? Int(g.next() % 40) : 1
                values.append(contentsOf: repeatElement(v, count: min(run, n - values.count)))
            }
            var encoded: [UInt8] = []
            values.withUnsafeBufferPointer { Hybrid.encode($0, bitWidth: width, into: &encoded) }
            var decoded = [UInt32](repeating: 0, count: n)
            let used = try encoded.withUnsafeBytes { buf in
                try decoded.withUnsafeMutableBufferPointer { out in
                    try Hybrid.decode(buf, bitWidth: width, count: n, into: out.baseAddress ?? UnsafeMutablePointer(bitPattern: 8)!)
                }
            }
            #expect(decoded == values, "trial \(trial) width \(width)")
            #expect(used == encoded.count, "trial \(trial): the decoder stops where the encoder ended")
        }
    }

    @Test func thriftSkipsUnknownFieldsOfEveryType() throws {
        // A KeyValue struct with unknown fields 3...12 of every compact type around the known ones.
        var w = ThriftWriter()
        w.field(1, string: "key")
        var bytes = w.bytes
        bytes += [0x23, 0x7F]                                   // 3: byte
        bytes += [0x14, 0x04]                                   // 4: i16 (zigzag 2)
        bytes += [0x16, 0xFE, 0xFF, 0xFF, 0xFF, 0x1F]           // 5: i64
        bytes += [0x17] + [UInt8](repeating: 0x40, count: 8)    // 6: double
        bytes += [0x11]                                          // 7: bool true (in the type nibble)
        bytes += [0x19, 0x31, 0x01, 0x02, 0x02]                 // 8: list<bool> of 3 (one byte each)
        bytes += [0x1A, 0x25, 0x02, 0x04]                       // 9: set<i32> of 2
        bytes += [0x1B, 0x02, 0x85, 0x01, 0x61, 0x02, 0x01, 0x62, 0x04]   // 10: map<binary,i32> of 2
        bytes += [0x1C, 0x15, 0x02, 0x1C, 0x18, 0x01, 0x78, 0x00, 0x00]   // 11: struct { i32, struct { binary } }
        bytes += [0x08, 0x50, 0x01, 0x7A]                       // 40: binary "z" (long-form header)
        bytes += [0x08, 0x04, 0x05, 0x76, 0x61, 0x6C, 0x75, 0x65]   // 2: value "value" (long form, id back down)
        bytes += [0x00]
        var r = ThriftReader(bytes, context: "test")
        let kv = try r.readKeyValue()
        #expect(kv.0 == "key" && kv.1 == "value")
        #expect(r.pos == bytes.count)

        // Truncations of the same bytes throw instead of trapping.
        for n in 0..<bytes.count {
            var t = ThriftReader(Array(bytes[0..<n]), context: "test")
            #expect(throws: ParquetError.self) { _ = try t.readKeyValue() }
        }
    }

    @Test func thriftIntegersRoundTrip() throws {
        var w = ThriftWriter()
        let values: [Int64] = [0, 1, -1, 63, -64, 1 << 40, .min, .max]
        for (i, v) in values.enumerated() { w.field(Int16(i + 1) * 7, i64: v) }
        w.finish()
        var r = ThriftReader(w.bytes, context: "test")
        try r.beginStruct()
        var read: [Int64] = []
        while let f = try r.nextField() { read.append(try r.i64(f.type)) }
        #expect(read == values)
    }
}
