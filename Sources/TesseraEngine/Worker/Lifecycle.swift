import Synchronization

/// The worker's lifecycle as a state machine: every event either moves it to the next state and
/// says what the worker must do (the actions, performed by the caller after the lock is
/// released), or is illegal in the current state and throws.
///
///     created ──start──▶ joining ──assigned──▶ running ──drained (until-end)──▶ finishing
///                           │                     │                                 │
///                           └───stopRequested─────┴──────────stopRequested─────────▶│
///                                                                          finished │
///     any state but stopped ──failed──▶ failed                    stopped ◀────────┘
///
/// `finishing` makes everything durable, checkpoints, commits and leaves the group; `stopped`
/// and `failed` are final. The state can be read from any thread (health endpoints, tests).
package final class Lifecycle: Sendable {
    package enum State: String, Sendable {
        case created, joining, running, finishing, stopped, failed
    }

    package enum Event: String, Sendable {
        /// The loop starts polling.
        case start
        /// The group gave this worker an assignment (possibly empty).
        case assigned
        /// `--until-end`: every assigned partition is drained.
        case drained
        /// A stop was requested (SIGTERM, the service group shutting down).
        case stopRequested
        /// Finishing is done: the worker left its group.
        case finished
        /// An error stops the worker.
        case failed
    }

    package enum Action: String, Sendable {
        /// Tell health and readiness that the worker joined its group.
        case markJoined
        /// The input is complete: close the rows still open at each partition's stream time.
        case closeOpenRows
        /// Make everything durable, checkpoint every partition and commit behind the checkpoints.
        case makeDurable
        /// Leave the consumer group (revoking partitions).
        case leaveGroup
        /// Stop the Redis and storage threads.
        case stopWriters
    }

    package struct IllegalTransition: Error, CustomStringConvertible, Sendable {
        package var state: State
        package var event: Event
        package var description: String { "worker lifecycle: \(event.rawValue) is not possible while \(state.rawValue)" }
    }

    private let state = Mutex(State.created)

    package init() {}

    package var current: State { state.withLock { $0 } }

    /// Whether the loop should go on polling.
    package var isPolling: Bool { [.joining, .running].contains(current) }

    /// Applies an event; returns the actions to perform, in order.
    package func handle(_ event: Event) throws(IllegalTransition) -> [Action] {
        let result: Result<[Action], IllegalTransition> = state.withLock { s in
            guard let (next, actions) = Self.transition(from: s, on: event) else {
                return .failure(IllegalTransition(state: s, event: event))
            }
            s = next
            return .success(actions)
        }
        return try result.get()
    }

    /// The transition table.
    static func transition(from state: State, on event: Event) -> (State, [Action])? {
        switch (state, event) {
        case (.created, .start): (.joining, [])
        case (.joining, .assigned): (.running, [.markJoined])
        case (.running, .assigned), (.finishing, .assigned): (state, [])
        case (.running, .drained): (.finishing, [.closeOpenRows, .makeDurable, .leaveGroup])
        case (.joining, .stopRequested), (.running, .stopRequested): (.finishing, [.makeDurable, .leaveGroup])
        case (.finishing, .finished): (.stopped, [.stopWriters])
        case (.created, .failed), (.joining, .failed), (.running, .failed), (.finishing, .failed): (.failed, [.stopWriters])
        default: nil
        }
    }
}
