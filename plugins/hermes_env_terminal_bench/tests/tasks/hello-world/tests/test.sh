#!/bin/bash
# Harbor's convention: the reward file decides, not the exit code.
echo "cwd=$(pwd) nets=$(ls /sys/class/net | tr '\n' ' ')"
# [environment] memory = "1G" and cpus = 1 reach the container (cgroup v1 or v2).
mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)
cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max)
echo "memory=$mem cpu_quota=$cpu"
if [ "$(cat /app/hello.txt 2>/dev/null)" = "Hello, world!" ] && [ "$(ls /sys/class/net)" = "lo" ] \
   && [ -d /logs/agent ] && [ -d /logs/artifacts ] && [ "$mem" = 1073741824 ] && [ "$cpu" = 100000 ]; then
  echo 1 > /logs/verifier/reward.txt
else
  echo 0 > /logs/verifier/reward.txt
fi
exit 3
