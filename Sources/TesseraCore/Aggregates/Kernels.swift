/// The tile a row falls in on one ring, found before the row's kernels run.
struct TileRef {
    /// The tile record; nil when the tile is outside every window of the ring.
    var pointer: UnsafeMutableRawPointer?
    var index: Int64
    /// The first ring window that contains the tile.
    var first: Int
    /// Its position in the entity's deque.
    var position: Int
}

/// A kernel's inputs for the batch being applied: whether it aggregates each row, and the row's
/// value (8 bytes: a Double, a hash or a value's bits). Plain pointers into buffers the view owns,
/// set by `prepare`.
struct KernelInputs: BitwiseCopyable, @unchecked Sendable {  // valid for one batch, on the thread applying it
    var values: UnsafeMutableRawPointer
    var active: UnsafeMutablePointer<Bool>

    static let none = KernelInputs(values: UnsafeMutableRawPointer(bitPattern: 8)!, active: UnsafeMutablePointer(bitPattern: 8)!)

    @inline(__always) func double(_ i: Int) -> Double { values.load(fromByteOffset: i &* 8, as: Double.self) }
    @inline(__always) func bits(_ i: Int) -> UInt64 { values.load(fromByteOffset: i &* 8, as: UInt64.self) }
}

/// Buffers for the kernels' inputs, reused across batches.
struct InputBuffers: Sendable {
    private var values: [ScratchBuffer<UInt64>] = []
    private var flags: [ScratchBuffer<Bool>] = []

    /// Room for `n` rows of kernel slot `k`.
    mutating func inputs(_ k: Int, rows n: Int) -> KernelInputs {
        while values.count <= k {
            values.append(ScratchBuffer())
            flags.append(ScratchBuffer())
        }
        ScratchBuffer.unique(&values[k])
        ScratchBuffer.unique(&flags[k])
        values[k].reserve(n)
        flags[k].reserve(n)
        return KernelInputs(values: UnsafeMutableRawPointer(values[k].buffer), active: flags[k].buffer)
    }
}

/// Marks the rows a kernel aggregates: rows with an entity that pass its filter and whose field
/// (if any) is not null.
func markActive(_ shape: KernelShape, _ batch: ColumnBatch, entities: UnsafePointer<UInt32>, filters: [[Bool]],
                into active: UnsafeMutablePointer<Bool>) {
    let n = batch.count
    for i in 0..<n { active[i] = entities[i] != KeyIndex.noEntity }
    if shape.filter >= 0 {
        filters[shape.filter].withUnsafeBufferPointer { selected in
            for i in 0..<n { active[i] = active[i] && selected[i] }
        }
    }
    if shape.field >= 0, !batch.columns[shape.field].validity.allSet {
        batch.columns[shape.field].validity.words.withUnsafeBufferPointer { words in
            for i in 0..<n { active[i] = active[i] && (words[i >> 6] >> UInt64(i & 63)) & 1 != 0 }
        }
    }
}

/// Numeric fields arrive as Double, whether the source declares int64 or float64.
func loadNumbers(_ column: Column, count: Int, into values: UnsafeMutableRawPointer) {
    let out = values.assumingMemoryBound(to: Double.self)
    switch column.type {
    case .float64: column.doubles.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: count) }
    case .int64, .bool: for i in 0..<count { out[i] = Double(column.ints[i]) }
    case .string: out.update(repeating: 0, count: count)
    }
}

// MARK: - count

/// `count`: rows that pass the filter (and, with a field, whose field is not null). Invertible:
/// a tile leaving a window is subtracted.
struct CountKernel: Sendable {
    let shape: KernelShape
    var inputs = KernelInputs.none

    init(shape: KernelShape) { self.shape = shape }

    mutating func prepare(_ batch: ColumnBatch, entities: UnsafePointer<UInt32>, filters: [[Bool]], buffers: KernelInputs) {
        inputs = buffers
        markActive(shape, batch, entities: entities, filters: filters, into: inputs.active)
    }

    @inline(__always)
    func update(_ i: Int, _ record: UnsafeMutableRawPointer, _ tiles: UnsafePointer<TileRef>) {
        guard inputs.active[i] else { return }
        guard shape.ring >= 0 else {
            let o = shape.windowOffsets[0]
            record.storeBytes(of: record.load(fromByteOffset: o, as: Int64.self) &+ 1, toByteOffset: o, as: Int64.self)
            return
        }
        let t = tiles[shape.ring]
        guard let tile = t.pointer else { return }
        let to = shape.tileOffset
        tile.storeBytes(of: tile.load(fromByteOffset: to, as: Int64.self) &+ 1, toByteOffset: to, as: Int64.self)
        for j in 0..<shape.ringWindows.count where shape.ringWindows[j] >= t.first {
            let o = shape.windowOffsets[j]
            record.storeBytes(of: record.load(fromByteOffset: o, as: Int64.self) &+ 1, toByteOffset: o, as: Int64.self)
        }
    }

