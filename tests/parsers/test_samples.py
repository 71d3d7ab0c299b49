"""Fixed real-world outputs of each model family, and malformed calls between good ones."""

from __future__ import annotations

import json

import pytest

from hermes_core import Runtime
from hermes_plugins.parsers import PARSER_REFS, get_parser

TERMINAL = {"type": "function", "function": {"name": "terminal", "parameters": {"type": "object", "properties": {
    "command": {"type": "string"}, "timeout": {"type": "integer"}, "background": {"type": "boolean"}}}}}
READ = {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object", "properties": {
    "path": {"type": "string"}, "limit": {"type": "integer"}}}}}
TOOLS = [TERMINAL, READ]


def calls_of(calls):
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]


# (format, model output, expected content, expected calls) — shapes as the models print them.
SAMPLES = [
    ("hermes",
     "I'll check the directory first.\n<tool_call>\n{\"name\": \"terminal\", \"arguments\": {\"command\": \"ls -la\"}}\n</tool_call>",
     "I'll check the directory first.", [("terminal", {"command": "ls -la"})]),
    ("hermes",  # Qwen3 with thinking, two calls, the second left unclosed at EOS
     "<think>\nNeed both files.\n</think>\n\n<tool_call>\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"a.txt\"}}\n</tool_call>\n"
     "<tool_call>\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"b.txt\", \"limit\": 5}}",
     "<think>\nNeed both files.\n</think>", [("read_file", {"path": "a.txt"}), ("read_file", {"path": "b.txt", "limit": 5})]),
    ("hermes",  # arguments sent as a JSON string
     "<tool_call>{\"name\": \"terminal\", \"arguments\": \"{\\\"command\\\": \\\"pwd\\\"}\"}</tool_call>",
     None, [("terminal", {"command": "pwd"})]),
    ("longcat",
     "<longcat_tool_call>\n{\"name\": \"terminal\", \"arguments\": {\"command\": \"ls\"}}\n</longcat_tool_call>",
     None, [("terminal", {"command": "ls"})]),
    ("qwen3_coder",
     "Let me run the tests.\n\n<tool_call>\n<function=terminal>\n<parameter=command>\npython3 -m pytest -q\n</parameter>\n"
     "<parameter=timeout>\n120\n</parameter>\n</function>\n</tool_call>",
     "Let me run the tests.", [("terminal", {"command": "python3 -m pytest -q", "timeout": 120})]),
    ("qwen3_coder",  # multi-line value kept verbatim; unclosed parameter and function at EOS
     "<tool_call>\n<function=terminal>\n<parameter=command>\ncat > a.py <<'EOF'\nprint(1)\nEOF\n</parameter>\n"
     "<parameter=background>\nfalse",
     None, [("terminal", {"command": "cat > a.py <<'EOF'\nprint(1)\nEOF", "background": False})]),
    ("mistral",  # pre-v11 tokenizer
     "[TOOL_CALLS] [{\"name\": \"terminal\", \"arguments\": {\"command\": \"ls\"}}, {\"name\": \"read_file\", \"arguments\": {\"path\": \"x\"}}]",
     None, [("terminal", {"command": "ls"}), ("read_file", {"path": "x"})]),
    ("mistral",  # v11 tokenizer
     "Sure.[TOOL_CALLS]terminal{\"command\": \"ls\"}[TOOL_CALLS]read_file{\"path\": \"x\"}",
     "Sure.", [("terminal", {"command": "ls"}), ("read_file", {"path": "x"})]),
    ("mistral",  # Magistral / v13: [ARGS]
     "[TOOL_CALLS]terminal[ARGS]{\"command\": \"uname -a\"}",
     None, [("terminal", {"command": "uname -a"})]),
    ("llama3_json",
     "{\"name\": \"terminal\", \"parameters\": {\"command\": \"ls -la\"}}",
     None, [("terminal", {"command": "ls -la"})]),
    ("llama3_json",
     "<|python_tag|>{\"name\": \"terminal\", \"parameters\": {\"command\": \"ls\"}}; {\"name\": \"read_file\", \"arguments\": {\"path\": \"x\"}}",
     None, [("terminal", {"command": "ls"}), ("read_file", {"path": "x"})]),
    ("deepseek_v3",
     "I'll list the files.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>terminal\n```json\n"
     "{\"command\": \"ls\"}\n```<｜tool▁call▁end｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>read_file\n```json\n"
     "{\"path\": \"README.md\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜><｜end▁of▁sentence｜>",
     "I'll list the files.", [("terminal", {"command": "ls"}), ("read_file", {"path": "README.md"})]),
    ("deepseek_v31",
     "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>terminal<｜tool▁sep｜>{\"command\": \"ls\"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
     None, [("terminal", {"command": "ls"})]),
    ("kimi_k2",
     "Checking.<|tool_calls_section_begin|><|tool_call_begin|>functions.terminal:0<|tool_call_argument_begin|>"
     "{\"command\": \"ls\"}<|tool_call_end|><|tool_call_begin|>functions.read_file:1<|tool_call_argument_begin|>"
     "{\"path\": \"a\"}<|tool_call_end|><|tool_calls_section_end|>",
     "Checking.", [("terminal", {"command": "ls"}), ("read_file", {"path": "a"})]),
    ("glm45",
     "<think>list it</think>\n<tool_call>terminal\n<arg_key>command</arg_key>\n<arg_value>ls -la</arg_value>\n"
     "<arg_key>timeout</arg_key>\n<arg_value>30</arg_value>\n</tool_call>",
     "<think>list it</think>", [("terminal", {"command": "ls -la", "timeout": 30})]),
    ("glm47",
     "<tool_call>terminal<arg_key>command</arg_key><arg_value>echo 42</arg_value></tool_call>"
     "<tool_call>read_file<arg_key>path</arg_key>\\n<arg_value>out.txt</arg_value></tool_call>",
     None, [("terminal", {"command": "echo 42"}), ("read_file", {"path": "out.txt"})]),
]


