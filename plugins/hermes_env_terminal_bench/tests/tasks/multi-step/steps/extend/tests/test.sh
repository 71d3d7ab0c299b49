#!/bin/bash
source /tests/lib.sh
# Step 1's test script must not be left behind, and setup.sh ran.
[ "$(paste -sd, /app/list.txt)" = "$WANT" ] && [ -f /app/setup-ran ] && reward 1 || reward 0
