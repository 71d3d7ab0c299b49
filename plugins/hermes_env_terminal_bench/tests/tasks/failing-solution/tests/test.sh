#!/bin/bash
[ "$(cat /tmp/n.txt)" = 7 ] && echo 1 > /logs/verifier/reward.txt || echo 0 > /logs/verifier/reward.txt
