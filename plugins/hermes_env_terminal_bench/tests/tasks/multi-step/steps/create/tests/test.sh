#!/bin/bash
source /tests/lib.sh
[ "$(cat /app/list.txt)" = alpha ] && reward 1 || reward 0
