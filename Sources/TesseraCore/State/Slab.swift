import CIntrinsics

/// Where a slab's items are: a table of chunk pointers, each chunk holding `1 << shift` items.
/// Trivially copyable, so hot loops read it without reference counting; valid while its slab
/// lives and is not copied (`Slab.makeUnique`) — growing fills the table in place.
struct SlabCore: BitwiseCopyable, @unchecked Sendable {  // plain pointers; the slab owning them says when they change
    let table: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    let itemBytes: Int
    /// Items per chunk: `1 << shift`; `mask` is that minus one.
    let shift: Int
    let mask: Int

    init(table: UnsafeMutablePointer<UnsafeMutableRawPointer?>, itemBytes: Int, shift: Int) {
        self.table = table
        self.itemBytes = itemBytes
        self.shift = shift
        mask = (1 << shift) - 1
    }

    /// Bytes a chunk holds at most (fewer items than that per chunk only when one item is larger).
    static let chunkBytes = 4 << 20

    @inline(__always)
    func pointer(_ i: UInt32) -> UnsafeMutableRawPointer {
        let i = Int(i)
        return table[i &>> shift].unsafelyUnwrapped + (i & mask) &* itemBytes
    }

    /// The items a chunk holds.
    var chunkCapacity: Int { 1 << shift }
}

/// Fixed-size items in chunks that never move, addressed by a dense `UInt32` index: the storage
/// of entity records, tile blocks and sketch blocks.
///
/// Chunks are of one size (`SlabCore.chunkBytes`), so an item's address is its chunk's plus an
/// offset, without arithmetic on the index's magnitude. They are zeroed memory the kernel maps
/// lazily: growing never copies an item, and room not yet used costs address space only. A pointer
/// to an item stays valid until the item is released or the slab is copied. Released items go
/// to a free list and are handed out again first, so steady state allocates nothing.
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
        /// Entries of the table: enough chunks for every `UInt32` index, up to 2¹⁶ (of 4 MiB:
        /// 256 GiB of items, 536 M entity records of 320 bytes per view and partition). The table
        /// is a mapping of its own: a slab of a few chunks touches one page of it.
        let capacity: Int
        let chunkBytes: Int
        var count = 0

        init(chunkItems shift: Int, itemBytes: Int) {
            capacity = min(1 << (32 - shift), 1 << 16)
            chunkBytes = itemBytes << shift
            guard let table = tessera_map_own(capacity * MemoryLayout<UnsafeMutableRawPointer?>.stride) else {
                fatalError("out of memory (a table of \(capacity) chunks for state)")
            }
            self.table = table.bindMemory(to: UnsafeMutableRawPointer?.self, capacity: capacity)
        }

        func add() -> UnsafeMutableRawPointer {
            precondition(count < capacity, "a slab is full (\(capacity) chunks of \(chunkBytes) bytes)")
            guard let chunk = tessera_map(chunkBytes) else { fatalError("out of memory (\(chunkBytes) bytes for state)") }
            table[count] = chunk
            count += 1
            return chunk
        }

        deinit {
            for i in 0..<count { tessera_unmap(table[i], chunkBytes) }
            tessera_unmap_own(table, capacity * MemoryLayout<UnsafeMutableRawPointer?>.stride)
        }
    }

    /// - Parameter itemBytes: the size of one item (a multiple of 8).
    init(itemBytes: Int) {
        precondition(itemBytes > 0 && itemBytes % 8 == 0)
        var shift = 0
        while (itemBytes << (shift + 1)) <= SlabCore.chunkBytes && shift < 31 { shift += 1 }
        owner = Owner(chunkItems: shift, itemBytes: itemBytes)
        core = SlabCore(table: owner.table, itemBytes: itemBytes, shift: shift)
    }

    var itemBytes: Int { core.itemBytes }
    /// Items in use.
    var liveCount: Int { Int(highWater) - free.count }
    /// Bytes of the items handed out and the free list: what the slab's image holds, and about
    /// what of `memory` is resident.
    var usedBytes: Int { Int(highWater) * core.itemBytes + free.count * 4 + 24 }
    /// Bytes of memory reserved (chunks are mapped lazily: resident memory is what was touched).
    var memory: Int { free.capacity * 4 + chunkCount * core.chunkCapacity * core.itemBytes }

    @inline(__always)
    func pointer(_ i: UInt32) -> UnsafeMutableRawPointer { core.pointer(i) }

    /// A new item (its bytes are zero, or whatever a released item left): the caller initialises it.
    @inline(__always)
    mutating func allocate() -> UInt32 {
        if let i = free.popLast() { return i }
        if Int(highWater) == chunkCount << core.shift { addChunk() }
        defer { highWater += 1 }
        return highWater
    }

    @inline(__always)
    mutating func release(_ i: UInt32) { free.append(i) }

    private mutating func addChunk() {
        _ = owner.add()
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
        let fresh = Owner(chunkItems: core.shift, itemBytes: core.itemBytes)
        for c in 0..<chunkCount {
            let chunk = fresh.add()
            // Only what was handed out is worth copying.
            let used = max(0, min(core.chunkCapacity, Int(highWater) - c * core.chunkCapacity))
            chunk.copyMemory(from: core.table[c]!, byteCount: used * core.itemBytes)
        }
        owner = fresh
        core = SlabCore(table: fresh.table, itemBytes: core.itemBytes, shift: core.shift)
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
            let n = min(left, core.chunkCapacity)
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
            let k = min(left, core.chunkCapacity)
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
        let unused = SlabCore(table: UnsafeMutablePointer(bitPattern: 8)!, itemBytes: 8, shift: 0)
        cores.initialize(repeating: unused, count: SlabTable.size)
    }

    deinit { cores.deallocate() }
}
