from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.fields import empty
from rest_framework.utils import html
from rest_framework_simplejwt import serializers as jwt_serializers

from agents.models import AIAgent, AuditEntry, ExecutionSession, Priority
from agents.runners import ConfigurationError, UnknownAgentType, get_runner, registered_types
from core.text import is_storable
from scheduling.models import ScheduleSlot

PRIORITY_NAMES = {choice.value: choice.name for choice in Priority}
PRIORITY_VALUES = {name: value for value, name in PRIORITY_NAMES.items()}


def all_text_storable(value: Any) -> bool:
    """Whether every key and string can be stored and sent back: PostgreSQL's
    jsonb refuses NUL, and nothing can encode an unpaired surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and not is_storable(item):
            return False
    return True


class PriorityField(serializers.Field):
    """Priorities travel as names (LOW ... CRITICAL) and are stored as numbers."""

    default_error_messages = {
        "invalid": "Priority must be one of LOW, NORMAL, HIGH, CRITICAL; got {value!r}.",
    }

    def to_representation(self, value: int) -> str:
        return PRIORITY_NAMES[value]

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str) and data.upper() in PRIORITY_VALUES:
            return PRIORITY_VALUES[data.upper()]
        self.fail("invalid", value=data)


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def _shown(value: Any) -> str:
    """A sent value as an error message quotes it: short, whatever was sent."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


