from __future__ import annotations

import pytest

from core.text import is_storable, storable_text


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


class Sneaky(str):
    def __getitem__(self, index):
        raise RuntimeError("no slicing")


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("plain text, café 😀", "plain text, café 😀"),
        ("a\x00b", "a\\x00b"),
        ("lone \ud800 and \udfff", "lone \\ud800 and \\udfff"),
        (b"caf\xc3\xa9 \x00 \xff\xfe", "café \\x00 \\xff\\xfe"),
        (bytearray(b"\xe2\x82"), "\\xe2\\x82"),
        (memoryview(b"ok"), "ok"),
        (None, ""),
        (42, "42"),
        (["a\x00"], "['a\\x00']"),
        (Unprintable(), "<unprintable Unprintable>"),
        (Sneaky("works"), "works"),
    ],
)
def test_any_value_becomes_text_every_backend_can_store(value, stored):
    assert storable_text(value) == stored
    assert is_storable(storable_text(value))


def test_an_integer_too_long_to_print_is_not_an_error():
    assert storable_text(10**5000) == "<unprintable int>"


def test_the_text_is_cut_to_the_limit_after_escaping():
    assert storable_text("\x00" * 10, limit=8) == "\\x00\\x00"
    assert storable_text("x" * 50, limit=10) == "x" * 10
    assert storable_text(b"\xff" * 50, limit=6) == "\\xff\\x"
    assert storable_text("é" * 20, limit=3) == "ééé"
    assert storable_text("😀" * 20, limit=3) == "😀😀😀"
    assert storable_text("😀".encode() * 20, limit=3) == "😀😀😀"


@pytest.mark.parametrize(
    ("text", "storable"),
    [("café 😀", True), ("", True), ("a\x00", False), ("\ud800", False), ("\udc80x", False)],
)
def test_text_with_nul_or_a_lone_surrogate_is_not_storable_as_it_is(text, storable):
    assert is_storable(text) is storable
