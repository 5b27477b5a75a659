/// Maps entity keys to dense ids 0, 1, 2, … so that all per-entity state lives in flat arrays.
///
/// One int64 join key (the common case) is stored and probed as a plain integer; any other key
/// (strings, several join keys) is encoded to bytes: int64 as 8 little-endian bytes, string as a
/// 4-byte length and its UTF-8.
struct EntityIndex: Sendable {
    let keyTypes: [ValueType]
    var singleInt: Bool { keyTypes == [.int64] }

    private(set) var count = 0
    /// Single int64 key: the key of each id.
    private(set) var intKeys: [Int64] = []
    /// Encoded keys: bytes of id `i` are `keyBytes[keyOffsets[i]..<keyOffsets[i + 1]]`.
    private var keyOffsets: [UInt32] = [0]
    private var keyBytes: [UInt8] = []
    /// Open addressing: id + 1, or 0 for an empty slot. For int keys `tableKeys` mirrors the key.
    private var table: [UInt32] = Array(repeating: 0, count: 1024)
    private var tableKeys: [Int64] = Array(repeating: 0, count: 1024)
    private var scratch: [UInt8] = []

    static let noEntity = UInt32.max

    var memory: Int {
        intKeys.capacity * 8 + keyOffsets.capacity * 4 + keyBytes.capacity + table.capacity * 4 + tableKeys.capacity * 8
    }

    init(keyTypes: [ValueType]) {
        self.keyTypes = keyTypes
    }

    /// Resolves (inserting as needed) the entity of every row where `use[i]`; rows with a null key
    /// get `noEntity`. Returns the number of new entities.
    mutating func resolve(_ batch: ColumnBatch, keyFields: [Int], use: [Bool], into ids: inout [UInt32]) -> Int {
        let before = count
        ids.removeAll(keepingCapacity: true)
        let n = batch.count
        if singleInt {
            let column = batch.columns[keyFields[0]]
            for i in 0..<n {
                guard use[i], column.validity[i] else { ids.append(EntityIndex.noEntity); continue }
                ids.append(id(int: column.ints[i]))
            }
        } else {
            for i in 0..<n {
                guard use[i], keyFields.allSatisfy({ batch.columns[$0].validity[i] }) else {
                    ids.append(EntityIndex.noEntity); continue
                }
                scratch.removeAll(keepingCapacity: true)
                for f in keyFields { EntityIndex.encode(batch.columns[f], row: i, into: &scratch) }
                ids.append(scratch.withUnsafeBufferPointer { id(bytes: $0) })
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
    mutating func id(int key: Int64) -> UInt32 {
        let mask = table.count - 1
        var slot = Int(truncatingIfNeeded: StableHash.hash(int: key)) & mask
        while true {
            let entry = table[slot]
            if entry == 0 { break }
            if tableKeys[slot] == key { return entry - 1 }
            slot = (slot + 1) & mask
        }
        let id = UInt32(count)
        table[slot] = id + 1
        tableKeys[slot] = key
        intKeys.append(key)
        count += 1
        if count * 2 > table.count { rehash() }
        return id
    }

    mutating func id(bytes key: UnsafeBufferPointer<UInt8>) -> UInt32 {
        let mask = table.count - 1
        var slot = Int(truncatingIfNeeded: StableHash.hash(bytes: key)) & mask
        while true {
            let entry = table[slot]
            if entry == 0 { break }
            if withKey(entry - 1, { $0.elementsEqual(key) }) { return entry - 1 }
            slot = (slot + 1) & mask
        }
        let id = UInt32(count)
        table[slot] = id + 1
        keyBytes.append(contentsOf: key)
        keyOffsets.append(UInt32(keyBytes.count))
        count += 1
        if count * 2 > table.count { rehash() }
        return id
    }

    func withKey<R>(_ id: UInt32, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        let start = Int(keyOffsets[Int(id)]), end = Int(keyOffsets[Int(id) + 1])
        return keyBytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[start..<end])) }
    }

    private mutating func rehash() {
        let capacity = table.count * 2
        table = Array(repeating: 0, count: capacity)
        tableKeys = Array(repeating: 0, count: singleInt ? capacity : 0)
        let mask = capacity - 1
        for id in 0..<UInt32(count) {
            let hash = singleInt ? StableHash.hash(int: intKeys[Int(id)]) : withKey(id) { StableHash.hash(bytes: $0) }
            var slot = Int(truncatingIfNeeded: hash) & mask
            while table[slot] != 0 { slot = (slot + 1) & mask }
            table[slot] = id + 1
            if singleInt { tableKeys[slot] = intKeys[Int(id)] }
        }
    }

    /// Appends the join-key values of every id to one column per join key.
    func appendKeys(_ ids: ArraySlice<UInt32>, to columns: inout [Column]) {
        guard singleInt else {
            for id in ids { appendKey(id, to: &columns) }
            return
        }
        columns[0].ints.reserveCapacity(columns[0].ints.count + ids.count)
        intKeys.withUnsafeBufferPointer { keys in
            for id in ids { columns[0].ints.append(keys[Int(id)]) }
        }
        columns[0].validity.appendSet(count: ids.count)
    }

    /// Appends the join-key values of `id` to one column per join key.
    func appendKey(_ id: UInt32, to columns: inout [Column]) {
        if singleInt { return columns[0].append(int: intKeys[Int(id)]) }
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

    /// The key of `id` as values, for tests and tools.
    func key(of id: UInt32) -> [Value] {
        var columns = keyTypes.map(Column.init(type:))
        appendKey(id, to: &columns)
        return columns.map { $0.value(at: 0)! }
    }

    func serialize(into w: inout ByteWriter) {
        w.write(UInt64(count))
        w.write(array: intKeys)
        w.write(array: keyOffsets)
        w.write(array: keyBytes)
    }

    init(keyTypes: [ValueType], from r: inout ByteReader) throws {
        self.keyTypes = keyTypes
        count = try r.count(limit: Int(UInt32.max - 1))
        intKeys = try r.readArray()
        keyOffsets = try r.readArray()
        keyBytes = try r.readArray()
        let consistent = singleInt ? intKeys.count == count : keyOffsets.count == count + 1 && Int(keyOffsets.last ?? 0) == keyBytes.count
        guard consistent else { throw StateFormatError(description: "entity index is corrupt") }
        var capacity = 1024
        while capacity < count * 2 + 2 { capacity *= 2 }
        table = Array(repeating: 0, count: capacity / 2)
        tableKeys = Array(repeating: 0, count: singleInt ? capacity / 2 : 0)
        rehash()
    }
}
