import CIntrinsics

/// Makes malloc give blocks of `bytes` and more memory of their own, returned to the system when
/// they are freed, instead of arena memory it may keep (glibc's `M_MMAP_THRESHOLD`; setting it
/// ends glibc's adaptive threshold). Process-wide: called by the worker as it starts.
public func returnLargeBlocksWhenFreed(from bytes: Int) { tessera_malloc_own_memory_from(bytes) }
