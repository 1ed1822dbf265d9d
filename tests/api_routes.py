"""The /api/ URL patterns as tests walk them, so a new path cannot be left out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver


@dataclass(frozen=True)
class Route:
    name: str
    parameter: str | None  # the id the path takes, if any
    methods: tuple[str, ...]  # lower case, without OPTIONS and HEAD


def api_routes(patterns: list | None = None, prefix: str = "") -> Iterator[Route]:
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from api_routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and route.startswith("api/"):
            parameters = list(entry.pattern.regex.groupindex)
            assert len(parameters) <= 1, route
            view = entry.callback
            actions = getattr(view, "actions", None)
            methods = set(actions) if actions else _handled_methods(view.cls)
            yield Route(
                name=entry.name,
                parameter=parameters[0] if parameters else None,
                methods=tuple(sorted(methods - {"options", "head"})),
            )


def _handled_methods(view_class: type) -> set[str]:
    return {method for method in view_class.http_method_names if hasattr(view_class, method)}
