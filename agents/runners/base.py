"""What a runner is and what it gets when it runs.

A runner is the code behind an ``agentType``. It validates its configuration
when an agent is created or edited, and executes one attempt when a worker
runs the agent.
"""

from __future__ import annotations

from typing import Any, Protocol


class ConfigurationError(ValueError):
    """A runner refuses a configuration; ``key`` names the offending entry.

    The API answers it with a 400 under ``configuration.<key>``, the admin as
    a form error on the configuration field.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


class RunCancelled(Exception):
    """Raised inside a run when its session was cancelled."""


class RunFailed(Exception):
    """A runner's way to fail an attempt with a message meant for people."""


class RunContext(Protocol):
    session_id: str
    agent_id: str
    agent_name: str
    attempt: int
    configuration: dict[str, Any]
    # What this run was asked to work on: the run request's ``input`` object
    # ({} for scheduled runs); a retry gets its run's.
    input: dict[str, Any]

    def log(self, message: object, level: str = "INFO") -> None:
        """Add a line to the run's log (DEBUG, INFO, WARNING or ERROR); kept up
        to the session's bound, sent live to the agent's room."""

    def report_progress(self, percent: float, message: str = "") -> None: ...

    def check_cancelled(self) -> None:
        """Raise RunCancelled if the session has been cancelled."""

    def sleep(self, seconds: float) -> None:
        """Wait, waking early (with RunCancelled) if the session is cancelled."""


class Runner:
    """Base class: subclasses set ``name`` and implement both methods."""

    name: str = ""
    description: str = ""

    def validate_configuration(self, configuration: dict[str, Any]) -> dict[str, Any]:
        """Return the configuration to store, or raise ConfigurationError."""
        return configuration

    def run(self, context: RunContext) -> str:
        """Execute one attempt and return its output summary.

        Output, failure messages and progress messages are stored as
        ``core.text.storable_text`` makes them, so any text a runner produces
        can be recorded.
        """
        raise NotImplementedError


def config_error(key: str, message: str) -> ConfigurationError:
    return ConfigurationError(key, f"Configuration '{key}': {message}")


def expect_number(
    configuration: dict[str, Any],
    key: str,
    default: float,
    *,
    minimum: float,
    maximum: float,
    integer: bool = False,
) -> float:
    value = configuration.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise config_error(key, "Must be a number.")
    if integer and int(value) != value:
        raise config_error(key, "Must be a whole number.")
    if not minimum <= value <= maximum:
        raise config_error(key, f"Must be between {minimum:g} and {maximum:g}.")
    return int(value) if integer else float(value)
