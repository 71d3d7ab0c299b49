#!/bin/bash
echo "$ANSWER" > answer.txt
echo "# notes" > NOTES.md
