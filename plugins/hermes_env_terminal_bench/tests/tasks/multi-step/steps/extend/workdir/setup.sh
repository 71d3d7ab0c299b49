echo "staged by setup" > /app/setup-ran
