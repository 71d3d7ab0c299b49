"""Building sandbox images from a context directory, cached by a hash of that context.

The cache key covers everything that decides the image: the Dockerfile (after the image map is
applied to its ``FROM`` lines), every file of the context that is sent (path, mode, content,
link target), the build args and the target stage. An image whose ``hermes.build.key`` label
holds the key is reused, so a second run of the same task builds nothing. Concurrent builds of
one key (threads or processes) wait on a lock file and then find the image.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hermes_core.errors import SandboxError

if TYPE_CHECKING:
    from docker import APIClient

    from ._options import BuildOptions

__all__ = [
    "BUILT_LABEL",
    "ImageBuildError",
    "build_image",
    "cache_key",
    "map_from_lines",
    "map_image",
    "sweep_images",
]

#: Label on every image this backend built; ``sweep_images`` finds them by it.
BUILT_LABEL = "hermes.built"
KEY_LABEL = "hermes.build.key"
#: Lines of build output kept for the error message of a failed build.
LOG_TAIL = 40
_FROM = re.compile(r"^(\s*FROM\s+)((?:--\S+\s+)*)(\S+)(.*)$", re.IGNORECASE)
_STAGE = re.compile(r"\s+AS\s+(\S+)", re.IGNORECASE)


class ImageBuildError(SandboxError):
    """Building a sandbox image failed or timed out; the message holds the build log's tail."""


# --------------------------------------------------------------------------- image map


def map_image(image: str, image_map: Mapping[str, str]) -> str:
    """The local image that replaces ``image`` (``name`` and ``name:latest`` are the same)."""
    if image in image_map:
        return image_map[image]
    if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
        return image_map.get(f"{image}:latest", image)
    if image.endswith(":latest"):
        return image_map.get(image[: -len(":latest")], image)
    return image


def map_from_lines(dockerfile: str, image_map: Mapping[str, str]) -> str:
    """Apply ``image_map`` to the images of ``FROM`` lines (never to earlier stage names)."""
    if not image_map:
        return dockerfile
    stages: set[str] = set()
    out = []
    for line in dockerfile.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        m = _FROM.match(body)
        if m:
            head, flags, image, rest = m.groups()
            if image.lower() not in stages:
                image = map_image(image, image_map)
            stage = _STAGE.match(rest)
            if stage:
                stages.add(stage.group(1).lower())
            line = f"{head}{flags}{image}{rest}{line[len(body):]}"
        out.append(line)
    return "".join(out)


# --------------------------------------------------------------------------- context


def _ignore_patterns(context: Path) -> list[str]:
    f = context / ".dockerignore"
    if not f.is_file():
        return []
    pats = []
    for line in f.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            pats.append(line.lstrip("/").rstrip("/"))
    return pats


def _ignored(rel: str, patterns: list[str]) -> bool:
    ignored = False
    for p in patterns:
        neg = p.startswith("!")
        pat = p[1:] if neg else p
        if fnmatch.fnmatchcase(rel, pat) or fnmatch.fnmatchcase(rel, pat + "/*") or rel.startswith(pat + "/"):
            ignored = not neg
    return ignored


def _context_files(context: Path) -> list[tuple[str, Path]]:
    """``(relative posix path, path)`` of everything sent, sorted; symlinks are not followed."""
    patterns = _ignore_patterns(context)
    found: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(context, followlinks=False):
        dirs.sort()
        for name in sorted(dirs + files):
            p = Path(root, name)
            rel = p.relative_to(context).as_posix()
            if _ignored(rel, patterns):
                if name in dirs:
                    dirs.remove(name)
                continue
            found.append((rel, p))
    return sorted(found)


def _dockerfile_text(context: Path, build: BuildOptions) -> str:
    path = Path(build.dockerfile) if Path(build.dockerfile).is_absolute() else context / build.dockerfile
    try:
        return path.read_text()
    except OSError as e:
        raise ImageBuildError(f"cannot read the Dockerfile {path}: {e.strerror or e}") from None


