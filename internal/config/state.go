package config

// State is where stellwerk keeps what changes while it runs. The ledger's
// part (Redis, the in-memory spend file) is LedgerState, inlined so that
// the key store's settings sit beside it under the same `state:`.
type State struct {
	LedgerState `yaml:",inline"`
}
