/// HyperLogLog with a sparse representation for small sets, after Heule et al. (HLL++) for the
/// sparse encoding and Ertl (2017) for the estimator, which needs no empirical bias tables.
///
/// - Dense: 2^12 registers → relative standard error 1.04/√4096 ≈ 1.6 %.
/// - Sparse: sorted 25-bit indices with their rank, estimated by linear counting over 2^25
///   buckets — exact in practice for small sets. A sparse sketch turns dense past 256 entries,
///   where inserting into the sorted run starts to cost more than a register update.
///
/// Sketches live in arenas owned by `HLLStore`; a partial is an 8-byte reference, so tiles of
/// entities with few distinct values cost a few words, not 4 KiB.
public enum HLL {
    public static let precision = 12
    public static let registers = 1 << precision
    /// Largest register value: 64 − p hash bits after the index, plus one.
    public static let maxRank = 64 - precision + 1
    static let sparsePrecision = 25
    static let sparseLimit = 256
    /// The stated accuracy: relative standard error of an estimate.
    public static let relativeStandardError = 1.04 / Double(registers).squareRoot()

    /// A sparse entry: the top 25 bits of the hash, then the rank of the remaining 39 bits.
    @inline(__always)
    static func sparseEntry(_ hash: UInt64) -> UInt32 {
        let index = UInt32(truncatingIfNeeded: hash >> UInt64(64 - sparsePrecision))
        let rest = hash << UInt64(sparsePrecision)
        let rank = rest == 0 ? UInt32(64 - sparsePrecision + 1) : UInt32(rest.leadingZeroBitCount + 1)
        return index << 6 | rank
    }

    /// The dense register and rank a sparse entry stands for.
    @inline(__always)
    static func denseUpdate(of entry: UInt32) -> (index: Int, rank: UInt8) {
        let index25 = entry >> 6
        let index = Int(index25 >> UInt32(sparsePrecision - precision))
        let between = index25 & ((1 << UInt32(sparsePrecision - precision)) - 1)
        let width = sparsePrecision - precision
        if between != 0 {
            let lz = between.leadingZeroBitCount - (32 - width)
            return (index, UInt8(lz + 1))
        }
        return (index, UInt8(width) + UInt8(entry & 63))
    }

    @inline(__always)
    static func denseUpdate(ofHash hash: UInt64) -> (index: Int, rank: UInt8) {
        let index = Int(hash >> UInt64(64 - precision))
        let rest = hash << UInt64(precision)
        let rank = rest == 0 ? UInt8(maxRank) : UInt8(rest.leadingZeroBitCount + 1)
        return (index, rank)
    }

    /// Linear counting over the 2^25 sparse buckets: m·ln(m/(m−n)) = m·(x + x²/2 + x³/3 + …) with
    /// x = n/m ≤ 2^−15, so four terms are exact to double precision.
    static func sparseEstimate(count: Int) -> Double {
        let m = Double(1 << sparsePrecision)
        let x = Double(count) / m
        return m * (x + x * x / 2 + x * x * x / 3 + x * x * x * x / 4)
    }

    /// Ertl's improved raw estimator from the register histogram `c[0...maxRank]`.
    static func denseEstimate(histogram c: UnsafeBufferPointer<UInt16>) -> Double {
        let m = Double(registers)
        let q = maxRank - 1
        var z = m * tau(1 - Double(c[q + 1]) / m)
        for k in stride(from: q, through: 1, by: -1) { z = 0.5 * (z + Double(c[k])) }
        z += m * sigma(Double(c[0]) / m)
        return m * m * 0.721_347_520_444_481_7 / z  // α∞ = 1 / (2 ln 2)
    }

    /// σ(x) = x + Σ_{k≥1} x^(2^k) · 2^(k−1)
    static func sigma(_ x0: Double) -> Double {
        if x0 == 1 { return .infinity }
        var x = x0, y = 1.0, z = x0
        while true {
            x *= x
            let previous = z
            z += x * y
            y += y
            if z == previous { return z }
        }
    }

