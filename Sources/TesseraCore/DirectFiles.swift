import CIntrinsics

/// Creates (or truncates) `path` for writing with direct I/O (`O_DIRECT`: no copy into the page
/// cache; writes aligned to 4 KiB in memory, offset and length): a descriptor, or -1 with `errno`
/// set (EINVAL where the file system does not take direct I/O). TesseraOffline's `OutputFile`
/// writes large files through it.
public func createForDirectWrites(_ path: String) -> Int32 { tessera_create_direct(path) }
