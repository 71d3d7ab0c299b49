"""Fixtures: a local tokenizer folder (built, not downloaded) and the scripted completions server."""

from __future__ import annotations

import os

import pytest

from helpers import TerminalTestPolicy, build_tokenizer


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def hf_tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


@pytest.fixture
def policy():
    return TerminalTestPolicy()


@pytest.fixture
def scripted(hf_tokenizer, policy):
    from hermes_plugins.parsers.testing import ScriptedCompletionsServer

    with ScriptedCompletionsServer(hf_tokenizer, policy) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _builtins_only(monkeypatch):
    # Other distributions installed in a shared venv must not change what these tests load.
    monkeypatch.setenv("HERMES_DISABLE_PLUGIN_AUTOLOAD", os.environ.get("HERMES_ATROPOS_AUTOLOAD_OFF", "1"))
