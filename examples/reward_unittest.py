import asyncio, tempfile
from pathlib import Path
from hermes_core import Runtime

async def reward(ctx, hidden_tests: Path, out_dir: Path) -> float:
    """Score a rollout by running hidden tests in the very sandbox the model worked in."""
    await ctx.upload_dir(hidden_tests, "hidden_tests")                      # byte-exact, any names
    result = await ctx.terminal("python3 -m unittest discover -s hidden_tests -q", timeout=120)
    await ctx.download_file("solution.py", out_dir / "solution.py")          # keep the artifact
    return 1.0 if result["exit_code"] == 0 else 0.0

async def main() -> float:
    tmp = Path(tempfile.mkdtemp())
    (tmp / "tests").mkdir()
    (tmp / "tests" / "test_add.py").write_text("from solution import add\nimport unittest\n"
        "class T(unittest.TestCase):\n    def test(self): self.assertEqual(add(2, 3), 5)\n")
    async with Runtime().rollout(backend="local") as ctx:      # fresh sandbox, always cleaned up
        # ... the agent's tool calls land here; we play its part:
        await ctx.call_tool("write_file", {"path": "solution.py", "content": "def add(a, b):\n    return a + b\n"})
        return await reward(ctx, tmp / "tests", tmp / "out")

print("reward:", asyncio.run(main()))
