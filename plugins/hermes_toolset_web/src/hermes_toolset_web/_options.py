"""Options of the web tools, and where a rollout finds them (per Runtime, never a module global)."""

from __future__ import annotations

import weakref
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hermes_core import ConfigError

__all__ = ["WebOptions", "configure", "options_for"]

#: The extractable content types (anything else is refused per URL, with the type named).
DEFAULT_CONTENT_TYPES = (
    "text/html", "application/xhtml+xml", "text/plain", "text/markdown", "application/pdf",
    "application/xml", "text/xml", "application/json",
)


class WebOptions(BaseModel):
    """Settings of ``web_search`` and ``web_extract``.

    Set them per runtime with :func:`configure` (or, once hermes-core has it, under
    ``tool_options: {web: {...}}`` in hermes.yaml). API keys are never options: name the
    environment variable that holds one (``api_key_env``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(
        "duckduckgo",
        description="searxng, brave, tavily, exa, duckduckgo, or a 'module:attr' reference to a provider class.",
    )
    base_url: str | None = Field(None, description="Provider endpoint (required for searxng; defaults to the public API).")
    api_key_env: str | None = Field(None, description="Environment variable holding the provider's key (default per provider).")
    search_timeout: float = Field(15.0, gt=0, le=120, description="Seconds for one provider request.")
    max_results: int = Field(10, ge=1, le=50, description="Upper bound of web_search's limit.")

    timeout: float = Field(20.0, gt=0, le=300, description="Seconds for one URL of web_extract (connect to last byte).")
    connect_timeout: float = Field(5.0, gt=0, le=60)
    max_bytes: int = Field(5_000_000, ge=1024, description="Largest response body web_extract reads.")
    max_redirects: int = Field(5, ge=0, le=20)
    max_urls: int = Field(10, ge=1, le=100, description="URLs one web_extract call may ask for.")
    max_chars: int = Field(20_000, ge=500, description="Text kept per URL (head and tail).")
    max_links: int = Field(50, ge=0, le=1000, description="Links returned per page.")
    concurrency: int = Field(4, ge=1, le=32, description="URLs fetched at once.")
    content_types: tuple[str, ...] = Field(DEFAULT_CONTENT_TYPES, description="Media types web_extract accepts.")
    user_agent: str = "hermes-toolset-web/0.1 (+https://github.com/; bot)"

    allow_hosts: tuple[str, ...] = Field(
        (),
        description=(
            "Hosts, IP addresses or CIDR ranges web_extract may reach although they are loopback, "
            "private, link-local or metadata addresses (e.g. ['127.0.0.1'] for a local test server)."
        ),
    )


# Keyed by the Runtime object: two runtimes never share settings, and a dropped runtime takes
# its settings with it.
_BY_RUNTIME: weakref.WeakKeyDictionary[Any, WebOptions] = weakref.WeakKeyDictionary()


def configure(runtime: Any, options: WebOptions | dict[str, Any] | None = None, **fields: Any) -> WebOptions:
    """Set the web tools' options for every rollout of ``runtime``.

    Args:
        runtime: a :class:`hermes_core.Runtime`.
        options: a :class:`WebOptions` or a mapping of its fields; keyword fields override it.

    Raises:
        ConfigError: an unknown or invalid field (the message names it).
    """
    data = options.model_dump() if isinstance(options, WebOptions) else dict(options or {})
    data.update(fields)
    opts = _validate(data, "hermes_toolset_web.configure()")
    _BY_RUNTIME[runtime] = opts
    return opts


def _validate(data: dict[str, Any], where: str) -> WebOptions:
    try:
        return WebOptions.model_validate(data)
    except ValidationError as e:
        parts = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(options)"
            if err["type"] == "extra_forbidden":
                parts.append(f"unknown option {loc!r} (known: {', '.join(WebOptions.model_fields)})")
            else:
                parts.append(f"option {loc!r}: {err['msg']}")
        raise ConfigError(f"{where}: " + "; ".join(parts)) from None


def options_for(ctx: Any) -> WebOptions:
    """The options that apply to a rollout: :func:`configure`, else the runtime config's
    ``tool_options["web"]`` (when hermes-core has that key), else the defaults."""
    runtime = getattr(ctx, "runtime", None)
    if runtime is not None:
        opts = _BY_RUNTIME.get(runtime)
        if opts is not None:
            return opts
        tool_options = getattr(getattr(runtime, "config", None), "tool_options", None) or {}
        if "web" in tool_options:
            opts = _validate(dict(tool_options["web"]), "tool_options.web")
            _BY_RUNTIME[runtime] = opts
            return opts
    return WebOptions()
