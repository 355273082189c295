"""ccbridge viewer: Claude Code sessions as threaded conversations."""
