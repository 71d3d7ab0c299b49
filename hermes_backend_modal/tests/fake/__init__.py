"""A local fake of Modal's gRPC API (see :mod:`fake.server`) and helpers to run it."""

from ._launch import RunningFake, start_fake
from .server import LABEL, FakeModal, Faults, serve

__all__ = ["LABEL", "FakeModal", "Faults", "RunningFake", "serve", "start_fake"]