    /// τ(x) = (1 − x − Σ_{k≥1} (1 − x^(2^−k))² · 2^−k) / 3
    static func tau(_ x0: Double) -> Double {
        if x0 == 0 || x0 == 1 { return 0 }
        var x = x0, y = 1.0, z = 1 - x0
        while true {
            x = x.squareRoot()
            let previous = z
            y *= 0.5
            z -= (1 - x) * (1 - x) * y
            if z == previous { return z / 3 }
        }
    }
}

/// A reference to a sketch in an `HLLStore`.
public struct HLLRef: BitwiseCopyable, Sendable, Equatable {
    /// Sparse: word offset in the sparse arena. Dense: block number.
    var offset: UInt32
    /// Sparse: number of entries. Dense: unused.
    var count: UInt16
    /// Sparse: size class (capacity 4 << class). `dense`, or `none` for the empty sketch.
    var kind: UInt8
    /// Explicit padding, so that checkpoints of equal states are equal bytes.
    var reserved: UInt8 = 0

    static let dense: UInt8 = 254
    static let none: UInt8 = 255
    public static let empty = HLLRef(offset: 0, count: 0, kind: none)

    var isDense: Bool { kind == HLLRef.dense }
    var isEmpty: Bool { kind == HLLRef.none }
}

/// Arenas for sparse entries and dense registers, with free lists, so that creating and dropping
/// tiles in steady state allocates nothing.
public struct HLLStore: Sendable {
    var sparse: [UInt32] = []
    var sparseFree: [[UInt32]] = Array(repeating: [], count: 9)
    var registers: [UInt8] = []
    var histograms: [UInt16] = []
    var estimates: [Double] = []
    var denseFree: [UInt32] = []
    var scratch: [UInt32] = []

    public init() {}

    static let histogramStride = 64

    var storageBytes: Int {
        sparse.capacity * 4 + sparseFree.reduce(0) { $0 + $1.capacity * 4 } + registers.capacity
            + histograms.capacity * 2 + estimates.capacity * 8 + denseFree.capacity * 4
    }

    static func capacity(ofClass c: UInt8) -> Int { 4 << Int(c) }

    // MARK: allocation

    mutating func allocateSparse(class c: UInt8) -> UInt32 {
        if let offset = sparseFree[Int(c)].popLast() { return offset }
        let offset = UInt32(sparse.count)
        sparse.append(contentsOf: repeatElement(0, count: HLLStore.capacity(ofClass: c)))
        return offset
    }

    mutating func allocateDense() -> UInt32 {
        let block: UInt32
        if let b = denseFree.popLast() {
            block = b
            let r = Int(b) * HLL.registers
            for i in r..<r + HLL.registers { registers[i] = 0 }
            let h = Int(b) * HLLStore.histogramStride
            for i in h..<h + HLLStore.histogramStride { histograms[i] = 0 }
        } else {
            block = UInt32(estimates.count)
            registers.append(contentsOf: repeatElement(0, count: HLL.registers))
            histograms.append(contentsOf: repeatElement(0, count: HLLStore.histogramStride))
            estimates.append(0)
        }
        histograms[Int(block) * HLLStore.histogramStride] = UInt16(HLL.registers)
        estimates[Int(block)] = 0
        return block
    }

    public mutating func release(_ p: HLLRef) {
        if p.isEmpty { return }
        if p.isDense { denseFree.append(p.offset) } else { sparseFree[Int(p.kind)].append(p.offset) }
    }

    // MARK: updates

    @inline(__always)
    mutating func setRegister(block: UInt32, index: Int, rank: UInt8) {
        let r = Int(block) * HLL.registers + index
        let old = registers[r]
        guard rank > old else { return }
        registers[r] = rank
        let h = Int(block) * HLLStore.histogramStride
        histograms[h + Int(old)] &-= 1
        histograms[h + Int(rank)] &+= 1
        estimates[Int(block)] = .nan
    }

