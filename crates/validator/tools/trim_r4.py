#!/usr/bin/env python3
"""Trim the HL7 FHIR R4 4.0.1 definitions down to what sp-validator uses.

Usage (from the repository root):
    python3 crates/validator/tools/trim_r4.py SRC_DIR profiles/r4 [OTHERS_DIR]

SRC_DIR holds profiles-types.json, profiles-resources-subset.json and
valuesets.json as shipped in the FHIR R4 4.0.1 definitions. OTHERS_DIR, when
given, holds extension-definitions.json and profiles-others.json of the same
definitions: every core extension definition and the vital-signs profiles are
then kept too (differential only: the validator applies profiles as overlays
on their base), and the value sets they bind are added to valuesets.json.
The output is deterministic (sorted keys are not used; entry order follows
the source) so a rerun on the same input gives byte-identical files.
"""
import json
import os
import sys

# Element properties the validator reads; everything else (narrative text,
# mappings, definitions, comments, aliases) is documentation only.
ELEMENT_KEEP = {
    "id", "path", "sliceName", "min", "max", "base", "type", "contentReference",
    "binding", "constraint", "slicing", "maxLength", "condition",
}
ELEMENT_PREFIX_KEEP = ("fixed", "pattern", "minValue", "maxValue")
SD_KEEP = {
    "resourceType", "id", "url", "version", "name", "kind", "abstract", "type",
    "baseDefinition", "derivation", "context", "snapshot",
}
CONSTRAINT_KEEP = {"key", "severity", "human", "expression", "source"}
BINDING_KEEP = {"strength", "valueSet"}
# Always kept: the list of all R4 resource type names (to tell a known type we
# have no definition for from a made-up one).
ALWAYS_CODESYSTEMS = {"http://hl7.org/fhir/resource-types"}
ALWAYS_VALUESETS = {"http://hl7.org/fhir/ValueSet/resource-types"}
BOUND_STRENGTHS = {"required", "extensible"}


def trim_type(t):
    out = {k: v for k, v in t.items() if k in ("code", "profile", "targetProfile", "aggregation")}
    # The fhir-type extension tells what System.String ids really are.
    exts = [e for e in t.get("extension", []) if e.get("url", "").endswith("structuredefinition-fhir-type")]
    if exts:
        out["extension"] = exts
    return out


def trim_element(e):
    out = {}
    for k, v in e.items():
        if k in ELEMENT_KEEP or k.startswith(ELEMENT_PREFIX_KEEP):
            out[k] = v
    if "type" in out:
        out["type"] = [trim_type(t) for t in out["type"]]
    if "constraint" in out:
        out["constraint"] = [{k: v for k, v in c.items() if k in CONSTRAINT_KEEP} for c in out["constraint"]]
    if "binding" in out:
        out["binding"] = {k: v for k, v in out["binding"].items() if k in BINDING_KEEP}
    return out


def trim_sd(sd):
    out = {k: v for k, v in sd.items() if k in SD_KEEP}
    out["snapshot"] = {"element": [trim_element(e) for e in sd["snapshot"]["element"]]}
    return out


# The core vital-signs profiles (R4 observation-vitalsigns): the HL7 validator
# applies them to Observations by code.
VITAL_SIGNS = [
    "vitalsigns", "vitalspanel", "resprate", "heartrate", "oxygensat", "bodytemp",
    "bodyheight", "headcircum", "bodyweight", "bmi", "bp",
]
PROFILE_KEEP = (SD_KEEP - {"snapshot"}) | {"differential"}


def trim_profile(sd):
    out = {k: v for k, v in sd.items() if k in PROFILE_KEEP}
    out["differential"] = {"element": [trim_element(e) for e in sd["differential"]["element"]]}
    return out


def strip_version(url):
    return url.split("|", 1)[0]


def trim_concepts(concepts):
    out = []
    for c in concepts:
        t = {"code": c["code"]}
        if "display" in c:
            t["display"] = c["display"]
        if "concept" in c:
            t["concept"] = trim_concepts(c["concept"])
        out.append(t)
    return out


def trim_cs(cs):
    out = {k: v for k, v in cs.items() if k in ("resourceType", "id", "url", "version", "name", "content", "caseSensitive", "hierarchyMeaning")}
    if "concept" in cs:
        out["concept"] = trim_concepts(cs["concept"])
    return out


