"""What several benchmarks share (not benchmarks themselves)."""
