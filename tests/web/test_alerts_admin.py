"""Alert channels, incidents and an agent's alert rules in the admin, through real POSTs."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.models import AuditEntry
from scheduling import alerts
from scheduling.incidents import open_incident, resolve
from scheduling.models import AlertChannel, Incident
from tests.factories import AgentFactory, UserFactory
from tests.web.test_admin import change_url, messages_of, post_change

pytestmark = pytest.mark.django_db

CHANNELS = "admin:scheduling_alertchannel_changelist"
INCIDENTS = "admin:scheduling_incident_changelist"


def channel_of(owner, name: str = "Ops mail", **fields) -> AlertChannel:
    fields = {"kind": "email", "target": "ops@example.com", "secret": "s" * 64, **fields}
    return AlertChannel.objects.create(owner=owner, name=name, **fields)


def add_channel(client, owner, follow: bool = False, **fields):
    data = {"owner": owner.pk, "name": "Ops", "kind": "email", "target": "ops@example.com"}
    url = reverse("admin:scheduling_alertchannel_add")
    return client.post(url, {**data, **fields}, follow=follow)


# --- channels -----------------------------------------------------------------------


def test_adding_an_email_channel_stores_it_with_a_secret(admin_client):
    owner = UserFactory()
    response = add_channel(admin_client, owner)
    assert response.status_code == 302
    channel = AlertChannel.objects.get()
    assert (channel.owner, channel.kind, channel.target) == (owner, "email", "ops@example.com")
    assert len(channel.secret) == 64


def test_a_bad_email_target_is_a_form_error_and_nothing_is_stored(admin_client):
    response = add_channel(admin_client, UserFactory(), target="not-an-address")
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["target"] == ["Must be an email address."]
    assert not AlertChannel.objects.exists()


def test_an_internal_webhook_address_is_refused_as_the_api_refuses_it(admin_client):
    response = add_channel(
        admin_client, UserFactory(), kind="webhook", target="http://127.0.0.1:9/hook"
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["target"]
    assert not AlertChannel.objects.exists()


def test_a_new_webhook_channel_shows_its_secret_once_and_never_on_the_list(admin_client, settings):
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    response = add_channel(
        admin_client,
        UserFactory(),
        name="Hook",
        kind="webhook",
        target="http://127.0.0.1:9/hook",
        follow=True,
    )
    channel = AlertChannel.objects.get()
    shown = [text for text in messages_of(response) if channel.secret in text]
    assert len(shown) == 1 and "not shown again" in shown[0]
    listing = admin_client.get(reverse(CHANNELS))
    assert channel.secret not in listing.content.decode()


def test_the_channel_list_shows_the_last_error(admin_client):
    channel_of(UserFactory(), last_error="Connection refused\nmore detail")
    response = admin_client.get(reverse(CHANNELS))
    assert "Connection refused" in response.content.decode()
    assert "more detail" not in response.content.decode()


def test_the_secret_is_not_a_field_of_the_change_form(admin_client):
    channel = channel_of(UserFactory())
    response = admin_client.get(reverse("admin:scheduling_alertchannel_change", args=[channel.pk]))
    assert "secret" not in response.context["adminform"].form.fields
    assert channel.secret not in response.content.decode()


# --- incidents ----------------------------------------------------------------------


def test_incidents_are_listed_and_filtered_but_read_only(admin_client):
    agent = AgentFactory(name="Nightly")
    late = open_incident(agent, Incident.Kind.LATE, "Late by a lot")
    failing = open_incident(agent, Incident.Kind.FAILING, "Three failed")
    assert late and failing
    resolve(late, agent, "Its run started.")

    everything = admin_client.get(reverse(INCIDENTS))
    assert list(everything.context["cl"].queryset) == [failing, late]
    open_only = admin_client.get(reverse(INCIDENTS), {"open": "yes"})
    assert list(open_only.context["cl"].queryset) == [failing]
    late_only = admin_client.get(reverse(INCIDENTS), {"kind__exact": "LATE"})
    assert list(late_only.context["cl"].queryset) == [late]

    assert admin_client.get(reverse("admin:scheduling_incident_add")).status_code == 403
    detail = admin_client.get(reverse("admin:scheduling_incident_change", args=[late.pk]))
    assert detail.status_code == 200
    assert "_save" not in detail.content.decode()
    delete = reverse("admin:scheduling_incident_delete", args=[late.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Incident.objects.count() == 2


# --- an agent's rules ---------------------------------------------------------------


def test_rules_saved_on_the_agent_page_go_through_set_rules_with_an_admin_entry(admin_client):
    agent = AgentFactory()
    mail = channel_of(agent.owner)
    response = post_change(
        admin_client,
        agent,
        alert_late_after_seconds="120",
        alert_failures_in_a_row="3",
        alert_channels=[str(mail.pk)],
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    rules = alerts.rules_of(agent)
    assert (rules.late_after_seconds, rules.failures_in_a_row) == (120, 3)
    assert (rules.max_duration_seconds, rules.pause_after_failures) == (None, None)
    assert rules.channels == (mail,)
    entry = AuditEntry.objects.get(agent=agent, action="alerts.changed")
    assert entry.source == AuditEntry.Source.ADMIN
    assert entry.changes["lateAfterSeconds"] == [None, 120]


def test_the_agent_page_shows_the_current_rules(admin_client):
    agent = AgentFactory()
    alerts.set_rules(agent, channels=[], max_duration_seconds=600)
    form = admin_client.get(change_url(agent)).context["adminform"].form
    assert form.initial["alert_max_duration_seconds"] == 600
    assert form.initial["alert_late_after_seconds"] is None


def test_saving_the_agent_without_touching_the_rules_records_no_rule_change(admin_client):
    agent = AgentFactory()
    assert post_change(admin_client, agent, name="Renamed").status_code == 302
    assert not AuditEntry.objects.filter(agent=agent, action="alerts.changed").exists()


def test_a_threshold_out_of_range_is_a_form_error_and_nothing_is_stored(admin_client):
    agent = AgentFactory()
    response = post_change(admin_client, agent, alert_failures_in_a_row="0")
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["alert_failures_in_a_row"]
    assert alerts.rules_of(agent) == alerts.Rules()


def test_another_users_channel_cannot_be_chosen(admin_client):
    agent = AgentFactory()
    theirs = channel_of(UserFactory())
    response = post_change(admin_client, agent, alert_channels=[str(theirs.pk)])
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["alert_channels"]
    assert alerts.rules_of(agent).channels == ()


def test_clearing_a_threshold_turns_its_rule_off_and_resolves_its_incident(admin_client):
    agent = AgentFactory()
    alerts.set_rules(agent, channels=[], failures_in_a_row=2)
    incident = open_incident(agent, Incident.Kind.FAILING, "Two failed")
    assert incident
    response = post_change(admin_client, agent, alert_failures_in_a_row="")
    assert response.status_code == 302
    assert alerts.rules_of(agent).failures_in_a_row is None
    incident.refresh_from_db()
    assert incident.resolved_at is not None
