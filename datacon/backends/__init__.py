"""Storage backends. Each is imported only when the configuration chooses it."""
