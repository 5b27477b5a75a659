import CIntrinsics

/// Creates (or truncates) `path` for writing with direct I/O (`O_DIRECT`: no copy into the page
/// cache; writes aligned to 4 KiB in memory, offset and length): a descriptor, or -1 with `errno`
/// set (EINVAL where the file system does not take direct I/O). TesseraOffline's
/// `StreamedFile` writes large files through it.
public func createForDirectWrites(_ path: String) -> Int32 { tessera_create_direct(path) }

/// Turns direct I/O off for a descriptor from `createForDirectWrites` (for a file system that
/// refuses a direct write part-way): 0, or -1 with `errno` set.
public func endDirectWrites(_ fd: Int32) -> Int32 { tessera_end_direct(fd) }
