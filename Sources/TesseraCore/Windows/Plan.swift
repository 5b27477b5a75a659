/// What a batch does to a view, worked out row by row before any partial is touched (phase 1),
/// so that each kernel can then apply it in one tight pass over the rows (phase 2).
///
/// Phase 1 resolves entities and tiles, crosses tile boundaries in time order and numbers the
/// emissions (one per entity and stream time). Phase 2 runs kernel by kernel: update the tile and
/// window partials of each row, rebuild windows at each boundary step, and write every emitted
/// value where its emission's last writer stands.
struct Plan: Sendable {
    var rows = 0
    var rings = 0
    /// Per row: the entity, or `EntityIndex.noEntity` for rows the view does not aggregate.
    var entity = ScratchBuffer<UInt32>()
    var time = ScratchBuffer<Micros>()
    /// Per ring r, row i at `r · rows + i`: the tile slot, or `TileRing.none` when the tile is
    /// outside every window of the ring.
    var slot = ScratchBuffer<UInt32>()
    /// Per ring r, row i at `r · rows + i`: the first of the ring's windows that contains the tile.
    var firstWindow = ScratchBuffer<UInt8>()
    /// Per row: the emission it writes (relative to this batch's first), or -1.
    var emission = ScratchBuffer<Int32>()
    /// Per row: whether this row is the last writer of its emission.
    var finalRow = ScratchBuffer<Bool>()
    /// Per ring: slots created by this batch, whose partials start empty.
    var created: [[UInt32]] = []
    /// Per ring: slots that left their longest window; unlinked once the batch is applied.
    var retired: [[UInt32]] = []

    /// Boundary steps in time order, each before row `beforeRow`.
    var steps: [Step] = []
    /// Entities touched by expire steps: the expiring slot and the tiles that remain in the window.
    var expiries: [Expiry] = []
    var remaining: [UInt32] = []
    /// Entities emitted by emit steps.
    var emits: [GroupEmission] = []

    struct Step: Sendable {
        enum Kind: UInt8, Sendable { case expire, emit }
        var kind: Kind
        var beforeRow: Int
        var ring: Int
        var window: Int
        /// `expiries` (expire) or `emits` (emit) range.
        var from: Int
        var to: Int
    }

    struct Expiry: Sendable {
        var entity: UInt32
        var slot: UInt32
        /// Range of `remaining`: the entity's tiles still inside the window after the boundary.
        var from: Int32
        var to: Int32
    }

    struct GroupEmission: Sendable {
        var entity: UInt32
        var emission: Int32
        var isFinal: Bool
        /// The row the boundary step comes before.
        var beforeRow: Int32
    }

    mutating func reset(rows n: Int, rings: Int) {
        rows = n
        self.rings = rings
        ScratchBuffer.unique(&entity)
        ScratchBuffer.unique(&time)
        ScratchBuffer.unique(&slot)
        ScratchBuffer.unique(&firstWindow)
        ScratchBuffer.unique(&emission)
        ScratchBuffer.unique(&finalRow)
        entity.reserve(n)
        time.reserve(n)
        emission.reserve(n)
        finalRow.reserve(n)
        slot.reserve(n * rings)
        firstWindow.reserve(n * rings)
        if created.count != rings {
            created = Array(repeating: [], count: rings)
            retired = Array(repeating: [], count: rings)
        }
        for r in 0..<rings {
            created[r].removeAll(keepingCapacity: true)
            retired[r].removeAll(keepingCapacity: true)
        }
        steps.removeAll(keepingCapacity: true)
        expiries.removeAll(keepingCapacity: true)
        remaining.removeAll(keepingCapacity: true)
        emits.removeAll(keepingCapacity: true)
    }
}
