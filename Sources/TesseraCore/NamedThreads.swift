import CIntrinsics
import Foundation

/// Starts `body` on a thread of its own that the kernel knows by `name` (at most 15 bytes): it is
/// what `/proc/PID/task/*/comm`, `top -H`, `perf` and the benchmark harness's per-thread CPU
/// show. Foundation's `Thread.name` does not reach the kernel on Linux, so without this every
/// thread of a worker would show the name of the thread that started it.
@discardableResult
public func startThread(named name: String, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) -> Thread {
    precondition(name.utf8.count <= 15, "a thread name holds at most 15 bytes: \(name)")
    let thread = Thread {
        tessera_name_this_thread(name)
        body()
    }
    thread.name = name
    if let stackSize { thread.stackSize = stackSize }
    thread.start()
    return thread
}
