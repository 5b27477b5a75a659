import CIntrinsics

/// A crash ends the process: SIGSEGV, SIGBUS, SIGILL and SIGFPE terminate it even when sent from
/// outside, after the Swift runtime's backtrace (a worker that went on after one would run on
/// state it cannot trust). Called by long-running commands as they start.
public func endProcessOnFatalSignals() { tessera_end_on_fatal_signals() }
