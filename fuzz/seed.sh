#!/usr/bin/env bash
# Seeds the fuzz corpora from the project's own fixtures: FHIR requests (JSON and XML) and the
# VCS bodies the closed-loop fixtures send.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p fuzz/corpus/json fuzz/corpus/xml fuzz/corpus/vcs
find fixtures profiles/examples -name '*.json' ! -name '*.expect.json' ! -name '*.record.json' \
  ! -name '*.oruk.json' -exec cp {} fuzz/corpus/json/ \;
find fixtures -name '*.xml' -exec cp {} fuzz/corpus/xml/ \;
python3 - <<'PY'
import hashlib, json, pathlib
out = pathlib.Path("fuzz/corpus/vcs")
for expect in pathlib.Path("fixtures").rglob("*.expect.json"):
    for step in json.loads(expect.read_text()).get("steps", []):
        for key in ("vcs_status", "vcs_outcome"):
            if key in step:
                body = json.dumps(step[key]).encode()
                (out / hashlib.sha1(body).hexdigest()).write_bytes(body)
PY
