import Foundation
import Synchronization
import Testing
import TesseraCore

/// A thread started by `startThread(named:)` carries its name into the kernel, where `top -H`,
/// `perf` and the benchmark harness read it (`/proc/thread-self/comm`).
@Suite("Named threads")
struct NamedThreadTests {
    @Test("the kernel knows a started thread by its name")
    func nameReachesTheKernel() throws {
        let seen = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        startThread(named: "tessera-test") {
            seen.withLock { $0 = try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8) }
            done.signal()
        }
        done.wait()
        #expect(seen.withLock { $0 } == "tessera-test\n")
        // The thread that started it kept its own name.
        let own = try String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
        #expect(own != "tessera-test\n")
    }
}
