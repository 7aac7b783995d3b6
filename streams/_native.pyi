# The native hot path (native/, Rust; docs/grading.md, "Decision"). Slice 1: the state.

def reencode_state(data: bytes) -> bytes:
    """Decode an encoded state (format 2) and encode it again; ValueError naming the
    field for other bytes."""
