from __future__ import annotations

import json

from django.conf import settings
from djangorestframework_camel_case.parser import CamelCaseJSONParser as _CamelCaseJSONParser
from djangorestframework_camel_case.util import underscoreize
from rest_framework.exceptions import ParseError


class CamelCaseJSONParser(_CamelCaseJSONParser):
    """camelCase JSON in, snake_case data out, with a clear message on bad JSON."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError:
            raise ParseError(f"The request body is not valid {encoding} text.") from None
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            raise ParseError(f"Malformed JSON in the request body: {exc}.") from None
        except RecursionError:
            raise ParseError(_too_deep()) from None
        if nesting_depth(data) > MAX_NESTING:
            raise ParseError(_too_deep())
        return underscoreize(data, **self.json_underscoreize)


MAX_NESTING = 32


def nesting_depth(value: object) -> int:
    """How deeply lists and objects nest, counted without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            if depth > MAX_NESTING:
                break
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _too_deep() -> str:
    return f"The request body is nested more than {MAX_NESTING} levels deep."


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")
