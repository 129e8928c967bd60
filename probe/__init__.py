"""touchpoint probe: capture sources, decoding into records, batching and publishing."""
