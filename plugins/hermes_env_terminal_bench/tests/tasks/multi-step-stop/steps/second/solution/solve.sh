#!/bin/bash
touch /app/ok /app/second
