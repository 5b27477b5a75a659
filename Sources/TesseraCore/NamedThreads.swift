import CIntrinsics
#if canImport(Glibc)
import Glibc
#endif

/// Starts `body` on a thread of its own that the kernel knows by `name` (at most 15 bytes): it is
/// what `/proc/PID/task/*/comm`, `top -H`, `perf` and the benchmark harness's per-thread CPU
/// show (a thread started by Foundation's `Thread` shows the name of the thread that started it:
/// its `name` does not reach the kernel on Linux). The thread is detached; `stackSize` 0 is the
/// system's default.
public func startThread(named name: String, stackSize: Int = 0, _ body: @escaping @Sendable () -> Void) {
    precondition(name.utf8.count <= 15, "a thread name holds at most 15 bytes: \(name)")
    let start = Unmanaged.passRetained(ThreadStart(name: name, body: body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    if stackSize > 0 { pthread_attr_setstacksize(&attributes, stackSize) }
    var thread = pthread_t()
    let result = pthread_create(&thread, &attributes, { context in
        let start = Unmanaged<ThreadStart>.fromOpaque(context!).takeRetainedValue()
        tessera_name_this_thread(start.name)
        start.body()
        return nil
    }, start)
    precondition(result == 0, "cannot start the thread \(name): error \(result)")
}

private final class ThreadStart: Sendable {
    let name: String
    let body: @Sendable () -> Void

    init(name: String, body: @escaping @Sendable () -> Void) {
        self.name = name
        self.body = body
    }
}
