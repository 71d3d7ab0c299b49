"""Decoding messages for reading: text as text, JSON pretty, errors marked, images, folding."""

from __future__ import annotations

import json

from hermes_core.view.synthetic import PNG
from hermes_core.view.transcript import FOLD_CHARS, SHOW_CHARS, decode_messages, decode_value, human_size


def test_terminal_result_output_becomes_text_and_exit_code_is_kept() -> None:
    blocks, is_error, code = decode_value(json.dumps({"exit_code": 2, "output": "line 1\nline 2\n", "error": None}))
    assert (is_error, code) == (False, 2)
    assert [(b.kind, b.label, b.text) for b in blocks] == [("text", "output", "line 1\nline 2\n")]


def test_structured_tool_error_is_an_error_block() -> None:
    body = {"error": {"type": "timeout", "tool": "terminal", "message": "took longer than 5s", "limit": 5}}
    blocks, is_error, _ = decode_value(json.dumps(body))
    assert is_error
    assert blocks[0].kind == "error" and blocks[0].text == "timeout: took longer than 5s"
    assert blocks[1].kind == "json" and json.loads(blocks[1].text) == {"error": {"limit": 5}}
    blocks, is_error, _ = decode_value(json.dumps({"exit_code": 1, "output": "", "error": "no such file"}))
    assert is_error and blocks[0].text == "no such file"


def test_json_pretty_plain_text_and_images() -> None:
    blocks, _, _ = decode_value('[1, 2, {"a": "b"}]')
    assert blocks[0].kind == "json" and blocks[0].text.startswith("[\n  1,")
    blocks, _, _ = decode_value("just text {not json")
    assert blocks[0].kind == "text" and blocks[0].text == "just text {not json"
    blocks, _, _ = decode_value(json.dumps({"image": PNG, "width": 2}))
    assert [b.kind for b in blocks] == ["json", "image"] and blocks[1].text == PNG
    blocks, _, _ = decode_value([{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": PNG}}])
    assert [b.kind for b in blocks] == ["text", "image"]
    blocks, _, _ = decode_value("data:image/svg+xml;base64,PHN2Zz4=")  # not shown as an image
    assert blocks[0].kind == "text"


def test_long_output_is_folded_with_its_size_and_huge_output_cut() -> None:
    small, _, _ = decode_value("x" * 100)
    assert not small[0].folded
    long_text = "\n".join(f"line {i}" for i in range(5000))
    blocks, _, _ = decode_value(json.dumps({"output": long_text}))
    b = blocks[0]
    assert b.folded and b.size == len(long_text) and b.lines == 5000 and b.cut == 0
    assert "5000 lines" in b.summary and "K chars" in b.summary
    huge = "y" * (SHOW_CHARS * 3)
    hb = decode_value(huge)[0][0]
    assert hb.folded and hb.cut == len(huge) - SHOW_CHARS and len(hb.text) < SHOW_CHARS + 200
    assert decode_value("z" * (FOLD_CHARS + 1))[0][0].folded


def test_messages_reasoning_tool_calls_and_names() -> None:
    msgs = [
        {"role": "system", "content": "sys"},
        {"role": "assistant", "content": "", "reasoning_content": "think hard",
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "terminal", "arguments": '{"command": "ls"}'}},
                        {"id": "c2", "type": "function", "function": {"name": "bad", "arguments": "{oops"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"exit_code": 0, "output": "a\\nb"}'},
        {"role": "assistant", "content": "<think>inner</think>The answer."},
        "not a message",
    ]
    out = decode_messages(msgs)
    assert [m.role for m in out] == ["system", "assistant", "tool", "assistant", "?"]
    a = out[1]
    assert a.reasoning is not None and a.reasoning.text == "think hard" and a.reasoning.folded
    assert a.blocks == []
    assert [c.name for c in a.tool_calls] == ["terminal", "bad"]
    assert a.tool_calls[0].arguments[0].label == "command" and a.tool_calls[0].arguments[0].text == "ls"
    assert a.tool_calls[1].arguments[0].label == "arguments (not JSON)"
    assert out[2].name == "terminal" and out[2].exit_code == 0 and out[2].blocks[0].text == "a\nb"
    assert out[3].reasoning.text == "inner" and out[3].blocks[0].text == "The answer."


def test_human_size() -> None:
    assert human_size(999) == "999 B"
    assert human_size(1234) == "1.2 KB"
    assert human_size(5_600_000, "chars") == "5.6 M chars"


def test_durations_read_well_from_microseconds_to_minutes():
    from hermes_core.view.transcript import seconds

    assert seconds(0.0042) == "4.2ms"  # a phase of a few ms does not read 0.00s
    assert seconds(0.000123) == "0.123ms"
    assert seconds(0.05) == "50ms"
    assert seconds(0.1) == "0.10s"
    assert seconds(3.456) == "3.46s"
    assert seconds(75) == "1m15.0s"
