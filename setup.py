"""The one compiled part of hermes-core, optional: ``hermes_core.sandbox._clone`` starts a
sandbox command directly inside its cgroup (clone3 + CLONE_INTO_CGROUP, Linux). Without a C
compiler the install still succeeds and commands join their cgroup through a launcher instead
(one extra exec, ~0.5 ms)."""

import sys

from setuptools import Extension, setup

ext = []
if sys.platform.startswith("linux"):
    ext.append(Extension("hermes_core.sandbox._clone", ["core/hermes_core/sandbox/_clone.c"],
                         optional=True, extra_compile_args=["-O2"]))
setup(ext_modules=ext)
