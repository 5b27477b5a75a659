// Value and level encodings: the RLE/bit-packed hybrid (levels, dictionary indices, RLE booleans),
// and the decoders for DELTA_BINARY_PACKED, DELTA_LENGTH_BYTE_ARRAY and DELTA_BYTE_ARRAY.

import TesseraCore

func corruptPage(_ what: String) -> ParquetError {
    ParquetError("corrupt page: \(what)")
}

/// A bounds-checked reader over raw page bytes.
struct ByteCursor {
    let buf: UnsafeRawBufferPointer
    var pos = 0

    init(_ buf: UnsafeRawBufferPointer) {
        self.buf = buf
    }

    var remaining: Int { buf.count - pos }

    mutating func byte() throws -> UInt8 {
        guard pos < buf.count else { throw corruptPage("unexpected end of data") }
        let b = buf[pos]
        pos += 1
        return b
    }

    mutating func varint() throws -> UInt64 {
        guard let v = try Varint.read({ try byte() }) else { throw corruptPage("varint too long") }
        return v
    }

    mutating func zigzag() throws -> Int64 {
        Varint.unzigzag(try varint())
    }

    mutating func u32() throws -> UInt32 {
        guard remaining >= 4 else { throw corruptPage("unexpected end of data") }
        let v = buf.loadUnaligned(fromByteOffset: pos, as: UInt32.self).littleEndian
        pos += 4
        return v
    }

    mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= remaining else { throw corruptPage("a length of \(n) bytes exceeds the page") }
        let r = UnsafeRawBufferPointer(rebasing: buf[pos..<(pos + n)])
        pos += n
        return r
    }
}

/// Bits needed to represent `maxValue` (0 for 0).
func bitWidth(_ maxValue: UInt64) -> Int {
    maxValue == 0 ? 0 : 64 - maxValue.leadingZeroBitCount
}

enum Hybrid {
    /// Longest bit-packed run the encoder writes (63 groups of 8, as other writers do).
    static let maxPackedRun = 504

    /// Appends the RLE/bit-packed hybrid encoding of `values` (each below 2^bitWidth, bitWidth 1...32).
    /// Runs of 8 or more equal values become RLE runs, the rest bit-packed groups of 8.
    static func encode(_ v: UnsafeBufferPointer<UInt32>, bitWidth w: Int, into out: inout [UInt8]) {
        let n = v.count
        var i = 0
        var packStart = 0
        while i < n {
            let x = v[i]
            var j = i + 1
            while j < n && v[j] == x { j += 1 }
            if j - i >= 8 {
                let pending = i - packStart
                let pad = (8 - pending & 7) & 7
                if pad > 0 {
                    // Complete the pending bit-packed group with the run's first values.
                    i += pad
                    if j - i < 8 {
                        i = j
                        continue
                    }
                }
                appendPacked(v, from: packStart, count: i - packStart, bitWidth: w, into: &out)
                Varint.append(UInt64(j - i) << 1, to: &out)
                var value = x
                for _ in 0..<((w + 7) / 8) {
                    out.append(UInt8(truncatingIfNeeded: value))
                    value >>= 8
                }
                i = j
                packStart = j
            } else {
                i = j
            }
        }
        appendPacked(v, from: packStart, count: n - packStart, bitWidth: w, into: &out)
    }

    /// Bit-packed runs for `count` values (a multiple of 8 except at the very end, where it is zero-padded).
    private static func appendPacked(_ v: UnsafeBufferPointer<UInt32>, from start: Int, count: Int, bitWidth w: Int,
                                     into out: inout [UInt8]) {
        var s = start
        var left = count
        while left > 0 {
            let chunk = min(left, maxPackedRun)
            let groups = (chunk + 7) / 8
            Varint.append(UInt64(groups) << 1 | 1, to: &out)
            var acc: UInt64 = 0
            var bits = 0
            for k in 0..<(groups * 8) {
                let x: UInt64 = k < chunk ? UInt64(v[s + k]) : 0
                acc |= x << UInt64(bits)
                bits += w
                while bits >= 8 {
                    out.append(UInt8(truncatingIfNeeded: acc))
                    acc >>= 8
                    bits -= 8
                }
            }
            s += chunk
            left -= chunk
        }
    }

