from __future__ import annotations

import json
from typing import Any

from .base import RunContext, RunFailed, Runner, config_error, expect_number


class DemoRunner(Runner):
    """Counts through a few steps; used by demos, tests and benchmarks.

    The first ``failTimes`` attempts of a run fail at the last step, so retries
    can be watched end to end. A run's ``input.echo`` is repeated at the end
    of its output, so a run's input can be seen to arrive.
    """

    name = "demo"
    description = "Sleeps through a number of steps, reporting progress after each."

    def validate_configuration(self, configuration: dict[str, Any]) -> dict[str, Any]:
        expect_number(configuration, "steps", 3, minimum=0, maximum=1000, integer=True)
        expect_number(configuration, "stepSeconds", 1.0, minimum=0, maximum=3600)
        expect_number(configuration, "failTimes", 0, minimum=0, maximum=100, integer=True)
        output = configuration.get("output", "")
        if not isinstance(output, str):
            raise config_error("output", "Must be a string.")
        return configuration

    def run(self, context: RunContext) -> str:
        config = context.configuration
        steps = int(config.get("steps", 3))
        step_seconds = float(config.get("stepSeconds", 1.0))
        fail_times = int(config.get("failTimes", 0))
        context.log(f"Attempt {context.attempt}: {steps} steps of {step_seconds:g} s.")
        for step in range(1, steps + 1):
            context.sleep(step_seconds)
            if step == steps and context.attempt <= fail_times:
                context.log(f"Failing on purpose at step {step}.", level="ERROR")
                raise RunFailed(f"Demo failure on attempt {context.attempt} of {fail_times}.")
            context.log(f"Step {step} of {steps} done.")
            context.report_progress(100 * step / steps, f"Step {step} of {steps}")
        if steps == 0 and context.attempt <= fail_times:
            raise RunFailed(f"Demo failure on attempt {context.attempt} of {fail_times}.")
        output = config.get("output") or f"Demo run finished {steps} steps."
        if "echo" in context.input:
            echoed = context.input["echo"]
            output += f" Echo: {echoed if isinstance(echoed, str) else json.dumps(echoed)}"
        return output
