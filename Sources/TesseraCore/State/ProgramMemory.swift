/// Immutable integers and bytes a compiled view's hot loops read — window lengths, field offsets,
/// empty templates — in memory that lives as long as the view's program. Kernels and layouts hold
/// plain pointers into it (`IntList`), so reading them costs no reference counting.
final class ProgramMemory: @unchecked Sendable {  // written only while the program is compiled, read-only after
    private var blocks: [UnsafeMutablePointer<Int>] = []
    private var used = 0
    private var capacity = 0

    deinit { for b in blocks { b.deallocate() } }

    /// A stable copy of `values`.
    func list(_ values: [Int]) -> IntList {
        guard !values.isEmpty else { return IntList(base: nil, count: 0) }
        let p = room(values.count)
        p.initialize(from: values, count: values.count)
        return IntList(base: UnsafePointer(p), count: values.count)
    }

    /// A stable copy of `bytes` (zero-padded to whole words).
    func bytes(_ bytes: [UInt8]) -> UnsafeRawPointer {
        let p = room(max(1, (bytes.count + 7) / 8))
        p.initialize(repeating: 0, count: max(1, (bytes.count + 7) / 8))
        bytes.withUnsafeBytes { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        return UnsafeRawPointer(p)
    }

    /// A stable copy of trivially copyable values.
    func values<T: BitwiseCopyable>(_ values: [T]) -> UnsafePointer<T> {
        let words = max(1, (values.count * MemoryLayout<T>.stride + 7) / 8)
        let p = UnsafeMutableRawPointer(room(words))
        values.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return UnsafePointer(p.assumingMemoryBound(to: T.self))
    }

    private func room(_ words: Int) -> UnsafeMutablePointer<Int> {
        if used + words > capacity {
            capacity = max(4_096, words)
            blocks.append(.allocate(capacity: capacity))
            used = 0
        }
        defer { used += words }
        return blocks[blocks.count - 1] + used
    }
}

/// A fixed list of integers in a `ProgramMemory`.
struct IntList: BitwiseCopyable, @unchecked Sendable, RandomAccessCollection {  // points into immutable program memory
    let base: UnsafePointer<Int>?
    let count: Int

    var startIndex: Int { 0 }
    var endIndex: Int { count }

    @inline(__always)
    subscript(i: Int) -> Int { base.unsafelyUnwrapped[i] }
}
