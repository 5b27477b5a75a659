import Foundation
import TesseraCore

/// The distinct join keys of an entity frame for one view, each with a dense id (0, 1, 2, … in
/// order of first appearance), plus the range of the frame's timestamps for that key: an offline
/// row outside it cannot be the answer for any of the key's rows and is dropped while scanning.
///
/// Open addressing with linear probing. A single int64 join key is stored in the slot itself;
/// any other key (strings, several keys) is stored once, encoded (int64 as 8 bytes, a string as its
/// 4-byte length then its bytes), and the slot holds its hash. Read-only once built, so scanning
/// threads share it.
struct KeyDictionary: Sendable {
    struct Slot: Sendable {
        /// The key (single int64 key) or the encoded key's hash.
        var key: UInt64
        var id: UInt32
        var minTime: Micros
        var maxTime: Micros
    }

    static let empty = UInt32.max

    /// Whether keys are a single int64 (stored in the slot) or encoded bytes.
    let singleInt: Bool
    private(set) var slots: [Slot]
    private let mask: Int
    private(set) var count = 0
    private var encoded: [UInt8] = []
    private var encodedStart: [Int] = [0]

    init(singleInt: Bool, expected: Int) {
        self.singleInt = singleInt
        var capacity = 16
        while capacity < 2 * expected { capacity <<= 1 }
        slots = Array(repeating: Slot(key: 0, id: KeyDictionary.empty, minTime: 0, maxTime: 0), count: capacity)
        mask = capacity - 1
    }

    @inline(__always)
    static func hash(int key: Int64) -> UInt64 { StableHash.hash(int: key) }

    /// The id of `key`, adding it (and widening its time range to include `time`).
    mutating func insert(int key: Int64, time: Micros) -> UInt32 {
        var s = Int(truncatingIfNeeded: KeyDictionary.hash(int: key)) & mask
        let bits = UInt64(bitPattern: key)
        while slots[s].id != KeyDictionary.empty {
            if slots[s].key == bits { return widen(s, time) }
            s = (s + 1) & mask
        }
        return add(s, key: bits, time: time)
    }

    mutating func insert(encoded key: UnsafeBufferPointer<UInt8>, time: Micros) -> UInt32 {
        let h = StableHash.hash(bytes: key)
        var s = Int(truncatingIfNeeded: h) & mask
        while slots[s].id != KeyDictionary.empty {
            if slots[s].key == h && equal(Int(slots[s].id), key) { return widen(s, time) }
            s = (s + 1) & mask
        }
        encoded.append(contentsOf: key)
        encodedStart.append(encoded.count)
        return add(s, key: h, time: time)
    }

    /// The slot of `key`, or nil when no entity row has it.
    @inline(__always)
    func lookup(int key: Int64, in slots: UnsafeBufferPointer<Slot>) -> Slot? {
        var s = Int(truncatingIfNeeded: KeyDictionary.hash(int: key)) & mask
        let bits = UInt64(bitPattern: key)
        while true {
            let slot = slots[s]
            if slot.id == KeyDictionary.empty { return nil }
            if slot.key == bits { return slot }
            s = (s + 1) & mask
        }
    }

    func lookup(encoded key: UnsafeBufferPointer<UInt8>, in slots: UnsafeBufferPointer<Slot>) -> Slot? {
        let h = StableHash.hash(bytes: key)
        var s = Int(truncatingIfNeeded: h) & mask
        while true {
            let slot = slots[s]
            if slot.id == KeyDictionary.empty { return nil }
            if slot.key == h && equal(Int(slot.id), key) { return slot }
            s = (s + 1) & mask
        }
    }

    private mutating func add(_ s: Int, key: UInt64, time: Micros) -> UInt32 {
        let id = UInt32(count)
        slots[s] = Slot(key: key, id: id, minTime: time, maxTime: time)
        count += 1
        precondition(2 * count <= slots.count, "KeyDictionary sized for fewer keys")
        return id
    }

    private mutating func widen(_ s: Int, _ time: Micros) -> UInt32 {
        slots[s].minTime = min(slots[s].minTime, time)
        slots[s].maxTime = max(slots[s].maxTime, time)
        return slots[s].id
    }

    private func equal(_ id: Int, _ key: UnsafeBufferPointer<UInt8>) -> Bool {
        let start = encodedStart[id], end = encodedStart[id + 1]
        guard end - start == key.count else { return false }
        return encoded.withUnsafeBufferPointer { all in
            key.isEmpty || memcmp(all.baseAddress! + start, key.baseAddress!, key.count) == 0
        }
    }
}

/// Encodes the join keys of one row: int64 as 8 little-endian bytes, a string as its 4-byte length
/// and its bytes, so that equal tuples, and only those, have equal encodings.
struct KeyEncoder {
    private(set) var bytes: [UInt8] = []

    /// Encodes row `row` of `columns` (int64 or string); false when a key is null.
    mutating func encode(_ columns: [Column], row: Int) -> Bool {
        bytes.removeAll(keepingCapacity: true)
        for column in columns {
            guard column.validity[row] else { return false }
            switch column.type {
            case .string:
                let start = Int(column.offsets[row]), end = Int(column.offsets[row + 1])
                withUnsafeBytes(of: UInt32(end - start).littleEndian) { bytes.append(contentsOf: $0) }
                bytes.append(contentsOf: column.bytes[start..<end])
            default:
                withUnsafeBytes(of: column.ints[row].littleEndian) { bytes.append(contentsOf: $0) }
            }
        }
        return true
    }
}
