#!/bin/bash
echo "$MODE" > /app/mode.txt
