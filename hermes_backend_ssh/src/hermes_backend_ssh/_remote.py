"""The command lines sent to the remote host: the per-command prefix and the backend's own
scripts (setup, kill by marker, removal, the sweep listing).

sshd hands a channel's command line to the user's login shell (``$SHELL -c LINE``). When that
shell is bash (checked at setup), a command runs *in* it: the prefix unsets every exported
variable, exports the sandbox's environment, prints the pid header, changes directory and then
``exec``s an argv or ``eval``s a shell string — no extra process per command. With another
login shell the same script runs under ``env -i ... bash -c`` (one more exec). Everything that
reaches the remote shell is quoted with :func:`shlex.quote`; paths and arguments are data.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

__all__ = [
    "MARKER",
    "EXEC_MARKER",
    "command_line",
    "internal",
    "SETUP",
    "KILL_MARKED",
    "REMOVE",
    "SWEEP_LIST",
    "SIGNAL_GROUP",
]

#: Environment variable every process of a sandbox carries: the sandbox's remote directory.
MARKER = "HERMES_SSH_SANDBOX"
#: Environment variable carrying one command's nonce (to kill a command whose header was lost).
EXEC_MARKER = "HERMES_SSH_EXEC"

#: Variables sshd or a login may set that the setup probe could miss (PTY sessions, agents, X11).
ALWAYS_UNSET = (
    "SSH_CLIENT", "SSH_CONNECTION", "SSH_TTY", "SSH_AUTH_SOCK", "SSH_ORIGINAL_COMMAND", "TERM", "MAIL",
    "DISPLAY", "XAUTHORITY", "OLDPWD", "BASH_ENV", "ENV", "LD_PRELOAD", "LD_LIBRARY_PATH",
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def scrub_names(probed: str) -> tuple[str, ...]:
    """The exported names to unset in every command: what the login shell exported at setup
    (``compgen -e``, probed once) plus :data:`ALWAYS_UNSET`."""
    names = dict.fromkeys(n for n in (*probed.split(), *ALWAYS_UNSET) if _NAME.match(n))
    return tuple(names)


def _body(argv: Sequence[str] | None, script: str | None) -> str:
    if script is not None:
        return "eval -- " + shlex.quote(script)
    assert argv
    return "exec -- " + " ".join(shlex.quote(a) for a in argv)


def command_line(
    *,
    env: Mapping[str, str],
    cwd: str,
    argv: Sequence[str] | None = None,
    script: str | None = None,
    login_bash: bool = True,
    unset: tuple[str, ...] = ALWAYS_UNSET,
) -> str:
    """The remote command line that runs ``argv`` (or the bash ``script``) in the sandbox.

    Output: the pid header, then stdout and stderr merged (``exec 2>&1``, so their order is
    exact).
    """
    inner = f"echo __HERMES_PID_$$__; cd -- {shlex.quote(cwd)} || exit 1; {_body(argv, script)}"
    if login_bash:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        # Builtins only: no fork before the command (a $(compgen -e) here would cost one).
        return f"exec 2>&1; unset {' '.join(unset)} 2>/dev/null; export {exports}; {inner}"
    pairs = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
    return f"exec env -i {pairs} bash -c {shlex.quote('exec 2>&1; ' + inner)}"


def internal(script: str, *args: str, login_probe: bool = False) -> str:
    """A command line for the backend's own POSIX ``sh`` scripts (no sandbox marker).

    With ``login_probe`` the first arguments are the login shell's ``$BASH_VERSION`` (empty when
    the login shell is not bash) and the names it exports (bash only).
    """
    quoted = " ".join(shlex.quote(a) for a in (script, "hermes-ssh"))
    probe = ' "${BASH_VERSION:-}" "$(compgen -e 2>/dev/null)"' if login_probe else ""
    rest = "".join(" " + shlex.quote(a) for a in args)
    return f"exec /bin/sh -c {quoted}{probe}{rest}"


#: $1 the login shell's $BASH_VERSION, $2 the names it exports, $3 root, $4 directory name,
#: $5 owner JSON, $6 min free KiB, $7 PATH. Prints HENV:<names> and then HOK:<free KiB>:<login
#: is bash 0/1>:<dir>, or HERR:<kind>:<message>.
SETUP = r"""
lbv=$1 names=$2 root=$3 name=$4 owner=$5 minfree=$6
case $root in "~") root=$HOME;; "~/"*) root=$HOME/${root#"~/"};; esac
PATH=$7; export PATH
echo "HENV:" $names
command -v bash >/dev/null 2>&1 || { echo "HERR:nobash:no bash on PATH=$PATH"; exit 3; }
[ -r /proc/self/environ ] || { echo "HERR:noproc:/proc is not readable"; exit 3; }
out=$(mkdir -p -- "$root" 2>&1) || { echo "HERR:mkdir:$out"; exit 4; }
root=$(cd -- "$root" && pwd -P) || { echo "HERR:mkdir:cannot enter $3"; exit 4; }
set -- $(df -Pk -- "$root" 2>/dev/null | tail -n 1)
free=${4:-0}
case $free in *[!0-9]*|"") free=0;; esac
if [ "$free" -lt "$minfree" ]; then echo "HERR:disk:$free KiB free under $root"; exit 5; fi
d=$root/$name
out=$(mkdir -m 700 -- "$d" 2>&1 && mkdir -- "$d/work" "$d/home" "$d/tmp" "$d/.parts" 2>&1) || {
  rm -rf -- "$d"; echo "HERR:mkdir:$out"; exit 4; }