    public mutating func insert(_ p: inout HLLRef, hash: UInt64) {
        if p.isDense {
            let (index, rank) = HLL.denseUpdate(ofHash: hash)
            return setRegister(block: p.offset, index: index, rank: rank)
        }
        insert(&p, entry: HLL.sparseEntry(hash))
    }

    /// Inserts a sparse entry, growing the block or turning dense as needed.
    mutating func insert(_ p: inout HLLRef, entry: UInt32) {
        if p.isDense {
            let (index, rank) = HLL.denseUpdate(of: entry)
            return setRegister(block: p.offset, index: index, rank: rank)
        }
        if p.isEmpty {
            p = HLLRef(offset: allocateSparse(class: 0), count: 0, kind: 0)
        }
        let n = Int(p.count), offset = Int(p.offset)
        let capacity = HLLStore.capacity(ofClass: p.kind)
        let key = entry >> 6
        // Find the entry's position in the sorted run and insert in place when there is room.
        enum Outcome { case present, inserted, full }
        let outcome = sparse.withUnsafeMutableBufferPointer { all -> Outcome in
            let run = all.baseAddress! + offset
            var lo = 0, hi = n
            if n <= 16 {
                while lo < n && run[lo] >> 6 < key { lo += 1 }
            } else {
                while lo < hi {
                    let mid = (lo + hi) >> 1
                    if run[mid] >> 6 < key { lo = mid + 1 } else { hi = mid }
                }
            }
            if lo < n && run[lo] >> 6 == key {
                if entry & 63 > run[lo] & 63 { run[lo] = entry }
                return .present
            }
            guard n < capacity else { return .full }
            (run + lo + 1).update(from: run + lo, count: n - lo)
            run[lo] = entry
            return .inserted
        }
        switch outcome {
        case .present: return
        case .inserted: p.count += 1
        case .full:
            if n == HLL.sparseLimit {
                toDense(&p)
                return insert(&p, entry: entry)
            }
            let bigger = allocateSparse(class: p.kind + 1)
            for i in 0..<n { sparse[Int(bigger) + i] = sparse[offset + i] }
            sparseFree[Int(p.kind)].append(p.offset)
            p = HLLRef(offset: bigger, count: p.count, kind: p.kind + 1)
            insert(&p, entry: entry)
        }
    }

    mutating func toDense(_ p: inout HLLRef) {
        let block = allocateDense()
        for i in 0..<Int(p.count) {
            let (index, rank) = HLL.denseUpdate(of: sparse[Int(p.offset) + i])
            setRegister(block: block, index: index, rank: rank)
        }
        release(p)
        p = HLLRef(offset: block, count: 0, kind: HLLRef.dense)
    }

    public mutating func merge(_ into: inout HLLRef, _ from: HLLRef) {
        if from.isEmpty { return }
        if from.isDense {
            if !into.isDense { toDense(&into) }
            let a = Int(into.offset) * HLL.registers, b = Int(from.offset) * HLL.registers
            for i in 0..<HLL.registers where registers[b + i] > registers[a + i] {
                setRegister(block: into.offset, index: i, rank: registers[b + i])
            }
            return
        }
        if into.isDense {
            for i in 0..<Int(from.count) { insert(&into, entry: sparse[Int(from.offset) + i]) }
            return
        }
        // Both sparse: merge the sorted runs into scratch, then store.
        scratch.removeAll(keepingCapacity: true)
        var i = 0, j = 0
        let na = Int(into.count), nb = Int(from.count)
        let a = Int(into.offset), b = Int(from.offset)
        while i < na || j < nb {
            if j == nb || (i < na && sparse[a + i] >> 6 < sparse[b + j] >> 6) {
                scratch.append(sparse[a + i]); i += 1
            } else if i == na || sparse[b + j] >> 6 < sparse[a + i] >> 6 {
                scratch.append(sparse[b + j]); j += 1
            } else {
                scratch.append(max(sparse[a + i], sparse[b + j])); i += 1; j += 1
            }
        }
        release(into)
        if scratch.count > HLL.sparseLimit {
            let block = allocateDense()
            for e in scratch {
                let (index, rank) = HLL.denseUpdate(of: e)
                setRegister(block: block, index: index, rank: rank)
            }
            into = HLLRef(offset: block, count: 0, kind: HLLRef.dense)
            return
        }
        var c: UInt8 = 0
        while HLLStore.capacity(ofClass: c) < scratch.count { c += 1 }
        let offset = allocateSparse(class: c)
        for (k, e) in scratch.enumerated() { sparse[Int(offset) + k] = e }
        into = HLLRef(offset: offset, count: UInt16(scratch.count), kind: c)
    }

