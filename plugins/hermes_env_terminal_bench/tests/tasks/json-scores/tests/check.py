import json, os
correct = open("/srv/answer.txt").read().strip() == os.environ["EXPECTED"]
style = os.path.exists("/srv/NOTES.md")
json.dump({"correctness": int(correct), "style": int(style)}, open("/logs/verifier/reward.json", "w"))
