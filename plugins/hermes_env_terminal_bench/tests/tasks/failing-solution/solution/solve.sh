#!/bin/bash
echo 8 > /tmp/n.txt
exit 1
