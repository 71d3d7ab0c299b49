"""File tools: ``read_file``, ``write_file``, ``patch`` and ``search_files``."""

from __future__ import annotations

import difflib
import re
from typing import Literal

from hermes_core import ToolFailure
from hermes_core.errors import TransferError
from pydantic import BaseModel, ConfigDict, Field

MAX_LINE_CHARS = 2000
#: Files patch reads whole (larger ones are edited with terminal).
MAX_PATCH_BYTES = 8 * 1024 * 1024


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ReadFileArgs(_Args):
    path: str = Field(description="File to read (relative to the working directory or absolute).")
    offset: int = Field(1, ge=1, description="First line to return (1-based).")
    limit: int = Field(500, ge=1, le=5000, description="Maximum number of lines to return.")


class WriteFileArgs(_Args):
    path: str = Field(description="File to write; parent directories are created.")
    content: str = Field(description="The complete new content of the file.")


class PatchArgs(_Args):
    path: str = Field(description="File to edit.")
    old_string: str = Field(description="Exact text to replace; must match exactly once unless replace_all.")
    new_string: str = Field(description="Replacement text.")
    replace_all: bool = Field(False, description="Replace every occurrence instead of requiring one.")


class SearchArgs(_Args):
    pattern: str = Field(description="Regular expression (grep -E syntax for contents, Python syntax for file names).")
    path: str = Field(".", description="Directory (or file) to search.")
    target: Literal["content", "files"] = Field("content", description="Search file contents or file names.")
    file_glob: str | None = Field(None, description="Only files whose name matches this glob, e.g. '*.py'.")
    ignore_case: bool = False
    max_results: int = Field(50, ge=1, le=1000, description="Stop after this many matches.")


async def _check_regular(ctx, path: str) -> int:
    """The size of ``path`` if it is a regular file; a structured error otherwise (a FIFO or
    device is never opened: reading one would block or never end)."""
    info = await ctx.sandbox.stat(path)
    if info.kind == "missing":
        raise ToolFailure(f"no such file: {path!r}", kind="not_found")
    if info.kind == "dir":
        raise ToolFailure(f"{path!r} is a directory; use search_files or terminal 'ls'", kind="is_directory")
    if not info.regular:
        raise ToolFailure(
            f"{path!r} is not a regular file (it is a {info.kind}); read_file reads regular files only",
            kind="not_regular",
        )
    return info.size


