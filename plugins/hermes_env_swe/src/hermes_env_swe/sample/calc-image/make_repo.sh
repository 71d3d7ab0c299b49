#!/bin/bash
# Builds the git repository of the `calc` fixture at $1 with deterministic commits (fixed author,
# committer and dates), so the commit ids in instances.jsonl are the same on every machine.
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)/repo
dest=$1
export GIT_AUTHOR_NAME=hermes GIT_AUTHOR_EMAIL=hermes@example.invalid GIT_COMMITTER_NAME=hermes \
       GIT_COMMITTER_EMAIL=hermes@example.invalid GIT_CONFIG_NOSYSTEM=1 HOME=/nonexistent
mkdir -p "$dest"
cd "$dest"
git init -q
git symbolic-ref HEAD refs/heads/main
cp -r "$src/v1/." .
find . -path ./.git -prune -o -type f -exec chmod 644 {} +
git add -A
GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z" git commit -q -m "calc: add, sub, mean, clamp"
cp -r "$src/v2/." .
chmod 644 calc/ops.py
git add -A
GIT_AUTHOR_DATE="2024-01-02T00:00:00Z" GIT_COMMITTER_DATE="2024-01-02T00:00:00Z" git commit -q -m "calc: double"
git log --format='%H %s'
