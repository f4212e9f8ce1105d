"""Live recognition: audio sources, incremental features, the chunked recognizer and its events."""
