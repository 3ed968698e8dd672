"""A taxonomy that changes: the diff between versions, applying an update, exports."""
