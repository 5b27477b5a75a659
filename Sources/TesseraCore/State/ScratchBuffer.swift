/// Growable raw storage for per-batch scratch (one value per row), written through a pointer in
/// hot loops without Array's per-write uniqueness checks.
///
/// `@unchecked Sendable`: a buffer is only touched by the aggregator that owns it, and owners
/// replace a buffer they share with a copy (`isKnownUniquelyReferenced`) before writing, so two
/// aggregators never write the same memory.
public final class ScratchBuffer<Element: BitwiseCopyable>: @unchecked Sendable {
    public private(set) var base: UnsafeMutablePointer<Element>
    public private(set) var capacity: Int

    public init(capacity: Int = 0) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// Makes room for `n` elements; previous contents are not kept.
    public func reserve(_ n: Int) {
        guard n > capacity else { return }
        base.deallocate()
        capacity = max(n, capacity * 2)
        base = .allocate(capacity: capacity)
    }

    public subscript(i: Int) -> Element {
        get { base[i] }
        set { base[i] = newValue }
    }

    public func fill(_ value: Element, count n: Int) {
        base.update(repeating: value, count: n)
    }

    public var buffer: UnsafeMutablePointer<Element> { base }
}

extension ScratchBuffer {
    /// `buffer` itself, or a fresh buffer when it is shared with another aggregator.
    public static func unique(_ buffer: inout ScratchBuffer) {
        if !isKnownUniquelyReferenced(&buffer) { buffer = ScratchBuffer(capacity: buffer.capacity) }
    }
}
