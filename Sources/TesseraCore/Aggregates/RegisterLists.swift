/// The per-tile register lists of a sliding sketch (`SlidingHLL`): short lists of register numbers,
/// created one per tile and dropped when the tile leaves the ring, kept in one pool so that a new
/// list or a growing one is not an allocation of its own.
///
/// List `i` is `pool[start[i] ..< start[i] + count[i]]` with room up to `start[i] + room[i]`. A full
/// list moves to the end of the pool with twice the room; the space it and dropped lists leave is
/// garbage until the live lists are packed again, once garbage is most of the pool. The pool grows
/// by doubling, so lists come and go without allocations in steady state.
struct RegisterLists: Sendable {
    private var pool: [UInt16] = []
    private var start: [UInt32] = []
    private var counts: [UInt32] = []
    private var room: [UInt32] = []
    /// Pool slots no live list holds.
    private var garbage = 0

    init() {}

    /// Lists made so far (freed ones included).
    var count: Int { start.count }

    var memory: Int { pool.capacity * 2 + (start.capacity + counts.capacity + room.capacity) * 4 }

    /// A new empty list at index `count` with room for `capacity` registers.
    mutating func make(capacity: Int) -> Int {
        start.append(0)
        counts.append(0)
        room.append(0)
        reset(start.count - 1, capacity: capacity)
        return start.count - 1
    }

    /// Empties list `i` (a freed one, to be used again) and gives it room for `capacity` registers.
    mutating func reset(_ i: Int, capacity: Int) {
        free(i)
        place(i, room: capacity)
    }

    /// Empties list `i` and gives its room back (the tile left the ring).
    mutating func free(_ i: Int) {
        garbage += Int(room[i])
        counts[i] = 0
        room[i] = 0
        start[i] = 0
    }

    @inline(__always)
    func count(_ i: Int) -> Int { Int(counts[i]) }

    /// Register `k` of list `i`.
    @inline(__always)
    func register(_ i: Int, _ k: Int) -> Int { Int(pool[Int(start[i]) &+ k]) }

    @inline(__always)
    mutating func append(_ i: Int, _ register: UInt16) {
        if counts[i] == room[i] { place(i, room: max(4, 2 * Int(room[i]))) }
        pool[Int(start[i]) + Int(counts[i])] = register
        counts[i] += 1
    }

    /// Moves list `i` to the end of the pool with room for `n` (at least its count) registers.
    private mutating func place(_ i: Int, room n: Int) {
        if garbage > 4_096 && garbage * 2 > pool.count { pack() }
        let from = Int(start[i]), count = Int(counts[i])
        let to = pool.count
        pool.append(contentsOf: repeatElement(0, count: max(n, count)))
        pool.withUnsafeMutableBufferPointer { p in
            for k in 0..<count { p[to + k] = p[from + k] }
        }
        garbage += Int(room[i])
        start[i] = UInt32(to)
        room[i] = UInt32(max(n, count))
    }

    /// Copies the live lists to the front of the pool, each with the room it has.
    private mutating func pack() {
        var packed: [UInt16] = []
        packed.reserveCapacity(pool.capacity)  // the room the pool had grown to: no regrowth after
        for i in start.indices where room[i] > 0 {
            let from = Int(start[i])
            start[i] = UInt32(packed.count)
            packed.append(contentsOf: pool[from..<from + Int(room[i])])
        }
        pool = packed
        garbage = 0
    }

    // MARK: - State (the format of an array of arrays: a count, then each list's count and values)

    func serialize(into w: inout ByteWriter) {
        w.write(UInt64(start.count))
        for i in start.indices {
            w.write(UInt64(counts[i]))
            pool.withUnsafeBytes { b in
                w.write(raw: UnsafeRawBufferPointer(rebasing: b[Int(start[i]) * 2 ..< (Int(start[i]) + Int(counts[i])) * 2]))
            }
        }
    }

    init(from r: inout ByteReader) throws {
        let lists: [[UInt16]] = try r.readArrays()
        for list in lists {
            let i = make(capacity: list.count)
            for register in list { append(i, register) }
        }
    }

    /// Whether every register listed is below `n`.
    func registers(below n: Int) -> Bool {
        start.indices.allSatisfy { i in (0..<Int(counts[i])).allSatisfy { register(i, $0) < n } }
    }
}
