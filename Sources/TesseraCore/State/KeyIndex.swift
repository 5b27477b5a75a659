import CIntrinsics

/// Maps entity keys to dense ids 0, 1, 2, … (the index of the entity's record).
///
/// One open-addressing array of 16-byte slots, probed linearly (at most 70 % full): a probe
/// touches one cache line, rarely two.
/// A single int64 join key (the common case) is stored in the slot itself; any other key (strings,
/// several join keys) is encoded to bytes — int64 as 8 little-endian bytes, string as a 4-byte
/// length and its UTF-8 — kept in a key store, and its slot holds the key's hash.
///
/// Ids are handed out in order of first appearance and never reused.
struct KeyIndex: @unchecked Sendable {  // the slot array is copied before a shared copy would be written (see `makeUnique`)
    let keyTypes: [ValueType]
    let singleInt: Bool

    private(set) var count = 0
    /// Slots: key (or hash) and id + 1 (0: empty).
    private var slots: UnsafeMutablePointer<Slot>
    private var capacity: Int
    private var owner: Owner
    /// Encoded keys (not single-int): bytes of id `i` are `keyBytes[keyOffsets[i]..<keyOffsets[i + 1]]`.
    private(set) var keyOffsets: [UInt32] = [0]
    private(set) var keyBytes: [UInt8] = []
    private var scratch: [UInt8] = []
    private var hashes: [UInt64] = []

    struct Slot {
        var key: UInt64
        var id: UInt32
        var reserved: UInt32
    }

    /// Owns a slot array (zeroed memory, mapped lazily); replaced, never shared, when written.
    final class Owner: @unchecked Sendable {
        let slots: UnsafeMutablePointer<Slot>
        let capacity: Int
        init(capacity: Int) {
            self.capacity = capacity
            let bytes = capacity * MemoryLayout<Slot>.stride
            guard let memory = tessera_map(bytes) else { fatalError("out of memory (\(bytes) bytes for the key index)") }
            slots = memory.bindMemory(to: Slot.self, capacity: capacity)
        }
        deinit { tessera_unmap(slots, capacity * MemoryLayout<Slot>.stride) }
    }

    static let noEntity = UInt32.max

    init(keyTypes: [ValueType]) {
        self.keyTypes = keyTypes
        singleInt = keyTypes == [.int64]
        capacity = 1024
        owner = Owner(capacity: capacity)
        slots = owner.slots
    }

    var memory: Int { capacity * MemoryLayout<Slot>.stride + keyOffsets.capacity * 4 + keyBytes.capacity }
    /// The bytes in use: the slots and the encoded keys.
    var usedBytes: Int { capacity * MemoryLayout<Slot>.stride + keyOffsets.count * 4 + keyBytes.count }

    mutating func makeUnique() {
        guard !isKnownUniquelyReferenced(&owner) else { return }
        let fresh = Owner(capacity: capacity)
        fresh.slots.update(from: slots, count: capacity)
        slots = fresh.slots
        owner = fresh
    }

    /// Resolves (inserting as needed) the entity of every row where `use[i]`; rows with a null key
    /// get `noEntity`. Returns the number of new entities (ids `count - added ..< count`).
    mutating func resolve(_ batch: ColumnBatch, keyFields: [Int], use: [Bool], into ids: inout [UInt32]) -> Int {
        let before = count
        let n = batch.count
        ids.removeAll(keepingCapacity: true)
        ids.append(contentsOf: repeatElement(KeyIndex.noEntity, count: n))
        makeUnique()
        if singleInt {
            let column = batch.columns[keyFields[0]]
            let allValid = column.validity.allSet
            var hashes = self.hashes
            self.hashes = []
            hashes.removeAll(keepingCapacity: true)
            hashes.append(contentsOf: repeatElement(0, count: n))
            // Hash every key, then probe each while the slot of a key further on is loading.
            column.ints.withUnsafeBufferPointer { keys in
                hashes.withUnsafeMutableBufferPointer { hashes in
                    for i in 0..<n { hashes[i] = StableHash.hash(int: keys[i]) }
                }
                hashes.withUnsafeBufferPointer { hashes in
                    ids.withUnsafeMutableBufferPointer { ids in
                        use.withUnsafeBufferPointer { use in
                            let distance = 16
                            for i in 0..<min(n, distance) { tessera_prefetch(slots + (Int(truncatingIfNeeded: hashes[i]) & (capacity - 1))) }
                            for i in 0..<n {
                                // `capacity` read each time: inserting a key may grow the index.
                                if i &+ distance < n { tessera_prefetch(slots + (Int(truncatingIfNeeded: hashes[i &+ distance]) & (capacity - 1))) }
                                guard use[i] && (allValid || column.validity[i]) else { continue }
                                ids[i] = id(int: keys[i], hash: hashes[i])
                            }
                        }
                    }
                }
            }
            self.hashes = hashes
        } else {
            for i in 0..<n {
                guard use[i], keyFields.allSatisfy({ batch.columns[$0].validity[i] }) else { continue }
                scratch.removeAll(keepingCapacity: true)
                for f in keyFields { KeyIndex.encode(batch.columns[f], row: i, into: &scratch) }
                ids[i] = scratch.withUnsafeBufferPointer { id(bytes: $0) }
            }
        }
        return count - before
    }

