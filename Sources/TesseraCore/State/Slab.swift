import CIntrinsics

/// Where a slab's items are: a fixed table of chunk pointers, chunk `c` holding `1 << (base + c)`
/// items. Trivially copyable, so hot loops read it without reference counting; valid while its
/// slab lives and is not copied (`Slab.makeUnique`).
struct SlabCore: BitwiseCopyable, @unchecked Sendable {  // plain pointers; the slab owning them says when they change
    let table: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    let itemBytes: Int
    let base: Int

    static let chunks = 32

    @inline(__always)
    func pointer(_ i: UInt32) -> UnsafeMutableRawPointer {
        let units = Int(i) &>> base
        let c = 63 &- (units &+ 1).leadingZeroBitCount
        let first = ((1 &<< c) &- 1) &<< base
        return table[c].unsafelyUnwrapped + (Int(i) &- first) &* itemBytes
    }

    /// The items chunk `c` holds.
    @inline(__always)
    func capacity(ofChunk c: Int) -> Int { 1 << (base + c) }
}

/// Fixed-size items in chunks that never move, addressed by a dense `UInt32` index: the storage
/// of entity records, tile blocks and sketch blocks.
///
/// Chunks double in size and are zeroed memory the kernel maps lazily, so growing never copies an
/// item and unused room costs address space only. A pointer to an item stays valid until the item
/// is released or the slab is copied. Released items go to a free list and are handed out again
/// first, so steady state allocates nothing.
///
/// Copy-on-write: copies of a slab share their chunks until one of them calls `makeUnique()`
/// before writing (the owner of a slab does so once per batch). Reading a shared copy — a
/// checkpoint serializing it on another thread — is safe while the original moves on.
struct Slab: Sendable {
    private(set) var core: SlabCore
    /// Items handed out so far (released ones included).
    private(set) var highWater: UInt32 = 0
    private(set) var free: [UInt32] = []
    /// Chunks allocated.
    private(set) var chunkCount = 0
    private var owner: Owner

    /// Owns the chunk table and the chunks; frees them with the last copy of the slab.
    final class Owner: @unchecked Sendable {  // written only by the slab value that uniquely holds it
        let table: UnsafeMutablePointer<UnsafeMutableRawPointer?>
        /// Bytes of each chunk (to unmap it).
        let sizes: UnsafeMutablePointer<Int>
        var count = 0

        init() {
            table = .allocate(capacity: SlabCore.chunks)
            table.initialize(repeating: nil, count: SlabCore.chunks)
            sizes = .allocate(capacity: SlabCore.chunks)
            sizes.initialize(repeating: 0, count: SlabCore.chunks)
        }

        func add(_ bytes: Int) -> UnsafeMutableRawPointer {
            guard let chunk = tessera_map(bytes) else { fatalError("out of memory (\(bytes) bytes for state)") }
            table[count] = chunk
            sizes[count] = bytes
            count += 1
            return chunk
        }

        deinit {
            for i in 0..<count { tessera_unmap(table[i], sizes[i]) }
            table.deallocate()
            sizes.deallocate()
        }
    }

    /// - Parameters:
    ///   - itemBytes: the size of one item (a multiple of 8).
    ///   - chunkBytes: roughly how much memory the first chunk takes.
    init(itemBytes: Int, chunkBytes: Int = 1 << 18) {
        precondition(itemBytes > 0 && itemBytes % 8 == 0)
        var base = 0
        while (itemBytes << (base + 1)) <= chunkBytes && base < 20 { base += 1 }
        owner = Owner()
        core = SlabCore(table: owner.table, itemBytes: itemBytes, base: base)
    }

    var itemBytes: Int { core.itemBytes }
    /// Items in use.
    var liveCount: Int { Int(highWater) - free.count }
    /// Bytes of the items handed out and the free list: what the slab's image holds, and about
    /// what of `memory` is resident.
    var usedBytes: Int { Int(highWater) * core.itemBytes + free.count * 4 + 24 }
    /// Bytes of memory reserved (chunks are mapped lazily: resident memory is what was touched).
    var memory: Int {
        var bytes = free.capacity * 4
        for c in 0..<chunkCount { bytes += core.capacity(ofChunk: c) * core.itemBytes }
        return bytes
    }