@pytest.mark.parametrize("fmt,text,content,calls", SAMPLES, ids=[f"{s[0]}-{i}" for i, s in enumerate(SAMPLES)])
def test_real_world_samples(fmt, text, content, calls):
    got_content, got, errors = get_parser(fmt).parse_with_errors(text, TOOLS)
    assert errors == []
    assert calls_of(got) == calls
    assert got_content == content


def test_kimi_keeps_the_model_call_ids():
    _, got = get_parser("kimi_k2").parse(SAMPLES[-3][1])
    assert [c["id"] for c in got] == ["functions.terminal:0", "functions.read_file:1"]


# A malformed call between two good ones: both good ones survive, one error is reported.
MALFORMED = {
    "hermes": '<tool_call>{"name": "a", "arguments": {}}</tool_call>\n<tool_call>{"name": "b", "arguments": {oops}</tool_call>\n'
              '<tool_call>{"name": "c", "arguments": {"x": 1}}</tool_call>',
    "longcat": '<longcat_tool_call>{"name": "a", "arguments": {}}</longcat_tool_call><longcat_tool_call>{"arguments": {}}'
               '</longcat_tool_call><longcat_tool_call>{"name": "c", "arguments": {"x": 1}}</longcat_tool_call>',
    "qwen3_coder": "<tool_call>\n<function=a>\n</function>\n</tool_call>\n<tool_call>\n<function=>\n</function>\n</tool_call>\n"
                   "<tool_call>\n<function=c>\n<parameter=x>\n1\n</parameter>\n</function>\n</tool_call>",
    "mistral": '[TOOL_CALLS]a{}[TOOL_CALLS]b{"unterminated": [TOOL_CALLS]c{"x": 1}',
    "llama3_json": '{"name": "a", "parameters": {}}; {"name": "b", "parameters": {oops}; {"name": "c", "parameters": {"x": 1}}',
    "deepseek_v3": "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>a\n```json\n{}\n```<｜tool▁call▁end｜>"
                   "<｜tool▁call▁begin｜>function<｜tool▁sep｜>b\n```json\n{nope\n```<｜tool▁call▁end｜>"
                   "<｜tool▁call▁begin｜>function<｜tool▁sep｜>c\n```json\n{\"x\": 1}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
    "deepseek_v31": "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>a<｜tool▁sep｜>{}<｜tool▁call▁end｜>"
                    "<｜tool▁call▁begin｜>b {\"x\": 2}<｜tool▁call▁end｜>"
                    "<｜tool▁call▁begin｜>c<｜tool▁sep｜>{\"x\": 1}<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
    "kimi_k2": "<|tool_calls_section_begin|><|tool_call_begin|>functions.a:0<|tool_call_argument_begin|>{}<|tool_call_end|>"
               "<|tool_call_begin|>functions.b:1<|tool_call_argument_begin|>[1, 2]<|tool_call_end|>"
               "<|tool_call_begin|>functions.c:2<|tool_call_argument_begin|>{\"x\": 1}<|tool_call_end|><|tool_calls_section_end|>",
    "glm45": "<tool_call>a\n</tool_call><tool_call>b garbage</tool_call><tool_call>c\n<arg_key>x</arg_key>\n<arg_value>1</arg_value>\n</tool_call>",
    "glm47": "<tool_call>a</tool_call><tool_call></tool_call><tool_call>c<arg_key>x</arg_key><arg_value>1</arg_value></tool_call>",
}


