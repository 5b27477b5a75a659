import Testing
@testable import TesseraEngine

/// The worker's lifecycle: legal runs give the actions the worker performs, in order; every
/// other event is refused, loudly, and leaves the state as it was.
@Suite("Worker lifecycle")
struct LifecycleTests {
    @Test("an --until-end run: join, drain, finish, stop")
    func untilEnd() throws {
        let l = Lifecycle()
        #expect(try l.handle(.start) == [])
        #expect(try l.handle(.assigned) == [.markJoined])
        #expect(try l.handle(.assigned) == [])
        #expect(try l.handle(.drained) == [.closeOpenRows, .makeDurable, .leaveGroup])
        #expect(l.current == .finishing && !l.isPolling)
        #expect(try l.handle(.finished) == [.stopWriters])
        #expect(l.current == .stopped)
    }

    @Test("a stop request before or after joining makes everything durable, without closing open rows")
    func stop() throws {
        for joined in [false, true] {
            let l = Lifecycle()
            _ = try l.handle(.start)
            if joined { _ = try l.handle(.assigned) }
            #expect(try l.handle(.stopRequested) == [.makeDurable, .leaveGroup])
            #expect(try l.handle(.finished) == [.stopWriters])
        }
    }

    @Test("illegal events throw and change nothing", arguments: [
        ([], Lifecycle.Event.assigned), ([.start], .drained), ([.start], .start), ([.start], .finished),
        ([.start, .assigned, .drained], .stopRequested), ([.start, .assigned, .drained, .finished], .failed),
        ([.start, .failed], .start), ([], .stopRequested),
    ] as [([Lifecycle.Event], Lifecycle.Event)])
    func illegal(before: [Lifecycle.Event], event: Lifecycle.Event) throws {
        let l = Lifecycle()
        for e in before { _ = try l.handle(e) }
        let state = l.current
        #expect(throws: Lifecycle.IllegalTransition.self) { try l.handle(event) }
        #expect(l.current == state)
    }

    @Test("a failure from any running state stops the writers")
    func failure() throws {
        for prefix in [[], [.start], [.start, .assigned], [.start, .assigned, .drained]] as [[Lifecycle.Event]] {
            let l = Lifecycle()
            for e in prefix { _ = try l.handle(e) }
            #expect(try l.handle(.failed) == [.stopWriters])
            #expect(l.current == .failed)
        }
    }
}