def cache_key(build: BuildOptions, image_map: Mapping[str, str]) -> str:
    """sha256 over the mapped Dockerfile, the context's files, the build args and the target."""
    context = Path(build.context)
    if not context.is_dir():
        raise ImageBuildError(f"build context {context} is not a directory (option build.context)")
    h = hashlib.sha256()
    h.update(b"hermes-build-v1\0")
    h.update(map_from_lines(_dockerfile_text(context, build), image_map).encode())
    h.update(b"\0" + build.dockerfile.encode() + b"\0" + (build.target or "").encode() + b"\0")
    for k in sorted(build.args):
        h.update(f"arg {k}={build.args[k]}\0".encode())
    for rel, p in _context_files(context):
        st = p.lstat()
        h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode) & 0o111}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(p).encode())
        elif stat.S_ISREG(st.st_mode):
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def _tag(build: BuildOptions, key: str) -> str:
    ctx = Path(build.context).resolve()
    # Harbor tasks keep their context in <task>/environment: the task's name says more.
    base = (ctx.parent.name if ctx.name == "environment" else ctx.name).lower()
    slug = re.sub(r"[^a-z0-9._-]+", "-", base).strip("-._") or "context"
    return f"{build.repository}/{slug[:60]}:{key[:20]}"


def _context_tar(build: BuildOptions, dockerfile: str) -> Any:
    """The build context as a tar, with the (image-mapped) Dockerfile in place of the original.

    Spooled to a temporary file past 32 MiB, so a large context is not held in memory.
    """
    import tempfile

    context = Path(build.context)
    buf = tempfile.SpooledTemporaryFile(max_size=32 << 20)
    df_rel = None if Path(build.dockerfile).is_absolute() else Path(build.dockerfile).as_posix()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel, p in _context_files(context):
            if rel == df_rel:
                continue
            tar.add(p, arcname=rel, recursive=False)
        data = dockerfile.encode()
        info = tarfile.TarInfo(df_rel or ".hermes.Dockerfile")
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


# --------------------------------------------------------------------------- build


def build_image(
    api: APIClient,
    build: BuildOptions,
    image_map: Mapping[str, str],
    *,
    labels: Mapping[str, str],
    docker_host: str | None = None,
) -> tuple[str, bool]:
    """Build (or reuse) the image of ``build``. Blocking; runs on a thread of its own.

    Returns:
        ``(tag, built)``: the image's tag, and whether this call built it (False: cache hit).

    Raises:
        ImageBuildError: the Dockerfile is missing, the build failed (the message holds the
            tail of the build log), or it ran longer than ``build.timeout``.
    """
    import docker.errors

    key = cache_key(build, image_map)
    tag = _tag(build, key)
    if _has_image(api, tag, key):
        return tag, False
    lock_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hermes" / "docker-build"
    lock_dir.mkdir(parents=True, exist_ok=True)
    import fcntl

    deadline = time.monotonic() + build.timeout
    with open(lock_dir / f"{key}.lock", "w") as lock:
        while True:  # bounded wait: another build of the same context finishes or times out
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ImageBuildError(
                        f"waited {build.timeout:g}s for another build of {build.context} to finish "
                        "(option build.timeout)"
                    ) from None
                time.sleep(0.2)
        if _has_image(api, tag, key):
            return tag, False
        dockerfile = map_from_lines(_dockerfile_text(Path(build.context), build), image_map)
        df_name = Path(build.dockerfile).as_posix() if not Path(build.dockerfile).is_absolute() else ".hermes.Dockerfile"
        all_labels = {**labels, BUILT_LABEL: "docker", KEY_LABEL: key, "hermes.build.context": str(build.context),
                      "hermes.created": str(int(time.time()))}
        tail: deque[str] = deque(maxlen=LOG_TAIL)
        from ._engine import connect

        # A client of its own whose socket timeout is the build's: a RUN step that prints
        # nothing for that long ends the read, which closes the connection and makes the
        # engine cancel the build.
        remaining = max(1.0, deadline - time.monotonic())
        client = connect(docker_host, timeout=remaining)
        response = None
        error = None
        try:
            params: dict[str, Any] = {
                "t": tag, "dockerfile": df_name, "rm": True, "forcerm": True, "pull": False,
                "labels": json.dumps(all_labels),
            }
            if build.args:
                params["buildargs"] = json.dumps(dict(build.args))
            if build.target:
                params["target"] = build.target
            # The request is made here rather than through APIClient.build() so that the response
            # can be closed on timeout: the engine cancels a build whose client hung up.
            with _context_tar(build, dockerfile) as tar:
                response = client._post(  # noqa: SLF001
                    client._url("/build"), data=tar, params=params,  # noqa: SLF001
                    headers={"Content-Type": "application/tar"}, stream=True, timeout=remaining,
                )
            client._raise_for_status(response)  # noqa: SLF001
            for line in response.iter_lines():
                if time.monotonic() > deadline:
                    raise _BuildTimeout
                try:
                    event = json.loads(line) if line.strip() else None
                except ValueError:
                    event = {"stream": line.decode("utf-8", "replace")}
                if not isinstance(event, dict):
                    continue
                if "stream" in event:
                    tail.extend(t for t in str(event["stream"]).splitlines() if t.strip())
                if event.get("error") or event.get("errorDetail"):
                    error = event.get("error") or (event.get("errorDetail") or {}).get("message")
                    tail.append(str(error))
        except _BuildTimeout:
            raise ImageBuildError(
                f"building the image of {build.context} did not finish within {build.timeout:g}s "
                f"(option build.timeout); last build output:\n{_fmt(tail)}"
            ) from None
        except docker.errors.APIError as e:
            error = str(e.explanation or e)
            tail.append(error)
        except Exception as e:  # noqa: BLE001 - requests' ReadTimeout / ConnectionError
            if "timed out" in str(e).lower() or "timeout" in type(e).__name__.lower():
                raise ImageBuildError(
                    f"building the image of {build.context} did not finish within {build.timeout:g}s "
                    f"(option build.timeout); last build output:\n{_fmt(tail)}"
                ) from None
            raise
        finally:
            if response is not None:
                response.close()
            client.close()
        if error is not None or not _has_image(api, tag, key):
            hint = ""
            steps = [t for t in tail if t.startswith("Step ")]
            if steps and re.search(r"^Step \d+/\d+ : FROM\s", steps[-1], re.IGNORECASE):
                base = steps[-1].split(":", 1)[1].split()[1] if len(steps[-1].split(":", 1)[1].split()) > 1 else "?"
                hint = (f" The base image {base!r} could not be found or pulled: build it locally, or map it "
                        "to a local image with the option image_map (or $HERMES_DOCKER_IMAGE_MAP).")
            raise ImageBuildError(
                f"building the image of {build.context} failed: {error or 'no image was produced'}.{hint}\n"
                f"last build output:\n{_fmt(tail)}"
            )
        return tag, True


