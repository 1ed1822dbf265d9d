"""Run logs: batched writes, the session's bound, cleaning, frames, and the REST reader."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import ExecutionSession, SessionLogLine
from observability import metrics
from scheduling import run_logs
from scheduling.run_logs import FRAMES_PER_FLUSH, RunLog, level_of
from tests.factories import AgentFactory, SessionFactory

pytestmark = pytest.mark.django_db

Status = ExecutionSession.Status


@pytest.fixture
def frames(monkeypatch):
    sent: list[list] = []
    monkeypatch.setattr(
        run_logs.events, "emit_log_lines", lambda session, agent, lines: sent.append(lines)
    )
    return sent


@pytest.fixture
def dropped(monkeypatch):
    counted: list[int] = []
    monkeypatch.setattr(metrics, "log_lines_dropped", counted.append)
    return counted


@pytest.fixture
def run_log(settings) -> RunLog:
    # Flushed by count and by hand only, so the tests see every batch.
    settings.SCHEDULER_PROGRESS_MIN_INTERVAL = 3600
    session = SessionFactory(status=Status.RUNNING)
    return RunLog(session, session.agent)


def stored(run_log: RunLog) -> list[tuple[int, str, str]]:
    return list(
        SessionLogLine.objects.filter(session=run_log.session)
        .order_by("seq")
        .values_list("seq", "level", "message")
    )


def test_lines_are_written_in_batches_not_one_statement_each(run_log, frames):
    with CaptureQueriesContext(connection) as queries:
        for number in range(120):
            run_log.write(f"line {number}")
        run_log.flush()
    inserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 3  # 50, 50, then the last 20 when the run ends
    assert [seq for seq, _, _ in stored(run_log)] == list(range(1, 121))
    assert [len(batch) for batch in frames] == [FRAMES_PER_FLUSH] * 3


def test_a_flush_with_nothing_waiting_writes_nothing(run_log, frames):
    with CaptureQueriesContext(connection) as queries:
        run_log.flush()
    assert queries.captured_queries == [] and frames == []


def test_the_log_keeps_1000_lines_then_marks_the_session_truncated(run_log, frames, dropped):
    for number in range(1005):
        run_log.write(f"line {number}")
    run_log.flush()
    assert len(stored(run_log)) == 1000
    assert stored(run_log)[-1] == (1000, "INFO", "line 999")
    assert ExecutionSession.objects.get(pk=run_log.session.pk).log_truncated is True
    assert sum(dropped) == 5


def test_the_log_keeps_256_kib_of_text(run_log, frames, dropped):
    # Lines are cut at 8192 characters: 32 of them fill 256 KiB.
    for _ in range(40):
        run_log.write("x" * 10_000)
    run_log.flush()
    lines = stored(run_log)
    assert len(lines) == 32 and {len(message) for _, _, message in lines} == {8192}
    assert run_log.truncated and sum(dropped) == 8


def test_multibyte_text_counts_its_bytes(run_log, frames, dropped):
    for _ in range(20):
        run_log.write("é" * 8000)  # 16,000 bytes a line
    run_log.flush()
    assert len(stored(run_log)) == 16  # 256,000 bytes; a 17th would pass 262,144


def test_a_line_too_big_for_what_is_left_truncates_even_if_a_small_one_would_fit(
    run_log, frames, dropped
):
    for _ in range(32):
        run_log.write("x" * 8192)
    run_log.write("small")
    run_log.flush()
    assert len(stored(run_log)) == 32 and run_log.truncated


def test_anything_a_runner_logs_is_stored(run_log, frames):
    run_log.write("nul\x00 and \ud800 lone")
    run_log.write(b"bytes \xff")
    run_log.write(None)
    run_log.write({"a": 1})
    run_log.flush()
    assert [message for _, _, message in stored(run_log)] == [
        "nul\\x00 and \\ud800 lone",
        "bytes \\xff",
        "",
        "{'a': 1}",
    ]


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("info", "INFO"),
        ("Warn", "WARNING"),
        ("warning", "WARNING"),
        ("ERROR", "ERROR"),
        ("critical", "ERROR"),
        ("debug", "DEBUG"),
        ("loud", "INFO"),
        (40, "INFO"),
        (None, "INFO"),
    ],
)
def test_levels_are_one_of_four(given, kept):
    assert level_of(given) == kept


def test_a_database_error_loses_the_batch_but_not_the_run(run_log, frames, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(run_logs, "write_lines", refuse)
    run_log.write("lost")
    run_log.flush()  # does not raise
    monkeypatch.undo()
    run_log.write("kept")
    run_log.flush()
    assert stored(run_log) == [(2, "INFO", "kept")]


def test_a_deleted_session_takes_its_log_with_it(run_log, frames):
    run_log.write("gone soon")
    run_log.flush()
    run_log.session.delete()
    assert not SessionLogLine.objects.exists()


# --- GET /api/sessions/{id}/logs -------------------------------------------------------


@pytest.fixture
def logged(user):
    session = SessionFactory(agent=AgentFactory(owner=user), status=Status.SUCCEEDED)
    log = RunLog(session, session.agent)
    for number in range(1, 8):
        log.write(f"line {number}", "WARNING" if number == 3 else "INFO")
    log.flush()
    return session


def logs_path(session) -> str:
    return f"/api/sessions/{session.pk}/logs"


def test_the_lines_come_oldest_first_after_a_seq(api, logged):
    data = api.get(logs_path(logged)).json()["data"]
    assert [line["seq"] for line in data["lines"]] == list(range(1, 8))
    assert data["truncated"] is False
    first = data["lines"][0]
    assert set(first) == {"seq", "at", "level", "message"} and first["at"].endswith("Z")
    assert data["lines"][2]["level"] == "WARNING"

    page = api.get(f"{logs_path(logged)}?after=3&limit=2").json()["data"]
    assert [(line["seq"], line["message"]) for line in page["lines"]] == [
        (4, "line 4"),
        (5, "line 5"),
    ]
    assert api.get(f"{logs_path(logged)}?after=7").json()["data"]["lines"] == []


def test_a_session_without_a_log_answers_no_lines(api, user):
    session = SessionFactory(agent=AgentFactory(owner=user))
    assert api.get(logs_path(session)).json()["data"] == {"lines": [], "truncated": False}


def test_a_truncated_log_says_so(api, logged):
    ExecutionSession.objects.filter(pk=logged.pk).update(log_truncated=True)
    assert api.get(logs_path(logged)).json()["data"]["truncated"] is True


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("after=x", "after"),
        ("after=-1", "after"),
        ("after=1.5", "after"),
        ("after=1001", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
    ],
)
def test_a_bad_query_is_refused_by_name(api, logged, query, field):
    response = api.get(f"{logs_path(logged)}?{query}")
    assert response.status_code == 400
    assert list(response.json()["details"]) == [field]


def test_another_users_session_is_not_found(api, other_user):
    foreign = SessionFactory(agent=AgentFactory(owner=other_user))
    response = api.get(logs_path(foreign))
    assert response.status_code == 404
    assert response.json()["error"] == "Session not found"
