"""The job domain: pure decisions about jobs and attempts, `(state, command, now) -> events`, with no I/O."""
