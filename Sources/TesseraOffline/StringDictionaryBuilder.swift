#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Distinct byte strings in insertion order, found through an open-addressing hash table.
struct StringDictionaryBuilder {
    private(set) var offsets: [Int32] = [0]
    private(set) var bytes: [UInt8] = []
    private var hashes: [UInt64] = []
    private var table: [Int32] = []   // entry index + 1; 0 = empty
    private var mask = 0

    var count: Int { offsets.count - 1 }
    var byteCount: Int { bytes.count }

    mutating func reset() {
        offsets.removeAll(keepingCapacity: true)
        offsets.append(0)
        bytes.removeAll(keepingCapacity: true)
        hashes.removeAll(keepingCapacity: true)
        if table.count != 1024 {
            table = [Int32](repeating: 0, count: 1024)
        } else {
            for i in table.indices { table[i] = 0 }
        }
        mask = table.count - 1
    }

    /// The index of `value`, inserting it when new.
    mutating func insert(_ value: UnsafeRawBufferPointer) -> Int {
        let h = hashBytes(value)
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let e = Int(table[slot])
            if e == 0 { break }
            let index = e - 1
            if hashes[index] == h && equals(index, value) { return index }
            slot = (slot + 1) & mask
        }
        let index = count
        bytes.append(contentsOf: value)
        offsets.append(Int32(truncatingIfNeeded: bytes.count))
        hashes.append(h)
        table[slot] = Int32(index + 1)
        if count * 2 > table.count { grow() }
        return index
    }

    private func equals(_ index: Int, _ value: UnsafeRawBufferPointer) -> Bool {
        let s = Int(offsets[index]), e = Int(offsets[index + 1])
        guard e - s == value.count else { return false }
        if value.isEmpty { return true }
        return bytes.withUnsafeBytes { all in
            memcmp(all.baseAddress! + s, value.baseAddress!, value.count) == 0
        }
    }

    private mutating func grow() {
        table = [Int32](repeating: 0, count: table.count * 2)
        mask = table.count - 1
        for (index, h) in hashes.enumerated() {
            var slot = Int(truncatingIfNeeded: h) & mask
            while table[slot] != 0 { slot = (slot + 1) & mask }
            table[slot] = Int32(index + 1)
        }
    }

    /// PLAIN encoding of the entries (4-byte length + bytes each): the dictionary page body.
    func appendPlain(to out: inout [UInt8]) {
        for i in 0..<count {
            let s = Int(offsets[i]), e = Int(offsets[i + 1])
            withUnsafeBytes(of: UInt32(e - s).littleEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: bytes[s..<e])
        }
    }
}

func hashBytes(_ value: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(value.count)
    let n = value.count
    guard let p = value.baseAddress else { return h &* 0xBF58_476D_1CE4_E5B9 }
    var i = 0
    while i + 8 <= n {
        let k = p.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        h = (h ^ k) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 31
        i += 8
    }
    var tail: UInt64 = 0
    var shift: UInt64 = 0
    while i < n {
        tail |= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << shift
        shift += 8
        i += 1
    }
    h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
    h ^= h >> 29
    h = h &* 0xBF58_476D_1CE4_E5B9
    h ^= h >> 32
    return h
}