class _BuildTimeout(Exception):
    pass


def _fmt(tail: deque[str]) -> str:
    return "\n".join(f"  {line[:300]}" for line in tail) or "  (no output)"


def _has_image(api: APIClient, tag: str, key: str) -> bool:
    import docker.errors

    try:
        info = api.inspect_image(tag)
    except docker.errors.NotFound:
        return False
    return ((info.get("Config") or {}).get("Labels") or {}).get(KEY_LABEL) == key


# --------------------------------------------------------------------------- sweep


def sweep_images(
    older_than: float | None = None, *, labels: Mapping[str, str] | None = None, docker_host: str | None = None
) -> list[str]:
    """Remove images this backend built (label ``hermes.built``) that no container uses.

    Args:
        older_than: only images built at least this many seconds ago; ``None`` for all.
        labels: only images that also carry these labels (e.g. the ``labels`` option they
            were built with).

    Returns:
        One line per removed image: its tag and age.
    """
    import docker.errors

    from ._engine import connect

    api = connect(docker_host)
    try:
        now = time.time()
        removed = []
        wanted = [f"{BUILT_LABEL}=docker", *(f"{k}={v}" for k, v in (labels or {}).items())]
        for img in api.images(filters={"label": wanted}):
            labels = img.get("Labels") or {}
            try:
                created = float(labels.get("hermes.created") or img.get("Created") or now)
            except ValueError:
                created = float(img.get("Created") or now)
            if older_than is not None and now - created < older_than:
                continue
            name = (img.get("RepoTags") or [img["Id"]])[0]
            try:
                api.remove_image(img["Id"], force=False)
            except docker.errors.APIError:  # in use by a container: not ours to break
                continue
            removed.append(f"{name} (age {now - created:.0f}s)")
        return removed
    finally:
        api.close()
