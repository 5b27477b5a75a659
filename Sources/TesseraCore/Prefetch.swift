import CIntrinsics

/// Starts loading the cache line at `address` for writing, for a loop that reaches it a few rows
/// later (the aggregation core's records; the online writer's pending rows).
@inlinable @inline(__always)
public func prefetch(_ address: UnsafeRawPointer) { tessera_prefetch(address) }