out=$( { printf '%s\n' "$owner" > "$d/owner.json.tmp" && mv -f -- "$d/owner.json.tmp" "$d/owner.json"; } 2>&1) || {
  rm -rf -- "$d"; echo "HERR:write:$out"; exit 4; }
case $lbv in ?*) lb=1;; *) lb=0;; esac
echo "HOK:$free:$lb:$d"
"""

#: $1 a full environment entry NAME=value. SIGKILLs every process (and its group) whose
#: environment holds it, several passes (a process may be forking); prints HKILLED:<n>.
KILL_MARKED = r"""
m=$1 total=0 pass=0
while [ $pass -lt 6 ]; do
  pass=$((pass+1)) n=0
  for f in $(grep -lzxF -- "$m" /proc/[0-9]*/environ 2>/dev/null); do
    p=${f#/proc/}; p=${p%/environ}
    [ "$p" = $$ ] && continue
    st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    set -- ${st##*) }
    [ "$1" = Z ] && continue
    kill -KILL "-$3" 2>/dev/null; kill -KILL "$p" 2>/dev/null
    n=$((n+1))
  done
  total=$((total+n))
  [ $n -eq 0 ] && break
  sleep 0.05
done
echo "HKILLED:$total"
"""

#: $1 marker entry, $2 sandbox directory: kill the marked processes, then remove the directory.
REMOVE = "d=$2\n" + KILL_MARKED + r"""
case $d in */hermes-*) ;; *) echo "HERR:refusing to remove $d"; exit 2;; esac
chmod -R u+rwx -- "$d" 2>/dev/null
rm -rf -- "$d" 2>/dev/null
if [ -e "$d" ]; then echo "HERR:could not remove $d"; exit 1; fi
echo HREMOVED
"""

#: $1 root. One line per sandbox directory: HDIR\t<dir>\t<mtime>\t<owner.json>; then one line
#: per marked process whose directory is gone: HORPHAN\t<dir>.
SWEEP_LIST = r"""
root=$1
case $root in "~") root=$HOME;; "~/"*) root=$HOME/${root#"~/"};; esac
[ -d "$root" ] || exit 0
root=$(cd -- "$root" && pwd -P) || exit 0
for d in "$root"/hermes-*; do
  [ -d "$d" ] || continue
  o=$(head -c 4096 -- "$d/owner.json" 2>/dev/null | head -n 1)
  t=$(stat -c %Y -- "$d" 2>/dev/null)
  printf 'HDIR\t%s\t%s\t%s\n' "$d" "${t:-0}" "$o"
done
for f in $(grep -lzF -- "HERMES_SSH_SANDBOX=$root/hermes-" /proc/[0-9]*/environ 2>/dev/null); do
  v=$(tr '\0' '\n' < "$f" 2>/dev/null | grep -m1 '^HERMES_SSH_SANDBOX=')
  v=${v#HERMES_SSH_SANDBOX=}
  [ -n "$v" ] && [ ! -e "$v" ] && printf 'HORPHAN\t%s\n' "$v"
done | sort -u
"""

#: $1 signal number, $2 pid (== its process group). The group outlives its leader while
#: children remain, so the group is signalled first.
SIGNAL_GROUP = r"""kill "-$1" "-$2" 2>/dev/null || kill "-$1" "$2" 2>/dev/null; exit 0"""
