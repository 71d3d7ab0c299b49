"""The built-in tool-call parsers for raw-completion servers (vLLM / SGLang style), and the
``openai-completions`` agent that uses them for token-exact rollouts.

Each parser has ``parse(text, tools=None) -> (content, tool_calls)``, ``parse_with_errors``
(also the calls that could not be read) and ``render(tool_calls, content=None) -> text``.
They are registered through ``hermes_register_tool_call_parsers`` by
:mod:`hermes_plugins.tool_call_parsers`; :func:`get_parser` looks one up on a Runtime.
"""

from __future__ import annotations

import importlib
from typing import Any

#: name → (``"module:attr"`` of the parser instance, description). The registration module
#: (:mod:`hermes_plugins.tool_call_parsers`) registers exactly these; importing this package
#: imports no parser.
PARSERS: dict[str, tuple[str, str]] = {
    "hermes": ("_json_tags:HERMES", "<tool_call>{json}</tool_call> (Hermes, Qwen2.5/3; unclosed tag at the end accepted)"),
    "longcat": ("_json_tags:LONGCAT", "<longcat_tool_call>{json}</longcat_tool_call> (LongCat)"),
    "qwen3_coder": ("_xml_params:QWEN3_CODER", "<function=NAME><parameter=P>value</parameter> (Qwen3-Coder)"),
    "glm45": ("_xml_params:GLM45", "<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value> (GLM-4.5/4.6)"),
    "glm47": ("_xml_params:GLM47", "GLM-4.5 markup, read loosely, written compact (GLM-4.7)"),
    "mistral": ("_json_formats:MISTRAL", "[TOOL_CALLS] + JSON array (pre-v11) or NAME{json} per call (v11+)"),
    "llama3_json": ("_json_formats:LLAMA3_JSON", "<|python_tag|>? {name, parameters}; ... (Llama 3.1+/4)"),
    "deepseek_v3": ("_json_formats:DEEPSEEK_V3", "tool-call special tokens + ```json fence (DeepSeek-V3)"),
    "deepseek_v31": ("_json_formats:DEEPSEEK_V31", "NAME<｜tool▁sep｜>ARGS special tokens (DeepSeek-V3.1/V3.2)"),
    "kimi_k2": ("_json_formats:KIMI_K2", "functions.NAME:IDX special tokens (Kimi-K2)"),
}

#: name → ``"module:attr"`` reference, as registered.
PARSER_REFS: dict[str, str] = {name: f"{__name__}.{ref}" for name, (ref, _) in PARSERS.items()}


def load_ref(ref: Any) -> Any:
    """Import a ``"module:attr"`` reference (anything else is returned as is)."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def get_parser(name: str, runtime: Any = None) -> Any:
    """The parser registered as ``name`` on ``runtime`` (a :class:`hermes_core.Runtime`), or the
    built-in one when no runtime is given.

    Raises:
        UnknownNameError: no parser of that name (the message lists the registered ones).
    """
    if runtime is None:
        if name not in PARSER_REFS:
            from hermes_core import UnknownNameError

            raise UnknownNameError(
                f"unknown tool-call parser {name!r}; built-in: {', '.join(sorted(PARSER_REFS))}"
            )
        return load_ref(PARSER_REFS[name])
    spec = runtime.parsers.get(name)
    return load_ref(spec.parser)


def __getattr__(name: str) -> Any:
    exports = {
        "ToolCallParser": "_base", "ParseError": "_base",
        "TaggedJsonParser": "_json_tags", "Qwen3CoderParser": "_xml_params", "GlmParser": "_xml_params",
        "MistralParser": "_json_formats", "Llama3JsonParser": "_json_formats",
        "DeepSeekParser": "_json_formats", "KimiK2Parser": "_json_formats",
        "CompletionsAgent": "_completions", "ChatTemplate": "_template",
    }
    mod = exports.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


__all__ = [
    "PARSERS", "PARSER_REFS", "get_parser", "load_ref",
    "ToolCallParser", "ParseError", "TaggedJsonParser", "Qwen3CoderParser", "GlmParser",
    "MistralParser", "Llama3JsonParser", "DeepSeekParser", "KimiK2Parser", "CompletionsAgent", "ChatTemplate",
]
