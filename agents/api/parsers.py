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
        return underscoreize(data, **self.json_underscoreize)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")
