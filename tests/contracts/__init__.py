"""Input, output and dead-letter contracts: schemas/ and streams.contracts."""
