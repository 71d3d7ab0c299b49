"""Options of the browser tools, kept per Runtime (never a module global)."""

from __future__ import annotations

import weakref
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hermes_core import ConfigError

__all__ = ["BrowserOptions", "DEFAULT_ARGS", "configure", "options_for"]

#: Chromium flags that work on a headless Linux server (and in containers without /dev/shm room).
DEFAULT_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--no-first-run",
)


class BrowserOptions(BaseModel):
    """Settings of the browser tools (set per runtime with :func:`configure`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executable: str = Field("/usr/bin/chromium", description="Chromium binary (Debian's chromium package).")
    args: tuple[str, ...] = Field(DEFAULT_ARGS, description="Chromium command-line flags.")
    max_contexts: int = Field(32, ge=1, le=1024, description="Browser contexts (rollouts) open at once per runtime.")
    context_wait: float = Field(60.0, ge=0, description="Seconds a new rollout waits for a free context slot.")
    navigation_timeout: float = Field(15.0, gt=0, le=300, description="Seconds for a page to reach DOMContentLoaded.")
    load_grace: float = Field(2.0, ge=0, le=60, description="Extra seconds to wait for the load event after that.")
    action_timeout: float = Field(5.0, gt=0, le=120, description="Seconds for a click, fill or key press.")
    launch_timeout: float = Field(30.0, gt=0, le=300)
    viewport_width: int = Field(1280, ge=200, le=7680)
    viewport_height: int = Field(720, ge=200, le=4320)
    max_snapshot_chars: int = Field(30_000, ge=1000, description="Snapshot text kept (head and tail).")
    max_tabs: int = Field(8, ge=1, le=100, description="Tabs one rollout may have open; pages opening more are closed.")
    max_console: int = Field(200, ge=1, description="Console messages kept per rollout (newest).")
    dialogs: Literal["accept", "dismiss"] = Field("accept", description="What to do with alert/confirm/prompt dialogs.")
    downloads_dir: str = Field("downloads", description="Sandbox directory downloads are saved into.")
    max_download_bytes: int = Field(50_000_000, ge=0, description="Largest download copied into the sandbox.")
    allowed_schemes: tuple[str, ...] = Field(("http", "https", "about", "data"), description="URL schemes browser_navigate opens (file: is refused by default).")


_BY_RUNTIME: weakref.WeakKeyDictionary[Any, BrowserOptions] = weakref.WeakKeyDictionary()


def _validate(data: dict[str, Any], where: str) -> BrowserOptions:
    try:
        return BrowserOptions.model_validate(data)
    except ValidationError as e:
        parts = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "(options)"
            if err["type"] == "extra_forbidden":
                parts.append(f"unknown option {loc!r} (known: {', '.join(BrowserOptions.model_fields)})")
            else:
                parts.append(f"option {loc!r}: {err['msg']}")
        raise ConfigError(f"{where}: " + "; ".join(parts)) from None


def configure(runtime: Any, options: BrowserOptions | dict[str, Any] | None = None, **fields: Any) -> BrowserOptions:
    """Set the browser tools' options for ``runtime`` (before its first browser call).

    Raises:
        ConfigError: an unknown or invalid field.
    """
    data = options.model_dump() if isinstance(options, BrowserOptions) else dict(options or {})
    data.update(fields)
    opts = _validate(data, "hermes_toolset_browser.configure()")
    _BY_RUNTIME[runtime] = opts
    return opts


def options_for(runtime: Any) -> BrowserOptions:
    """:func:`configure`'s options, else ``runtime.config.tool_options["browser"]`` (once
    hermes-core has that key), else the defaults."""
    if runtime is None:
        return BrowserOptions()
    opts = _BY_RUNTIME.get(runtime)
    if opts is None:
        tool_options = getattr(getattr(runtime, "config", None), "tool_options", None) or {}
        opts = _validate(dict(tool_options["browser"]), "tool_options.browser") if "browser" in tool_options else BrowserOptions()
        _BY_RUNTIME[runtime] = opts
    return opts