async def _read_text(ctx, path: str) -> str:
    """A whole file as text (for patch), refusing non-regular, binary and oversized files."""
    size = await _check_regular(ctx, path)
    if size > MAX_PATCH_BYTES:
        raise ToolFailure(
            f"{path!r} is {size} bytes, too large to patch (at most {MAX_PATCH_BYTES}); edit it with terminal",
            kind="too_large",
        )
    try:
        data = await ctx.sandbox.read_bytes(path)
    except FileNotFoundError:
        raise ToolFailure(f"no such file: {path!r}", kind="not_found") from None
    except IsADirectoryError:
        raise ToolFailure(f"{path!r} is a directory; use search_files or terminal 'ls'", kind="is_directory") from None
    except PermissionError:
        raise ToolFailure(f"permission denied: {path!r}", kind="permission_denied") from None
    except TransferError as e:
        raise ToolFailure(str(e), kind="read_failed") from None
    if b"\0" in data[:8192]:
        raise ToolFailure(
            f"{path!r} is a binary file ({len(data)} bytes); read_file shows text only. "
            "Inspect it with terminal (e.g. 'xxd | head' or 'file').",
            kind="binary_file",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ToolFailure(
            f"{path!r} is not UTF-8 text (invalid byte at offset {e.start}); inspect it with terminal.",
            kind="binary_file",
        ) from None


# $1 = file, $2 = first line, $3 = last line, $4 = bytes kept per line. Prints a header line
# "<NUL bytes in the first 8 KiB> <lines>", then only the requested lines (each cut to $4
# bytes): the driver never holds more than it returns, whatever the file's size.
_READ_LINES = r"""
nul=$(head -c 8192 -- "$1" | tr -d -c '\000' | wc -c) || exit 1
if [ "$nul" -gt 0 ]; then printf '%s 0\n' "$nul"; exit 0; fi
n=$(wc -l < "$1") || exit 1
if [ -s "$1" ] && [ "$(tail -c 1 -- "$1" | wc -l)" -eq 0 ]; then n=$((n + 1)); fi
printf '0 %s\n' "$n"
sed -n "$2,$3p;$3q" -- "$1" | cut -b "1-$4"
"""


async def read_file(args: ReadFileArgs, ctx) -> dict:
    size = await _check_regular(ctx, args.path)
    last = args.offset + args.limit - 1
    full = ctx.sandbox.path(args.path)
    # Bytes kept per line: enough for MAX_LINE_CHARS of any UTF-8, and all lines within the
    # output the sandbox returns whole.
    per_line = max(64, min(4 * MAX_LINE_CHARS + 4, ctx.sandbox.output_limit // (args.limit + 1) - 16))
    r = await ctx.sandbox.exec(["sh", "-c", _READ_LINES, "sh", full, str(args.offset), str(last), str(per_line)],
                               timeout=120)
    header, _, body = r.output.partition("\n")
    parts = header.split()
    if r.exit_code != 0 or len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ToolFailure(f"cannot read {args.path!r}: {r.output.strip()[:300]}", kind="read_failed")
    if int(parts[0]):
        raise ToolFailure(
            f"{args.path!r} is a binary file ({size} bytes); read_file shows text only. "
            "Inspect it with terminal (e.g. 'xxd | head' or 'file').",
            kind="binary_file",
        )
    total = int(parts[1])
    chunk = body.split("\n")
    if chunk and chunk[-1] == "":
        chunk.pop()
    chunk = chunk[: args.limit]
    numbered = []
    for i, line in enumerate(chunk, start=args.offset):
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + f" [... line cut at {MAX_LINE_CHARS} chars]"
        numbered.append(f"{i:6d}|{line}")
    end = args.offset - 1 + len(chunk)
    out = {"path": full, "content": "\n".join(numbered), "total_lines": total}
    if end < total:
        out["next_offset"] = end + 1
        out["note"] = f"showing lines {args.offset}-{end} of {total}; pass offset={end + 1} for more"
    return out


async def write_file(args: WriteFileArgs, ctx) -> dict:
    data = args.content.encode("utf-8")
    try:
        await ctx.sandbox.write_bytes(args.path, data)
    except (IsADirectoryError, PermissionError, NotADirectoryError) as e:
        raise ToolFailure(f"cannot write {args.path!r}: {e.strerror or e}", kind="write_failed") from None
    return {"success": True, "path": ctx.sandbox.path(args.path), "bytes_written": len(data)}


async def patch(args: PatchArgs, ctx) -> dict:
    if not args.old_string:
        raise ToolFailure("old_string must not be empty; use write_file to create a file", kind="invalid_arguments")
    text = await _read_text(ctx, args.path)
    count = text.count(args.old_string)
    if count == 0:
        raise ToolFailure(
            f"old_string was not found in {args.path!r}; read the file and copy the exact text "
            "(whitespace and indentation included)",
            kind="no_match",
        )
    if count > 1 and not args.replace_all:
        raise ToolFailure(
            f"old_string matches {count} places in {args.path!r}; include more surrounding text to "
            "make it unique, or set replace_all=true",
            kind="ambiguous_match",
        )
    new = text.replace(args.old_string, args.new_string)
    await ctx.sandbox.write_bytes(args.path, new.encode("utf-8"))
    diff = "".join(
        difflib.unified_diff(text.splitlines(True), new.splitlines(True), args.path, args.path, n=2)
    )
    return {"success": True, "replacements": count, "diff": diff[:5000]}


async def _check_search_path(ctx, path: str) -> None:
    info = await ctx.sandbox.stat(path)
    if info.kind == "missing":
        raise ToolFailure(f"search path {path!r} does not exist", kind="not_found")


async def search_files(args: SearchArgs, ctx) -> dict:
    """Results use the original hermes keys: ``{"total_count", "matches": [{"path", "line",
    "content"}]}`` (``"files"`` for ``target="files"``); a missing path or an invalid pattern is
    an error, not an empty result."""
    await _check_search_path(ctx, args.path)
    if args.target == "files":
        return await _search_names(args, ctx)
    argv = ["grep", "-rnIE", "--color=never", "--exclude-dir=.git", "--exclude-dir=node_modules"]
    if args.ignore_case:
        argv.append("-i")
    if args.file_glob:
        argv.append(f"--include={args.file_glob}")
    argv += ["-e", args.pattern, "--", args.path]
    result = await ctx.sandbox.exec(argv, timeout=60)
    if result.exit_code == 1:
        return {"total_count": 0, "matches": []}
    matches = []
    problems = []
    total = 0
    for line in result.output.splitlines():
        m = re.match(r"^(.*?):(\d+):(.*)$", line)
        if not m or line.startswith("grep: "):
            if line.startswith("grep: "):
                problems.append(line[5:].strip())
            continue
        total += 1
        if len(matches) < args.max_results:
            matches.append({"path": m.group(1), "line": int(m.group(2)), "content": m.group(3)[:300]})
    if result.exit_code not in (0, 1) and total == 0:
        why = "; ".join(problems) or result.output.strip()[:500] or f"grep exited {result.exit_code}"
        kind = "invalid_arguments" if any(w in why.lower() for w in ("unmatched", "invalid", "trailing backslash", "regular expression")) else "search_failed"
        raise ToolFailure(f"search for {args.pattern!r} failed: {why}", kind=kind)
    out: dict = {"total_count": total, "matches": matches}
    if total > len(matches):
        out["truncated"] = True
        out["note"] = f"showing {len(matches)} of {total} matches; narrow the pattern or path"
    if problems:
        out["warning"] = "; ".join(problems[:5])
    return out


async def _search_names(args: SearchArgs, ctx) -> dict:
    try:
        rx = re.compile(args.pattern, re.IGNORECASE if args.ignore_case else 0)
    except re.error as e:
        raise ToolFailure(f"invalid regular expression {args.pattern!r}: {e}", kind="invalid_arguments") from None
    argv = ["find", args.path, "-type", "d", "(", "-name", ".git", "-o", "-name", "node_modules", ")", "-prune", "-o", "-type", "f"]
    if args.file_glob:
        argv += ["-name", args.file_glob]
    argv.append("-print")
    result = await ctx.sandbox.exec(argv, timeout=60)
    if result.exit_code != 0 and not result.output:
        raise ToolFailure(f"search failed: exit {result.exit_code}", kind="search_failed")
    hits = [p for p in result.output.splitlines() if rx.search(p.rsplit("/", 1)[-1])]
    out = {"total_count": len(hits), "files": hits[: args.max_results]}
    if len(hits) > args.max_results:
        out["truncated"] = True
        out["note"] = f"showing {args.max_results} of {len(hits)} files"
    return out