    /// Decodes `n` values of width `w` (0...32) from `buf` into `out`; returns the bytes consumed.
    /// A last bit-packed run that stops early is accepted as long as it holds the values needed.
    @discardableResult
    static func decode(_ buf: UnsafeRawBufferPointer, bitWidth w: Int, count n: Int,
                       into out: UnsafeMutablePointer<UInt32>) throws -> Int {
        guard w >= 0, w <= 32 else { throw corruptPage("bit width \(w) is out of range") }
        var c = ByteCursor(buf)
        var i = 0
        let mask: UInt64 = (1 << UInt64(w)) - 1
        while i < n {
            let header = try c.varint()
            if header & 1 == 1 {
                let groups = Int(min(header >> 1, UInt64(n)))
                var values = groups * 8
                let bytes = groups * w
                if bytes > c.remaining {
                    values = w == 0 ? values : c.remaining * 8 / w
                }
                let take = min(values, n - i)
                guard take > 0 || groups == 0 else { throw corruptPage("bit-packed run exceeds the data") }
                if w == 0 {
                    (out + i).update(repeating: 0, count: take)
                } else {
                    var p = c.pos
                    var acc: UInt64 = 0
                    var bits = 0
                    for k in 0..<take {
                        while bits < w {
                            acc |= UInt64(buf[p]) << UInt64(bits)
                            p += 1
                            bits += 8
                        }
                        out[i + k] = UInt32(truncatingIfNeeded: acc & mask)
                        acc >>= UInt64(w)
                        bits -= w
                    }
                }
                i += take
                c.pos += min(bytes, c.remaining)
            } else {
                let count = header >> 1
                var value: UInt64 = 0
                for k in 0..<((w + 7) / 8) {
                    value |= UInt64(try c.byte()) << UInt64(8 * k)
                }
                guard value <= mask else { throw corruptPage("RLE value \(value) exceeds bit width \(w)") }
                let take = Int(min(count, UInt64(n - i)))
                (out + i).update(repeating: UInt32(value), count: take)
                i += take
            }
        }
        return c.pos
    }
}

/// Reads bit-packed values of any width 0...64, least significant bit first.
private struct BitReader {
    let buf: UnsafeRawBufferPointer
    var bytePos: Int
    var bitPos = 0

    mutating func read(_ w: Int) -> UInt64 {
        var result: UInt64 = 0
        var got = 0
        while got < w {
            let byte = UInt64(buf[bytePos])
            let take = min(8 - bitPos, w - got)
            let bits = (byte >> UInt64(bitPos)) & ((1 << UInt64(take)) - 1)
            result |= bits << UInt64(got)
            got += take
            bitPos += take
            if bitPos == 8 {
                bitPos = 0
                bytePos += 1
            }
        }
        return result
    }
}

enum Delta {
    /// DELTA_BINARY_PACKED: decodes exactly `n` values (the header must say `n`), appends them to `out`,
    /// and returns the bytes consumed.
    static func decodeBinaryPacked(_ buf: UnsafeRawBufferPointer, count n: Int, into out: inout [Int64]) throws -> Int {
        var c = ByteCursor(buf)
        let blockSize = try c.varint()
        let miniblocks = try c.varint()
        let total = try c.varint()
        let first = try c.zigzag()
        guard blockSize > 0, blockSize % 128 == 0, blockSize <= 1 << 16, miniblocks > 0, miniblocks <= blockSize,
              blockSize % miniblocks == 0, (blockSize / miniblocks) % 32 == 0
        else { throw corruptPage("invalid DELTA_BINARY_PACKED header") }
        guard total == UInt64(n) else {
            throw corruptPage("DELTA_BINARY_PACKED holds \(total) values, \(n) expected")
        }
        guard n > 0 else { return c.pos }
        let perMiniblock = Int(blockSize / miniblocks)
        out.reserveCapacity(out.count + n)
        out.append(first)
        var previous = first
        var remaining = n - 1
        while remaining > 0 {
            let minDelta = try c.zigzag()
            let widths = try c.take(Int(miniblocks))
            for m in 0..<Int(miniblocks) where remaining > 0 {
                let w = Int(widths[m])
                guard w <= 64 else { throw corruptPage("bit width \(w) is out of range") }
                let bytes = perMiniblock * w / 8
                let region = try c.take(bytes)
                var reader = BitReader(buf: region, bytePos: 0)
                let take = min(perMiniblock, remaining)
                for _ in 0..<take {
                    previous = previous &+ minDelta &+ Int64(bitPattern: reader.read(w))
                    out.append(previous)
                }
                remaining -= take
            }
        }
        return c.pos
    }

    /// DELTA_LENGTH_BYTE_ARRAY: appends `n` values to `offsets`/`bytes`; returns the bytes consumed.
    static func decodeLengthByteArray(_ buf: UnsafeRawBufferPointer, count n: Int, scratch: inout [Int64],
                                      offsets: inout [Int32], bytes: inout [UInt8]) throws -> Int {
        scratch.removeAll(keepingCapacity: true)
        var c = ByteCursor(buf)
        c.pos = try decodeBinaryPacked(buf, count: n, into: &scratch)
        for length in scratch {
            guard length >= 0, length <= c.remaining else { throw corruptPage("string length exceeds the page") }
            let value = try c.take(Int(length))
            bytes.append(contentsOf: value)
            guard bytes.count <= Int(Int32.max) else { throw ParquetError("a string column chunk exceeds 2 GiB") }
            offsets.append(Int32(bytes.count))
        }
        return c.pos
    }

