#!/bin/bash
# Harbor's convention: the reward file decides, not the exit code.
echo "cwd=$(pwd) nets=$(ls /sys/class/net | tr '\n' ' ')"
if [ "$(cat /app/hello.txt 2>/dev/null)" = "Hello, world!" ] && [ "$(ls /sys/class/net)" = "lo" ] \
   && [ -d /logs/agent ] && [ -d /logs/artifacts ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
exit 3