def trim_vs(vs):
    out = {k: v for k, v in vs.items() if k in ("resourceType", "id", "url", "version", "name")}
    if "compose" in vs:
        comp = {}
        for part in ("include", "exclude"):
            if part in vs["compose"]:
                comp[part] = []
                for inc in vs["compose"][part]:
                    t = {k: v for k, v in inc.items() if k in ("system", "version", "filter", "valueSet")}
                    if "concept" in inc:
                        t["concept"] = [{"code": c["code"]} for c in inc["concept"]]
                    comp[part].append(t)
        out["compose"] = comp
    return out


def close_value_sets(wanted_vs, by_url):
    """Closes over ValueSet imports; returns (value set URLs, code system URLs they draw on)."""
    wanted_cs = set()
    todo = list(wanted_vs)
    seen = set()
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        vs = by_url.get(url)
        if not vs or vs["resourceType"] != "ValueSet":
            continue
        for part in ("include", "exclude"):
            for inc in vs.get("compose", {}).get(part, []):
                if "system" in inc:
                    wanted_cs.add(inc["system"])
                for imp in inc.get("valueSet", []):
                    todo.append(strip_version(imp))
    return seen, wanted_cs


def write_bundle(dst, name, entries):
    bundle = {"resourceType": "Bundle", "id": name, "type": "collection", "entry": entries}
    with open(os.path.join(dst, name + ".json"), "w") as f:
        json.dump(bundle, f, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")


def main(src, dst, others=None):
    types = json.load(open(os.path.join(src, "profiles-types.json")))
    res = json.load(open(os.path.join(src, "profiles-resources-subset.json")))
    vsb = json.load(open(os.path.join(src, "valuesets.json")))

    sds_types = [trim_sd(e["resource"]) for e in types["entry"]]
    sds_res = [trim_sd(e["resource"]) for e in res["entry"]]
    sds_ext, sds_vital = [], []
    if others:
        ext = json.load(open(os.path.join(others, "extension-definitions.json")))
        sds_ext = [trim_profile(e["resource"]) for e in ext["entry"]
                   if e["resource"]["resourceType"] == "StructureDefinition"]
        oth = json.load(open(os.path.join(others, "profiles-others.json")))
        by_id = {e["resource"]["id"]: e["resource"] for e in oth["entry"]}
        sds_vital = [trim_profile(by_id[i]) for i in VITAL_SIGNS]

    wanted_vs = set(ALWAYS_VALUESETS)
    elements = [el for sd in sds_types + sds_res for el in sd["snapshot"]["element"]]
    elements += [el for sd in sds_ext + sds_vital for el in sd["differential"]["element"]]
    for el in elements:
        b = el.get("binding")
        if b and b.get("strength") in BOUND_STRENGTHS and "valueSet" in b:
            wanted_vs.add(strip_version(b["valueSet"]))

    by_url = {}
    for e in vsb["entry"]:
        r = e["resource"]
        by_url.setdefault(r["url"], r)

    wanted_vs, wanted_cs = close_value_sets(wanted_vs, by_url)
    wanted_cs |= ALWAYS_CODESYSTEMS

    out_vs = []
    for e in vsb["entry"]:
        r = e["resource"]
        if r["resourceType"] == "ValueSet" and r["url"] in wanted_vs:
            out_vs.append({"resource": trim_vs(r)})
        elif r["resourceType"] == "CodeSystem" and r["url"] in wanted_cs:
            out_vs.append({"resource": trim_cs(r)})

    def write(name, entries):
        write_bundle(dst, name, entries)

    write("profiles-types", [{"resource": s} for s in sds_types])
    write("profiles-resources", [{"resource": s} for s in sds_res])
    write("valuesets", out_vs)
    if others:
        write("extension-definitions", [{"resource": s} for s in sds_ext])
        write("profiles-vitalsigns", [{"resource": s} for s in sds_vital])
    print(f"types {len(sds_types)}, resources {len(sds_res)}, extensions {len(sds_ext)}, "
          f"vital signs {len(sds_vital)}, valuesets+codesystems {len(out_vs)}")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None)
