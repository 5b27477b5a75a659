/// Interns UTF-8 strings as dense UInt32 codes (insertion order), so partials that hold a string
/// value stay fixed-size. Codes are stable for the life of the state and are checkpointed with it.
public struct StringDictionary: Sendable {
    private var offsets: [UInt32] = [0]
    private var bytes: [UInt8] = []
    /// Open addressing, linear probing: code + 1, or 0 for an empty slot.
    private var table: [UInt32] = Array(repeating: 0, count: 16)

    public init() {}

    /// An empty dictionary to copy where one is only a placeholder (copies share its storage,
    /// so taking one allocates nothing).
    static let empty = StringDictionary()

    public var count: Int { offsets.count - 1 }

    public var storageBytes: Int { offsets.capacity * 4 + bytes.capacity + table.capacity * 4 }

    public mutating func intern(_ value: UnsafeBufferPointer<UInt8>) -> UInt32 {
        let mask = table.count - 1
        var i = Int(truncatingIfNeeded: StableHash.hash(bytes: value)) & mask
        while true {
            let entry = table[i]
            if entry == 0 { break }
            if equals(code: entry - 1, value) { return entry - 1 }
            i = (i + 1) & mask
        }
        let code = UInt32(count)
        bytes.append(contentsOf: value)
        offsets.append(UInt32(bytes.count))
        table[i] = code + 1
        if count * 2 > table.count { rehash(capacity: table.count * 2) }
        return code
    }

    public func withBytes<R>(of code: UInt32, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        let start = Int(offsets[Int(code)]), end = Int(offsets[Int(code) + 1])
        return try bytes.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[start..<end])) }
    }

    /// Appends to a string column the strings of `n` codes, `codes[i]` for row i (its
    /// low 32 bits), or a null where `valid[i]` is false: the bytes counted first, then
    /// copied in one pass.
    func append(codes: UnsafePointer<UInt64>, valid: UnsafePointer<Bool>, count n: Int, to column: inout Column) {
        precondition(column.type == .string)
        offsets.withUnsafeBufferPointer { starts in
            bytes.withUnsafeBufferPointer { source in
                var total = 0
                for i in 0..<n where valid[i] {
                    let c = Int(UInt32(truncatingIfNeeded: codes[i]))
                    total &+= Int(starts[c &+ 1] &- starts[c])
                }
                let firstByte = column.bytes.count, firstOffset = column.offsets.count
                column.bytes.append(contentsOf: repeatElement(0, count: total))
                column.offsets.append(contentsOf: repeatElement(0, count: n))
                column.bytes.withUnsafeMutableBufferPointer { out in
                    column.offsets.withUnsafeMutableBufferPointer { ends in
                        var at = firstByte
                        for i in 0..<n {
                            if valid[i] {
                                let c = Int(UInt32(truncatingIfNeeded: codes[i]))
                                let start = Int(starts[c]), length = Int(starts[c &+ 1]) &- start
                                if length > 0 {
                                    UnsafeMutableRawPointer(out.baseAddress! + at).copyShort(from: source.baseAddress! + start, count: length)
                                }
                                at &+= length
                            }
                            ends[firstOffset &+ i] = Int32(at)
                        }
                    }
                }
            }
        }
        column.validity.append(contentsOf: UnsafeBufferPointer(start: valid, count: n))
    }

    public func string(of code: UInt32) -> String {
        withBytes(of: code) { String(decoding: $0, as: UTF8.self) }
    }

    private func equals(code: UInt32, _ value: UnsafeBufferPointer<UInt8>) -> Bool {
        withBytes(of: code) { stored in
            guard stored.count == value.count else { return false }
            guard let a = stored.baseAddress, let b = value.baseAddress else { return true }
            return UnsafeRawPointer(a).bytesEqual(UnsafeRawPointer(b), count: value.count)
        }
    }

    private mutating func rehash(capacity: Int) {
        table = Array(repeating: 0, count: capacity)
        let mask = capacity - 1
        for code in 0..<UInt32(count) {
            var i = withBytes(of: code) { Int(truncatingIfNeeded: StableHash.hash(bytes: $0)) } & mask
            while table[i] != 0 { i = (i + 1) & mask }
            table[i] = code + 1
        }
    }

    public func serialize(into w: inout ByteWriter) {
        w.write(array: offsets)
        w.write(array: bytes)
    }

    public init(from r: inout ByteReader) throws {
        offsets = try r.readArray()
        bytes = try r.readArray()
        guard offsets.first == 0, offsets.last.map(Int.init) == bytes.count,
              zip(offsets, offsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw StateFormatError(description: "string dictionary is corrupt")
        }
        var capacity = 16
        while capacity < count * 2 + 2 { capacity *= 2 }
        rehash(capacity: capacity)
    }
}