def test_every_format_has_a_malformed_sample():
    assert set(MALFORMED) == set(PARSER_REFS)


@pytest.mark.parametrize("fmt", sorted(MALFORMED))
def test_one_malformed_call_keeps_the_good_ones(fmt):
    _, calls, errors = get_parser(fmt).parse_with_errors(MALFORMED[fmt])
    assert calls_of(calls) == [("a", {}), ("c", {"x": 1})]
    assert len(errors) == 1 and errors[0].message


def test_mistral_broken_array_keeps_the_good_objects():
    text = '[TOOL_CALLS] [{"name": "a", "arguments": {}}, {"name": "b", "arguments": {x}}, {"name": "c", "arguments": {"x": 1}}]'
    _, calls, errors = get_parser("mistral").parse_with_errors(text)
    assert calls_of(calls) == [("a", {}), ("c", {"x": 1})]
    assert len(errors) == 1


def test_schema_types_xml_values():
    text = "<tool_call>\n<function=terminal>\n<parameter=command>\n123\n</parameter>\n<parameter=timeout>\n7\n</parameter>\n</function>\n</tool_call>"
    assert calls_of(get_parser("qwen3_coder").parse(text, TOOLS)[1]) == [("terminal", {"command": "123", "timeout": 7})]
    # without a schema, a value that is JSON is decoded
    assert calls_of(get_parser("qwen3_coder").parse(text)[1]) == [("terminal", {"command": 123, "timeout": 7})]


def test_parsers_are_registered_lazily_and_resolve(monkeypatch):
    monkeypatch.setenv("HERMES_DISABLE_PLUGIN_AUTOLOAD", "1")
    rt = Runtime()
    assert set(PARSER_REFS) <= set(rt.parsers.names())
    for name in PARSER_REFS:
        spec = rt.parsers.get(name)
        assert spec.plugin == "tool-call-parsers" and spec.description
        parser = get_parser(name, rt)
        assert parser.name == name and callable(parser)
        assert parser("no calls here") == ("no calls here", [])


def test_unknown_parser_lists_the_known_ones():
    from hermes_core import UnknownNameError

    with pytest.raises(UnknownNameError, match="hermes"):
        get_parser("nope")