    // MARK: estimates

    public func estimate(_ p: HLLRef) -> Double {
        if p.isEmpty { return 0 }
        if !p.isDense { return HLL.sparseEstimate(count: Int(p.count)) }
        let cached = estimates[Int(p.offset)]
        if !cached.isNaN { return cached }
        return histograms.withUnsafeBufferPointer {
            HLL.denseEstimate(histogram: UnsafeBufferPointer(rebasing: $0[Int(p.offset) * HLLStore.histogramStride..<Int(p.offset) * HLLStore.histogramStride + HLL.maxRank + 1]))
        }
    }

    /// Computes and caches the estimate of a dense sketch (finalize is non-mutating).
    mutating func refreshEstimate(_ p: HLLRef) {
        guard p.isDense, estimates[Int(p.offset)].isNaN else { return }
        estimates[Int(p.offset)] = estimate(p)
    }

    public func serialize(into w: inout ByteWriter) {
        w.write(array: sparse)
        w.write(arrays: sparseFree)
        w.write(array: registers)
        w.write(array: histograms)
        w.write(array: estimates)
        w.write(array: denseFree)
    }

    public init(from r: inout ByteReader) throws {
        sparse = try r.readArray()
        sparseFree = try r.readArrays()
        registers = try r.readArray()
        histograms = try r.readArray()
        estimates = try r.readArray()
        denseFree = try r.readArray()
        guard sparseFree.count == 9, registers.count == estimates.count * HLL.registers,
              histograms.count == estimates.count * HLLStore.histogramStride else {
            throw StateFormatError(description: "HyperLogLog arenas are corrupt")
        }
    }
}

/// `approx_count_distinct`: distinct non-null values, estimated with HyperLogLog.
public struct DistinctKernel: AggregateKernel {
    public var store = HLLStore()

    public init() {}

    public var empty: HLLRef { .empty }

    public mutating func load(_ column: Column?, count: Int, into inputs: inout [UInt64]) {
        inputs.removeAll(keepingCapacity: true)
        guard let column else { return inputs.append(contentsOf: repeatElement(0, count: count)) }
        switch column.type {
        case .int64: for v in column.ints { inputs.append(StableHash.hash(int: v)) }
        case .bool: for v in column.ints { inputs.append(StableHash.hash(bool: v != 0)) }
        case .float64: for v in column.doubles { inputs.append(StableHash.hash(double: v)) }
        case .string: for i in 0..<count { inputs.append(column.withUTF8(at: i) { StableHash.hash(bytes: $0) }) }
        }
    }

    public mutating func update(_ p: inout HLLRef, _ x: UInt64, time: Micros) { store.insert(&p, hash: x) }
    public mutating func merge(_ into: inout HLLRef, _ from: HLLRef) { store.merge(&into, from) }
    public mutating func release(_ p: HLLRef) { store.release(p) }

    public mutating func finalize(_ p: HLLRef, mode: Int) -> UInt64? {
        store.refreshEstimate(p)
        return UInt64(bitPattern: Int64(store.estimate(p).rounded()))
    }

    public func serialize(into w: inout ByteWriter) { store.serialize(into: &w) }
    public mutating func restore(from r: inout ByteReader) throws { store = try HLLStore(from: &r) }
    public var storageBytes: Int { store.storageBytes }
}