    static func encode(_ column: Column, row i: Int, into out: inout [UInt8]) {
        switch column.type {
        case .string:
            column.withUTF8(at: i) { bytes in
                withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { out.append(contentsOf: $0) }
                out.append(contentsOf: bytes)
            }
        default:
            withUnsafeBytes(of: column.ints[i].littleEndian) { out.append(contentsOf: $0) }
        }
    }

    /// The id of an int key, inserting it if new.
    @inline(__always)
    mutating func id(int key: Int64, hash: UInt64) -> UInt32 {
        let mask = capacity - 1
        var s = Int(truncatingIfNeeded: hash) & mask
        let k = UInt64(bitPattern: key)
        while true {
            let slot = slots[s]
            if slot.id == 0 { break }
            if slot.key == k { return slot.id - 1 }
            s = (s + 1) & mask
        }
        let id = UInt32(count)
        slots[s] = Slot(key: k, id: id + 1, reserved: 0)
        count += 1
        if count * 10 > capacity * 7 { rehash() }
        return id
    }

    mutating func id(bytes key: UnsafeBufferPointer<UInt8>) -> UInt32 {
        let mask = capacity - 1
        let hash = StableHash.hash(bytes: key)
        var s = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = slots[s]
            if slot.id == 0 { break }
            if slot.key == hash && withKey(slot.id - 1, { $0.elementsEqual(key) }) { return slot.id - 1 }
            s = (s + 1) & mask
        }
        let id = UInt32(count)
        slots[s] = Slot(key: hash, id: id + 1, reserved: 0)
        keyBytes.append(contentsOf: key)
        keyOffsets.append(UInt32(keyBytes.count))
        count += 1
        if count * 10 > capacity * 7 { rehash() }
        return id
    }

    /// Inserts a key known to be new (restoring state): int keys by value, others by their bytes.
    mutating func insertRestored(int key: Int64) {
        _ = id(int: key, hash: StableHash.hash(int: key))
    }

    func withKey<R>(_ id: UInt32, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        let start = Int(keyOffsets[Int(id)]), end = Int(keyOffsets[Int(id) + 1])
        return keyBytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[start..<end])) }
    }

    private mutating func rehash() {
        let old = slots, oldCapacity = capacity
        capacity *= 2
        let owner = Owner(capacity: capacity)
        let fresh = owner.slots
        let mask = capacity - 1
        for i in 0..<oldCapacity where old[i].id != 0 {
            let hash = singleInt ? StableHash.hash(int: Int64(bitPattern: old[i].key)) : old[i].key
            var s = Int(truncatingIfNeeded: hash) & mask
            while fresh[s].id != 0 { s = (s + 1) & mask }
            fresh[s] = old[i]
        }
        slots = fresh
        self.owner = owner
    }

    /// Appends the join-key values of an encoded key (not single-int) to one column per join key.
    func appendKey(_ id: UInt32, to columns: inout [Column]) {
        withKey(id) { bytes in
            var p = 0
            for j in keyTypes.indices {
                if keyTypes[j] == .string {
                    let n = Int(UInt32(bytes[p]) | UInt32(bytes[p + 1]) << 8 | UInt32(bytes[p + 2]) << 16 | UInt32(bytes[p + 3]) << 24)
                    columns[j].append(utf8: UnsafeBufferPointer(rebasing: bytes[p + 4..<p + 4 + n]))
                    p += 4 + n
                } else {
                    var v: UInt64 = 0
                    for b in 0..<8 { v |= UInt64(bytes[p + b]) << UInt64(8 * b) }
                    columns[j].append(int: Int64(bitPattern: v))
                    p += 8
                }
            }
        }
    }

    /// The encoded keys (not single-int), for a checkpoint; the table is rebuilt on restore.
    func serializeEncodedKeys(into w: inout ByteWriter) {
        w.write(array: keyOffsets)
        w.write(array: keyBytes)
    }

    /// Restores encoded keys saved by `serializeEncodedKeys` for `n` entities.
    mutating func restoreEncodedKeys(from r: inout ByteReader, count n: Int) throws {
        let offsets: [UInt32] = try r.readArray()
        let bytes: [UInt8] = try r.readArray()
        guard offsets.count == n + 1, offsets.first == 0, Int(offsets.last!) == bytes.count,
              zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw StateFormatError(description: "entity keys are corrupt")
        }
        for i in 0..<n {
            let before = count
            let key = Array(bytes[Int(offsets[i])..<Int(offsets[i + 1])])
            let id = key.withUnsafeBufferPointer { self.id(bytes: $0) }
            guard count == before + 1, Int(id) == i else { throw StateFormatError(description: "entity keys are corrupt: a key appears twice") }
        }
    }
}
