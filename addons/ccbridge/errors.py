"""Errors shared across ccbridge."""


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what is allowed."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem
