"""The synthetic event generator: streams.simulate."""
