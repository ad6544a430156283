"""Reliability and security suite: faults, concurrency, differential testing, bad input, secrets."""
