# expect: passed
# Honest programs may use their working directory and /tmp.
import json
import tempfile

with open("data.json", "w") as handle:
    json.dump({"x": 1}, handle)
with open("data.json") as handle:
    assert json.load(handle) == {"x": 1}
with tempfile.TemporaryFile() as scratch:
    scratch.write(b"ok")
