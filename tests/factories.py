from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from agents.models import AIAgent, ExecutionSession

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password(PASSWORD)


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AIAgent

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Agent {n}")
    agent_type = "demo"
    configuration = factory.LazyFunction(lambda: {"steps": 1, "stepSeconds": 0})


class SessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExecutionSession

    agent = factory.SubFactory(AgentFactory)
    trigger = ExecutionSession.Trigger.MANUAL
    scheduled_for = factory.LazyFunction(timezone.now)
    not_before = factory.LazyFunction(timezone.now)