class StrictCharField(serializers.CharField):
    """Only strings: 5 or true are rejected rather than stored as "5" or "True"."""

    default_error_messages = {"invalid": "Must be a string, not {kind}."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid", kind=_json_kind(data))
        return super().to_internal_value(data)


class TimezoneField(StrictCharField):
    """An IANA timezone name; setting the schedule checks it against the known zones."""


# A form can only send text; these two spellings are its booleans.
FORM_BOOLEANS = {"true": True, "false": False}


class StrictBooleanField(serializers.BooleanField):
    """Only JSON true/false: "yes" or 1 are rejected rather than guessed at."""

    default_error_messages = {"invalid": "Must be true or false."}
    # DRF reads a boolean missing from a form as false (an unticked checkbox):
    # a form that sends only a priority would pause the schedule. Missing is
    # missing, whatever the content type.
    default_empty_html = empty

    def get_value(self, dictionary: Any) -> Any:
        value = super().get_value(dictionary)
        if html.is_html_input(dictionary) and value in FORM_BOOLEANS:
            return FORM_BOOLEANS[value]
        return value

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid")


class StrictIntegerField(serializers.IntegerField):
    """Only whole JSON numbers: "5", 5.0 or true are rejected rather than converted."""

    default_error_messages = {"invalid": "Must be a whole number, not {kind}."}

    def get_value(self, dictionary: Any) -> Any:
        value = super().get_value(dictionary)
        # A form can only send text: there, digits are the number. An empty
        # value is refused like any other text, not read as "not sent".
        if html.is_html_input(dictionary) and self.field_name in dictionary:
            text = dictionary[self.field_name]
            if text == "" and self.allow_null:
                return None
            if isinstance(text, str) and text.isascii() and text.isdigit():
                return int(text)
            return text
        return value

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid", kind=_shown(data) if isinstance(data, float) else _json_kind(data))
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    """One of the names exactly: no other spelling, and no number standing for one."""

    default_error_messages = {"invalid_choice": "Must be one of {names}; got {value}."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or data not in self.choice_strings_to_values:
            names = list(self.choice_strings_to_values)
            self.fail(
                "invalid_choice",
                names=f"{', '.join(names[:-1])} or {names[-1]}",
                value=_shown(data),
            )
        return self.choice_strings_to_values[data]


def parse_aware_datetime(value: Any) -> datetime:
    """An ISO 8601 time with its UTC offset, in UTC; raises ValueError with a sentence otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"Must be an ISO 8601 time as a string, not {_json_kind(value)}.")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{_shown(value)} is not an ISO 8601 time such as 2026-01-02T09:00:00Z."
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{_shown(value)} has no UTC offset: add one, such as Z or +01:00 "
            "(in a URL, + is written %2B)."
        )
    try:
        # In UTC, as it is stored and compared. Python takes offsets up to a
        # day, PostgreSQL only up to 16 hours; and a time at the calendar's
        # edge may have no UTC equivalent at all.
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{_shown(value)} is out of range.") from None


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time that says its UTC offset; a time without one is refused, not guessed."""

    def to_internal_value(self, data: Any) -> datetime:
        try:
            return parse_aware_datetime(data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


def storable_object(value: Any, name: str) -> dict[str, Any]:
    """``value`` if it is a JSON object whose text every database stores, else a
    ValidationError starting with ``name``."""
    if not isinstance(value, dict):
        raise serializers.ValidationError(f"{name} must be a JSON object.")
    if not all_text_storable(value):
        raise serializers.ValidationError(
            f"{name} text must be valid Unicode without NUL characters."
        )
    return value


class AgentSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }
    priority = PriorityField(read_only=True)
    configuration = serializers.JSONField(required=False)

    class Meta:
        model = AIAgent
        fields = [
            "id",
            "name",
            "agent_type",
            "status",
            "configuration",
            "schedule_expression",
            "schedule_enabled",
            "schedule_timezone",
            "priority",
            "next_run_at",
            "last_run_at",
            "retry_count",
            "last_error",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "status",
            "schedule_expression",
            "schedule_enabled",
            "schedule_timezone",
            "next_run_at",
            "last_run_at",
            "retry_count",
            "last_error",
            "created_at",
            "updated_at",
        ]

    def validate_name(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Name must not be blank.")
        return value.strip()

    def validate_agent_type(self, value: str) -> str:
        try:
            get_runner(value)
        except UnknownAgentType:
            raise serializers.ValidationError(
                f"Unknown agent type {value!r}. Valid types: {', '.join(registered_types())}."
            ) from None
        return value

    def validate_configuration(self, value: Any) -> dict[str, Any]:
        return storable_object(value, "Configuration")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        agent_type = attrs.get("agent_type") or getattr(self.instance, "agent_type", None)
        configuration = attrs.get(
            "configuration", getattr(self.instance, "configuration", None) or {}
        )
        if agent_type and ("configuration" in attrs or "agent_type" in attrs):
            try:
                attrs["configuration"] = get_runner(agent_type).validate_configuration(
                    configuration
                )
            except ConfigurationError as exc:
                raise serializers.ValidationError(
                    {"configuration": {exc.key: [exc.message]}}
                ) from None
        return attrs


class SessionSerializer(serializers.ModelSerializer):
    agent_id = serializers.UUIDField(read_only=True)
    duration = serializers.IntegerField(
        source="duration_ms", read_only=True, allow_null=True, help_text="Milliseconds."
    )

    class Meta:
        model = ExecutionSession
        fields = [
            "id",
            "agent_id",
            "status",
            "trigger",
            "attempt",
            "scheduled_for",
            "started_at",
            "completed_at",
            "success",
            "duration",
            "output_summary",
            "error_message",
            "progress",
            "input",
            "created_at",
        ]
        read_only_fields = fields


class SlotSerializer(serializers.Serializer):
    """One row of the slot ledger, read as a dict of its columns."""

    scheduled_for = serializers.DateTimeField(help_text="The slot: when the schedule was due.")
    outcome = serializers.ChoiceField(
        choices=ScheduleSlot.Outcome.choices,
        help_text="QUEUED, RAN (its session started; the session says how it ended), SKIPPED "
        "(overlap policy), CANCELLED (by CANCEL_OTHER or a user), MISSED (no beat ran and the "
        "catch-up policy let it go) or BACKFILL.",
    )
    session_id = serializers.UUIDField(
        allow_null=True, help_text="The run this slot queued; null if it queued none."
    )
    reason = serializers.CharField(help_text="Why the slot ended this way, in a sentence.")

    class Meta:
        ref_name = "Slot"


class AuditEntrySerializer(serializers.Serializer):
    """One change to an agent or its schedule, as ``agents.audit`` recorded it."""

    at = serializers.DateTimeField(help_text="When the change was made.")
    actor = serializers.CharField(
        source="actor_name", help_text='The username of who made it, or "system".'
    )
    # The contract's key; a field of that name shadows Field.source only for the type checker.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=AuditEntry.Source.choices,
        help_text="Through what: the API, the agent admin, the beat admin (an edit of the "
        "agent's beat entry, mirrored onto the agent) or the system (a snooze that ended).",
    )
    action = serializers.CharField(
        help_text="What was done: agent.created, agent.updated, agent.deleted, schedule.set, "
        "schedule.changed, schedule.paused, schedule.resumed, schedule.snooze_ended, "
        "schedule.removed or backfill."
    )
    changes = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
        help_text="Each changed field, by the name the API gives it, as [old, new] as the API "
        "shows them; null for none.",
    )

    class Meta:
        ref_name = "AuditEntry"


class TokenObtainPairSerializer(jwt_serializers.TokenObtainPairSerializer):
    """simplejwt's, with credentials that must be strings."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[self.username_field] = StrictCharField(write_only=True)
        self.fields["password"] = StrictCharField(write_only=True, style={"input_type": "password"})


class TokenRefreshSerializer(jwt_serializers.TokenRefreshSerializer):
    """simplejwt's, answering a token whose user was deleted like one whose user
    was deactivated (simplejwt lets the failed lookup escape as a 500)."""

    refresh = StrictCharField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        try:
            return super().validate(attrs)
        except get_user_model().DoesNotExist:
            raise AuthenticationFailed(
                self.error_messages["no_active_account"], "no_active_account"
            ) from None
