"""One rollout's view of the process registry: every action carries that rollout's task id, so
a tool holding this handle cannot reach another rollout's processes, and needs no Runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._registry import ProcessRegistry
from ._state import ProcessEvent, Session

if TYPE_CHECKING:
    from ..sandbox import Command, Sandbox

__all__ = ["TaskProcesses"]


class TaskProcesses:
    """The background processes of one rollout (``ctx.processes``).

    Args:
        registry: the runtime's registry.
        task_id: the rollout every action is scoped to.
    """

    def __init__(self, registry: ProcessRegistry, task_id: str):
        self.registry = registry
        self.task_id = task_id

    async def spawn(
        self,
        sandbox: Sandbox,
        command: Command,
        *,
        pty: bool = False,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        check_interval: float | None = None,
    ) -> Session:
        """Start ``command`` in ``sandbox`` in the background, owned by this rollout."""
        return await self.registry.spawn(
            sandbox, command, task_id=self.task_id, pty=pty, cwd=cwd, env=env, check_interval=check_interval
        )

    async def list(self) -> list[dict[str, Any]]:
        """Summaries of this rollout's sessions (recovered ones included)."""
        await self.registry.recover()
        return self.registry.list(self.task_id)

    async def poll(self, session_id: str, *, output_chars: int = 2000) -> dict[str, Any]:
        return await self.registry.poll(session_id, self.task_id, output_chars=output_chars)

    async def read_log(self, session_id: str, *, offset: int = 0, limit: int = 20_000) -> dict[str, Any]:
        return await self.registry.read_log(session_id, self.task_id, offset=offset, limit=limit)

    async def wait(self, session_id: str, timeout: float) -> dict[str, Any]:
        return await self.registry.wait(session_id, timeout, self.task_id)

    async def write(self, session_id: str, data: str | bytes) -> dict[str, Any]:
        return await self.registry.write(session_id, data, self.task_id)

    async def close_stdin(self, session_id: str) -> dict[str, Any]:
        return await self.registry.close_stdin(session_id, self.task_id)

    async def kill(self, session_id: str) -> dict[str, Any]:
        return await self.registry.kill(session_id, self.task_id)

    async def kill_all(self) -> None:
        """Kill every process of this rollout (its cleanup)."""
        await self.registry.kill_task(self.task_id)

    def events(self) -> AsyncIterator[ProcessEvent]:
        """This rollout's process events."""
        return self.registry.events(self.task_id)

    def subscribe(self, callback: Callable[[ProcessEvent], Any]) -> Callable[[], None]:
        return self.registry.subscribe(callback, self.task_id)
