"""render → parse round-trips for arbitrary names, arguments and content (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hermes_plugins.parsers import PARSER_REFS, get_parser
from hermes_plugins.parsers._base import render_value

JSON_FORMATS = ["hermes", "longcat", "mistral", "mistral-array", "llama3_json", "deepseek_v3", "deepseek_v31", "kimi_k2"]
XML_FORMATS = ["qwen3_coder", "glm45", "glm47"]

# Markup a raw (XML-style) value cannot contain: the format has no escape for it.
XML_MARKUP = ("<tool_call>", "</tool_call>", "<function=", "</function>", "<parameter=", "</parameter>",
              "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>")

identifier = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,24}", fullmatch=True)
scalars = st.none() | st.booleans() | st.integers(-10**18, 10**18) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
content_text = st.text(min_size=1, max_size=80).filter(lambda s: s.strip())


def parser_for(fmt: str):
    if fmt == "mistral-array":
        from hermes_plugins.parsers import MistralParser

        return MistralParser(form="array")
    return get_parser(fmt)


def schema_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def tools_for(calls):
    return [
        {"type": "function", "function": {"name": name, "parameters": {
            "type": "object", "properties": {k: {"type": schema_type(v)} for k, v in args.items()}}}}
        for name, args in calls
    ]


def as_openai(calls):
    return [{"id": f"x{i}", "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
            for i, (n, a) in enumerate(calls)]


def check(fmt, calls, content, tools=None):
    parser = parser_for(fmt)
    text = parser.render(as_openai(calls), content=content)
    got_content, got, errors = parser.parse_with_errors(text, tools)
    assert errors == []
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in got] == calls
    assert all(c["type"] == "function" and c["id"] for c in got)
    if content is None:
        assert got_content is None
    else:
        assert got_content == content.rstrip()
    if fmt == "kimi_k2":
        assert [c["id"] for c in got] == [f"functions.{n}:{i}" for i, (n, _) in enumerate(calls)]


@pytest.mark.parametrize("fmt", JSON_FORMATS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_json_formats_round_trip(fmt, data):
    names = identifier if fmt not in ("hermes", "longcat", "llama3_json", "mistral-array") else st.text(min_size=1, max_size=30)
    calls = data.draw(st.lists(st.tuples(names, st.dictionaries(st.text(max_size=12), json_values, max_size=5)),
                               min_size=1, max_size=4))
    content = data.draw(st.none() | content_text)
    if content is not None:
        assume(parser_for(fmt).find_start(content) < 0)
    check(fmt, calls, content)


@pytest.mark.parametrize("fmt", XML_FORMATS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_xml_formats_round_trip_typed_by_schema(fmt, data):
    calls = data.draw(st.lists(st.tuples(identifier, st.dictionaries(identifier, json_values, max_size=5)),
                               min_size=1, max_size=4, unique_by=lambda c: c[0]))
    for _, args in calls:
        for v in args.values():
            assume(not any(tag in render_value(v) for tag in XML_MARKUP))
    content = data.draw(st.none() | content_text)
    if content is not None:
        assume(parser_for(fmt).find_start(content) < 0 and not any(t in content for t in XML_MARKUP))
    check(fmt, calls, content, tools_for(calls))


@given(text=st.text(max_size=200))
@settings(max_examples=200, deadline=None)
@pytest.mark.parametrize("fmt", sorted(PARSER_REFS))
def test_any_text_parses_without_raising(fmt, text):
    content, calls, errors = get_parser(fmt).parse_with_errors(text)
    assert isinstance(calls, list) and isinstance(errors, list)
    if not calls and not errors:
        assert content == text or content is None or text.startswith(content)


@pytest.mark.parametrize("fmt", sorted(PARSER_REFS))
def test_text_without_markup_is_all_content(fmt):
    text = "The answer is 42. No tools needed."
    assert get_parser(fmt).parse(text) == (text, [])
