"""`make run`: every process sees the real environment over `.env`.

The processes run in a copy of the project, whose `.env` and Procfile are
the test's own, started by the same script `make run` uses.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.processes import ROOT, Process, child_env

pytestmark = pytest.mark.integration

ROLES = ("web", "worker", "beat")

# Each role loads settings through the module its real process starts from,
# prints what it sees and waits to be stopped: honcho stops every process
# as soon as one of them exits.
REPORT = """\
import importlib, os, signal, sys

role = sys.argv[1]
importlib.import_module("neonhub.asgi" if role == "web" else "neonhub.celery")
from django.conf import settings

print(role, settings.DEBUG, settings.SECRET_KEY, settings.TIME_ZONE, flush=True)
signal.pause()
"""


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in (
        "neonhub",
        "web",
        "scheduling",
        "realtime",
        "observability",
        "agents",
        "core",
        "bin",
    ):
        shutil.copytree(ROOT / name, copy / name, ignore=ignore)
    shutil.copy2(ROOT / "manage.py", copy / "manage.py")
    (copy / ".venv").symlink_to(ROOT / ".venv")
    (copy / "report.py").write_text(REPORT)
    (copy / "Procfile").write_text("".join(f"{role}: python report.py {role}\n" for role in ROLES))
    (copy / ".env").write_text("DEBUG=1\nSECRET_KEY=the-dotenv-key\nTIME_ZONE=Europe/Paris\n")
    return copy


def reports(output: str) -> dict[str, list[str]]:
    """Each role's printed values, read from honcho's prefixed output."""
    lines = re.findall(r"\| (web|worker|beat) (.+)$", output, re.MULTILINE)
    return {role: values.split() for role, values in lines}


def test_make_run_starts_its_processes_through_the_script_tested_here():
    run_recipe = (ROOT / "Makefile").read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "bin/start-processes web worker beat" in run_recipe
    assert "honcho" not in run_recipe


@pytest.mark.django_db
def test_the_real_environment_beats_dotenv_in_every_process(project_copy):
    env = child_env(DEBUG="0", SECRET_KEY="the-environments-key")
    env.pop("TIME_ZONE", None)
    stack = Process("make-run", [str(project_copy / "bin" / "start-processes"), *ROLES], env)
    try:
        stack.wait_for(lambda: len(reports(stack.output())) == len(ROLES), 60, "every report")
    finally:
        stack.stop()
    # DEBUG and SECRET_KEY come from the environment; TIME_ZONE, which it
    # leaves unset, still from .env, read by settings.
    expected = ["False", "the-environments-key", "Europe/Paris"]
    assert reports(stack.output()) == {role: expected for role in ROLES}
