#!/bin/bash
echo "deliberately not creating /app/ok"
