#!/usr/bin/env python3
"""The R4 core resource definitions that `profiles/r4` does not carry, trimmed like it.

Usage (from the repository root):
    python3 crates/validator/tools/trim_r4_resources.py SRC_DIR crates/validator/definitions

SRC_DIR holds `profiles-resources.json` and `valuesets.json` of the FHIR R4 4.0.1
definitions. Writes `r4-resources.json` (every resource StructureDefinition missing from
`profiles/r4/profiles-resources.json`, snapshot trimmed by `trim_r4.py`'s rules) and
`r4-valuesets.json` (the ValueSets those bind `required` or `extensible`, their imports,
and the CodeSystems they draw on, where `profiles/r4/valuesets.json` lacks them).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trim_r4 import (  # noqa: E402
    BOUND_STRENGTHS, close_value_sets, strip_version, trim_cs, trim_sd, trim_vs, write_bundle,
)

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILES_R4 = os.path.join(HERE, "..", "..", "..", "profiles", "r4")


def load(path):
    with open(path) as f:
        return json.load(f)


def main(src, dst):
    have = load(os.path.join(PROFILES_R4, "profiles-resources.json"))
    have_ids = {e["resource"]["url"] for e in have["entry"]}
    terms_r4 = load(os.path.join(PROFILES_R4, "valuesets.json"))["entry"]
    have_terms = {e["resource"]["url"] for e in terms_r4}
    # Only R4 resource types (the copy may carry later additions such as SubscriptionStatus).
    r4_types = {c["code"] for e in terms_r4 if e["resource"]["url"] == "http://hl7.org/fhir/resource-types"
                for c in e["resource"]["concept"]}
    res = load(os.path.join(src, "profiles-resources.json"))
    sds = [trim_sd(e["resource"]) for e in res["entry"]
           if e["resource"]["resourceType"] == "StructureDefinition"
           and e["resource"].get("kind") == "resource" and e["resource"]["id"] in r4_types
           and e["resource"]["url"] not in have_ids]
    wanted_vs = set()
    for sd in sds:
        for el in sd["snapshot"]["element"]:
            b = el.get("binding")
            if b and b.get("strength") in BOUND_STRENGTHS and "valueSet" in b:
                wanted_vs.add(strip_version(b["valueSet"]))
    by_url = {}
    for e in load(os.path.join(src, "valuesets.json"))["entry"]:
        by_url.setdefault(e["resource"]["url"], e["resource"])
    seen, wanted_cs = close_value_sets(wanted_vs, by_url)
    terms = []
    for url, r in by_url.items():
        if url in have_terms:
            continue
        if r["resourceType"] == "ValueSet" and url in seen:
            terms.append({"resource": trim_vs(r)})
        elif r["resourceType"] == "CodeSystem" and url in wanted_cs:
            terms.append({"resource": trim_cs(r)})

    write_bundle(dst, "r4-resources", [{"resource": s} for s in sds])
    write_bundle(dst, "r4-valuesets", terms)
    print(f"resources {len(sds)}, valuesets+codesystems {len(terms)}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
