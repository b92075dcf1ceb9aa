"""The core every stage shares: the contract, the SQLite store, the incident log, clock, heap, reader threads."""