    /// Tile `tile` leaves kernel window `j`.
    @inline(__always)
    func expire(_ record: UnsafeMutableRawPointer, _ tile: UnsafeMutableRawPointer, window j: Int) {
        let o = shape.windowOffsets[j]
        let part = tile.load(fromByteOffset: shape.tileOffset, as: Int64.self)
        record.storeBytes(of: record.load(fromByteOffset: o, as: Int64.self) &- part, toByteOffset: o, as: Int64.self)
    }
}

// MARK: - sum / mean / variance / stddev

/// `sum`, `mean`, `variance` and `stddev` of one field share a partial per tile and per window: a
/// `MomentsPartial` where some output of the window (or, for tiles, of any window) is a variance
/// or standard deviation, else only its first part, `MomentsPartial.Sums` (no sums of squares).
/// Invertible.
struct MomentsKernel: Sendable {
    let shape: KernelShape
    /// Whether tiles keep sums of squares (some output is a variance or standard deviation), and
    /// which kernel windows do (bit j: window j has such an output).
    let squares: Bool
    let squaredWindows: UInt64
    var inputs = KernelInputs.none

    init(shape: KernelShape, squaredWindows: UInt64) {
        precondition(shape.ringWindows.count <= 64)
        precondition(MemoryLayout<MomentsPartial>.offset(of: \MomentsPartial.sum) == MemoryLayout<MomentsPartial.Sums>.offset(of: \.sum)
                     && MemoryLayout<MomentsPartial>.offset(of: \MomentsPartial.squares) == MomentsPartial.squaresOffset,
                     "a partial's sums come first")
        self.shape = shape
        self.squaredWindows = squaredWindows
        squares = squaredWindows != 0
    }

    mutating func prepare(_ batch: ColumnBatch, entities: UnsafePointer<UInt32>, filters: [[Bool]], buffers: KernelInputs) {
        inputs = buffers
        markActive(shape, batch, entities: entities, filters: filters, into: inputs.active)
        loadNumbers(batch.columns[shape.field], count: batch.count, into: inputs.values)
    }

    @inline(__always)
    func update(_ i: Int, _ record: UnsafeMutableRawPointer, _ tiles: UnsafePointer<TileRef>) {
        guard inputs.active[i] else { return }
        let x = inputs.double(i)
        let square = squares ? DoubleDouble.product(x, x) : nil
        guard shape.ring >= 0 else { return add(x, square, record + shape.windowOffsets[0]) }
        let t = tiles[shape.ring]
        guard let tile = t.pointer else { return }
        add(x, square, tile + shape.tileOffset)
        for j in 0..<shape.ringWindows.count where shape.ringWindows[j] >= t.first {
            add(x, squaredWindows & (1 << UInt64(j)) != 0 ? square : nil, record + shape.windowOffsets[j])
        }
    }

    /// Adds `x` to the partial at `at`, and `square` to its sums of squares when given (only a
    /// partial that has them is given one).
    @inline(__always)
    private func add(_ x: Double, _ square: DoubleDouble?, _ at: UnsafeMutableRawPointer) {
        var p = at.load(as: MomentsPartial.Sums.self)
        p.add(x)
        at.storeBytes(of: p, as: MomentsPartial.Sums.self)
        if let square {
            var q = at.load(fromByteOffset: MomentsPartial.squaresOffset, as: DoubleDouble.self)
            q.add(square.hi, square.lo)
            at.storeBytes(of: q, toByteOffset: MomentsPartial.squaresOffset, as: DoubleDouble.self)
        }
    }

    @inline(__always)
    private func partial(_ at: UnsafeRawPointer, squared: Bool) -> MomentsPartial {
        let p = at.load(as: MomentsPartial.Sums.self)
        return MomentsPartial(count: p.count, sum: p.sum,
                              squares: squared ? at.load(fromByteOffset: MomentsPartial.squaresOffset, as: DoubleDouble.self) : .zero)
    }

    @inline(__always)
    func expire(_ record: UnsafeMutableRawPointer, _ tile: UnsafeMutableRawPointer, window j: Int) {
        let at = record + shape.windowOffsets[j]
        let squared = squaredWindows & (1 << UInt64(j)) != 0
        var p = partial(at, squared: squared)
        p.retract(partial(tile + shape.tileOffset, squared: squares), squares: squared)
        at.storeBytes(of: MomentsPartial.Sums(count: p.count, sum: p.sum), as: MomentsPartial.Sums.self)
        if squared { at.storeBytes(of: p.squares, toByteOffset: MomentsPartial.squaresOffset, as: DoubleDouble.self) }
    }
}
