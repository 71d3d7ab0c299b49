#!/bin/bash
[ "$(cat /app/mode.txt)" = compose ] && [ "$(cat /app/seed.txt)" = seeded ] \
  && echo 1 > /logs/verifier/reward.txt || echo 0 > /logs/verifier/reward.txt
