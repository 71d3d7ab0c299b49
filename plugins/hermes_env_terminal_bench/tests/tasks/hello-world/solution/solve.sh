#!/bin/bash
set -e
echo "solving in $(pwd) with DEBIAN_FRONTEND=$DEBIAN_FRONTEND"
printf '%s, world!\n' "$GREETING" > /app/hello.txt
mkdir -p /app/out && echo kept > /app/out/result.txt && echo dropped > /app/out/scratch.tmp
echo "published" > /logs/artifacts/note.txt