    /// DELTA_BYTE_ARRAY (incremental encoding): appends `n` values to `offsets`/`bytes`.
    static func decodeByteArray(_ buf: UnsafeRawBufferPointer, count n: Int, scratch: inout [Int64],
                                offsets: inout [Int32], bytes: inout [UInt8]) throws {
        var prefixes: [Int64] = []
        let used = try decodeBinaryPacked(buf, count: n, into: &prefixes)
        var suffixOffsets: [Int32] = [0]
        var suffixBytes: [UInt8] = []
        _ = try decodeLengthByteArray(UnsafeRawBufferPointer(rebasing: buf[used...]), count: n, scratch: &scratch,
                                      offsets: &suffixOffsets, bytes: &suffixBytes)
        var previousStart = bytes.count
        var previousLength = 0
        for i in 0..<n {
            let prefix = prefixes[i]
            guard prefix >= 0, prefix <= previousLength else { throw corruptPage("invalid DELTA_BYTE_ARRAY prefix") }
            let start = bytes.count
            if prefix > 0 {
                // Copy from the previous value (indices stay valid while appending).
                for k in 0..<Int(prefix) { bytes.append(bytes[previousStart + k]) }
            }
            bytes.append(contentsOf: suffixBytes[Int(suffixOffsets[i])..<Int(suffixOffsets[i + 1])])
            guard bytes.count <= Int(Int32.max) else { throw ParquetError("a string column chunk exceeds 2 GiB") }
            offsets.append(Int32(bytes.count))
            previousStart = start
            previousLength = bytes.count - start
        }
    }

    /// DELTA_BINARY_PACKED: blocks of 128 values in 4 miniblocks of 32, each miniblock's
    /// deltas (less the block's least delta) bit-packed at the width its largest one needs.
    /// Values that change little from row to row take a few bits each.
    static func encodeBinaryPacked(_ v: UnsafeBufferPointer<Int64>, into out: inout [UInt8]) {
        let blockSize = 128, miniblocks = 4, perMiniblock = 32
        Varint.append(UInt64(blockSize), to: &out)
        Varint.append(UInt64(miniblocks), to: &out)
        Varint.append(UInt64(v.count), to: &out)
        Varint.append(Varint.zigzag(v.first ?? 0), to: &out)
        guard v.count > 1 else { return }
        // Each block is written into `block` through a pointer (its least delta, the miniblocks'
        // widths, their packed deltas: at most 10 + 4 + 128 · 8 bytes), then appended at once.
        let blockBytes = 10 + miniblocks + blockSize * 8
        out.reserveCapacity(out.count + (v.count + blockSize - 1) / blockSize * (blockBytes / 4))
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: blockSize + blockBytes / 8 + 1) { scratch in
            let deltas = scratch.baseAddress!
            let block = UnsafeMutableRawPointer(deltas + blockSize)
            let values = v.baseAddress!
            var i = 1
            while i < v.count {
                let count = min(blockSize, v.count - i)
                var least = Int64.max
                for k in 0..<count {
                    let d = values[i &+ k] &- values[i &+ k &- 1]
                    deltas[k] = UInt64(bitPattern: d)
                    least = min(least, d)
                }
                let needed = (count + perMiniblock - 1) / perMiniblock
                for k in 0..<count { deltas[k] &-= UInt64(bitPattern: least) }
                for k in count..<needed * perMiniblock { deltas[k] = 0 }
                var o = Varint.write(Varint.zigzag(least), to: block)
                let widths = o
                o += miniblocks
                for m in 0..<miniblocks {
                    guard m < needed else { widths.storeBytes(of: 0, toByteOffset: m, as: UInt8.self); continue }
                    let miniblock = deltas + m &* perMiniblock
                    var all: UInt64 = 0
                    for k in 0..<perMiniblock { all |= miniblock[k] }
                    let w = bitWidth(all)
                    widths.storeBytes(of: UInt8(w), toByteOffset: m, as: UInt8.self)
                    o = pack(miniblock, bitWidth: w, to: o)
                }
                out.append(contentsOf: UnsafeRawBufferPointer(start: block, count: o - block))
                i += count
            }
        }
    }

    /// Packs 32 values (each below 2^width) least significant bit first at `o` (4 · width bytes);
    /// returns the end.
    @inline(__always)
    static func pack(_ values: UnsafePointer<UInt64>, bitWidth w: Int, to o: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        guard w > 0 else { return o }
        var o = o
        var acc: UInt64 = 0
        var used = 0
        for k in 0..<32 {
            let value = values[k]
            acc |= value &<< UInt64(used)
            used &+= w
            if used >= 64 {
                o.storeBytes(of: acc.littleEndian, as: UInt64.self)
                o += 8
                used &-= 64
                acc = used > 0 ? value &>> UInt64(w &- used) : 0
            }
        }
        // 32 · w bits end on a byte: what is left is 0 or 32 bits.
        if used > 0 {
            o.storeBytes(of: UInt32(truncatingIfNeeded: acc).littleEndian, as: UInt32.self)
            o += 4
        }
        return o
    }
}
