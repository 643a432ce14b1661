"""Data: sources -> records (one internal message form) -> rendered text -> token ids with loss masks."""
