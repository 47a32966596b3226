#!/usr/bin/env python3
"""Select the R4 JSON cases of FHIR/fhir-test-cases and copy what they need.

Usage (from the repository root, GIT_DIR a clone of FHIR/fhir-test-cases):
    python3 crates/validator/tools/ftc_r4_select.py GIT_DIR COMMIT \
        crates/validator/tests/data/fhir-test-cases

Selects the cases of `validator/manifest.json` whose `version` is 4.0 and whose instance is
JSON, without IG `packages`, without a `logical` model and outside the terminology-server
modules (`tx`, `tx-advanced`) and not marked `"use-test": false` (the Java suite skips
those), plus the cases of the older hand-picked subset
(`validator-manifest-r4-subset.json`, some of them XML, read from their JSON conversion).
Writes `validator-manifest-r4.json` (entries unchanged, upstream order) and copies each
case's instance, definitions and Java outcome files unchanged into `validator/` (definitions
written in XML too; `tools/xml2json` converts those to `json/`, which the tests read).
"""
import json
import os
import subprocess
import sys

TX_MODULES = {"tx", "tx-advanced"}


def show(git, commit, path):
    r = subprocess.run(["git", "--git-dir", git, "show", f"{commit}:{path}"],
                       capture_output=True)
    return r.stdout if r.returncode == 0 else None


def selected(case):
    return (case.get("version") == "4.0" and case.get("file", "").endswith(".json")
            and not case.get("packages") and not case.get("logical")
            and case.get("module") not in TX_MODULES and case.get("use-test") is not False)


def files_of(case):
    out = [case["file"]]
    out += case.get("profiles", []) + case.get("supporting", [])
    p = case.get("profile") or {}
    out += p.get("supporting", [])
    if p.get("source"):
        out.append(p["source"])
    # The Java outcome is a file name or, in some cases, written inline.
    for java in (case.get("java"), p.get("java")):
        if isinstance(java, str):
            out.append("outcomes/" + java)
    # Where the named outcome does not exist upstream, the Java suite's usual name
    # (`R4.<case>-<base|profile>.json`) holds what it recorded; the harness falls back to it.
    stem = case["name"].replace("/", "-")
    out.append(f"outcomes/java/R4.{stem}-base.json")
    if p.get("java"):
        out.append(f"outcomes/java/R4.{stem}-profile.json")
    return out


def main():
    git, commit, dest = sys.argv[1:4]
    manifest = json.loads(show(git, commit, "validator/manifest.json"))
    subset_path = os.path.join(dest, "validator-manifest-r4-subset.json")
    with open(subset_path) as f:
        subset = {c["name"] for c in json.load(f)["test-cases"]}
    cases = [c for c in manifest["test-cases"] if selected(c) or c["name"] in subset]
    missing = []
    for case in cases:
        for rel in files_of(case):
            target = os.path.join(dest, "validator", rel)
            # XML files are copied too: `tools/xml2json` converts them to `json/` once.
            if os.path.exists(target):
                continue
            data = show(git, commit, "validator/" + rel)
            if data is None:
                if not rel.startswith("outcomes/java/R4." + case["name"].replace("/", "-") + "-"):
                    missing.append(rel)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
    with open(os.path.join(dest, "validator-manifest-r4.json"), "w") as f:
        json.dump({"test-cases": cases}, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"{len(cases)} cases; missing upstream: {missing}")


if __name__ == "__main__":
    main()
