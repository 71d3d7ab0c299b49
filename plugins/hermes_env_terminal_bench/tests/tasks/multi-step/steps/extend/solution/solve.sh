#!/bin/bash
cat /app/next.txt >> /app/list.txt
