from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from core.text import storable_text

from .base import RunContext, Runner, config_error


class PythonRunner(Runner):
    """Calls an allow-listed Python function with the run context."""

    name = "python"
    description = "Calls a Python function named in AGENT_PYTHON_CALLABLES."

    def validate_configuration(self, configuration: dict[str, Any]) -> dict[str, Any]:
        dotted_path = configuration.get("callable")
        if not isinstance(dotted_path, str) or not dotted_path:
            raise config_error("callable", "A dotted path such as 'package.module.function'.")
        if dotted_path not in settings.AGENT_PYTHON_CALLABLES:
            raise config_error(
                "callable", "Not allowed: the server's AGENT_PYTHON_CALLABLES does not list it."
            )
        return configuration

    def run(self, context: RunContext) -> str:
        dotted_path = context.configuration["callable"]
        # Checked again at run time: the allow-list may have shrunk since.
        self.validate_configuration(context.configuration)
        # The callable may return anything: bytes, numbers, None.
        return storable_text(import_string(dotted_path)(context))
