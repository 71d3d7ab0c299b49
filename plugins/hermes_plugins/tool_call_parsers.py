"""Built-in tool-call parsers for servers that return raw completions (registration only; the
parsers live in :mod:`hermes_plugins.parsers` and load on first use)."""

from __future__ import annotations

from hermes_core import AgentRegistry, ToolCallParserRegistry, hookimpl

# name → "module:attr" of the parser instance; kept here (not imported from the parsers
# package) so registering imports nothing.
_PARSERS = {
    "hermes": ("_json_tags:HERMES", "<tool_call>{json}</tool_call> (Hermes, Qwen2.5/3)"),
    "longcat": ("_json_tags:LONGCAT", "<longcat_tool_call>{json}</longcat_tool_call> (LongCat)"),
    "qwen3_coder": ("_xml_params:QWEN3_CODER", "<function=NAME><parameter=P>value</parameter> (Qwen3-Coder)"),
    "glm45": ("_xml_params:GLM45", "<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value> (GLM-4.5/4.6)"),
    "glm47": ("_xml_params:GLM47", "GLM-4.5 markup, read loosely, written compact (GLM-4.7)"),
    "mistral": ("_json_formats:MISTRAL", "[TOOL_CALLS] + JSON array or NAME{json} (Mistral)"),
    "llama3_json": ("_json_formats:LLAMA3_JSON", "<|python_tag|>? {name, parameters}; ... (Llama 3.1+/4)"),
    "deepseek_v3": ("_json_formats:DEEPSEEK_V3", "tool-call special tokens + ```json fence (DeepSeek-V3)"),
    "deepseek_v31": ("_json_formats:DEEPSEEK_V31", "NAME<｜tool▁sep｜>ARGS special tokens (DeepSeek-V3.1/V3.2)"),
    "kimi_k2": ("_json_formats:KIMI_K2", "functions.NAME:IDX special tokens (Kimi-K2)"),
}


@hookimpl
def hermes_register_tool_call_parsers(registry: ToolCallParserRegistry) -> None:
    """Register the built-in tool-call parsers as lazy ``"module:attr"`` references."""
    for name, (ref, description) in _PARSERS.items():
        registry.register(name, f"hermes_plugins.parsers.{ref}", description=description)


@hookimpl
def hermes_register_agents(registry: AgentRegistry) -> None:
    """Register ``openai-completions``: token-exact rollouts over a raw-completions server."""
    registry.register(
        "openai-completions",
        "hermes_plugins.parsers._completions:completions_factory",
        description="token-exact loop over a vLLM/SGLang completions endpoint: chat template + tool-call parser "
        "client-side; tokens, masks and logprobs in the result",
    )
