#!/bin/bash
echo alpha > /app/list.txt