    @inline(__always)
    func pointer(_ i: UInt32) -> UnsafeMutableRawPointer { core.pointer(i) }

    /// A new item (its bytes are zero, or whatever a released item left): the caller initialises it.
    @inline(__always)
    mutating func allocate() -> UInt32 {
        if let i = free.popLast() { return i }
        if Int(highWater) == ((1 << chunkCount) - 1) << core.base { addChunk() }
        defer { highWater += 1 }
        return highWater
    }

    @inline(__always)
    mutating func release(_ i: UInt32) { free.append(i) }

    private mutating func addChunk() {
        precondition(chunkCount < SlabCore.chunks, "a slab is full")
        _ = owner.add(core.capacity(ofChunk: chunkCount) * core.itemBytes)
        chunkCount += 1
    }

    /// Whether a copy of this value (a checkpoint being written) shares its chunks: the next
    /// write copies them all (`makeUnique`).
    mutating func isShared() -> Bool { !isKnownUniquelyReferenced(&owner) }

    /// Gives this value its own chunks if they are shared with a copy. Call before writing.
    @inline(__always)
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&owner) { copyChunks() }
    }

    private mutating func copyChunks() {
        let fresh = Owner()
        for c in 0..<chunkCount {
            let chunk = fresh.add(core.capacity(ofChunk: c) * core.itemBytes)
            // Only what was handed out is worth copying.
            let first = ((1 << c) - 1) << core.base
            let used = max(0, min(core.capacity(ofChunk: c), Int(highWater) - first))
            chunk.copyMemory(from: core.table[c]!, byteCount: used * core.itemBytes)
        }
        owner = fresh
        core = SlabCore(table: fresh.table, itemBytes: core.itemBytes, base: core.base)
    }

    // MARK: - State

    /// The items handed out so far, as raw bytes, and the free list.
    func serialize(into w: inout ByteWriter) {
        w.write(UInt64(core.itemBytes))
        w.write(UInt64(highWater))
        w.write(array: free)
        var left = Int(highWater)
        var c = 0
        while left > 0 {
            let n = min(left, core.capacity(ofChunk: c))
            w.write(raw: UnsafeRawBufferPointer(start: core.table[c]!, count: n * core.itemBytes))
            left -= n
            c += 1
        }
    }

    /// Restores items saved by `serialize` into an empty slab of the same item size.
    mutating func restore(from r: inout ByteReader) throws {
        precondition(highWater == 0)
        let bytes = try r.read(UInt64.self)
        guard bytes == UInt64(core.itemBytes) else {
            throw StateFormatError(description: "state is corrupt: items of \(bytes) bytes where \(core.itemBytes) are expected")
        }
        let n = try r.count(limit: r.remaining / core.itemBytes)
        free = try r.readArray()
        guard free.allSatisfy({ Int($0) < n }) else { throw StateFormatError(description: "state is corrupt: a free item is out of range") }
        var left = n
        while left > 0 {
            addChunk()
            let k = min(left, core.capacity(ofChunk: chunkCount - 1))
            try r.readRaw(into: UnsafeMutableRawBufferPointer(start: core.table[chunkCount - 1]!, count: k * core.itemBytes))
            left -= k
        }
        highWater = UInt32(n)
    }
}

/// A fixed table of slab cores (one per size class) that hot loops read through a plain pointer;
/// its owner rewrites an entry whenever it creates or copies that class's slab.
final class SlabTable: @unchecked Sendable {  // rewritten only by the store value that uniquely holds it
    let cores: UnsafeMutablePointer<SlabCore>
    static let size = 48

    init() {
        cores = .allocate(capacity: SlabTable.size)
        let unused = SlabCore(table: UnsafeMutablePointer(bitPattern: 8)!, itemBytes: 8, base: 0)
        cores.initialize(repeating: unused, count: SlabTable.size)
    }

    deinit { cores.deallocate() }
}
