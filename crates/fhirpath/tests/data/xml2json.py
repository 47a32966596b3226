#!/usr/bin/env python3
"""One-off converter: FHIR R4 XML test inputs -> FHIR JSON.

The official FHIRPath suite ships most inputs as XML, but the evaluator works on
FHIR JSON. This script was run once; its output is committed beside the XML so
tests never need Python.  The FHIR JSON schema (fhir.schema.json, R4) is used
to know which elements repeat and which primitives are numbers or booleans.

Usage: xml2json.py fhir.schema.json input.xml > output.json
"""
import json
import sys
import xml.etree.ElementTree as ET

FHIR_NS = "{http://hl7.org/fhir}"
XHTML_NS = "http://www.w3.org/1999/xhtml"


def local(tag):
    return tag.split("}", 1)[1] if "}" in tag else tag


class Converter:
    def __init__(self, schema):
        self.defs = schema["definitions"]

    def prop(self, type_name, name):
        """Return (definition name, is_array) for a child element, or None."""
        props = self.defs.get(type_name, {}).get("properties", {})
        p = props.get(name)
        if p is None:
            return None
        if p.get("type") == "array":
            return p["items"]["$ref"].split("/")[-1], True
        if "$ref" in p:
            return p["$ref"].split("/")[-1], False
        # Inline primitive (e.g. choice types with an inline pattern).
        return "__inline_" + p.get("type", "string"), False

    def primitive_kind(self, def_name):
        if def_name.startswith("__inline_"):
            return def_name[len("__inline_"):]
        d = self.defs.get(def_name, {})
        if "properties" in d:
            return None
        return d.get("type", "string")

    def primitive_value(self, kind, text):
        if kind == "boolean":
            return text == "true"
        if kind == "number":
            if all(c.isdigit() or c == "-" for c in text):
                return int(text)
            return float(text)
        return text

    def resource(self, elem):
        rtype = local(elem.tag)
        out = {"resourceType": rtype}
        self.fill(out, elem, rtype)
        return out

    def fill(self, out, elem, type_name):
        for child in elem:
            if not isinstance(child.tag, str):
                continue  # comments
            name = local(child.tag)
            if type_name == "Narrative" and name == "div":
                ET.register_namespace("", XHTML_NS)
                out["div"] = ET.tostring(child, encoding="unicode").strip()
                continue
            info = self.prop(type_name, name)
            if info is None:
                raise SystemExit(f"unknown element {type_name}.{name}")
            def_name, is_array = info
            value, ext = self.convert(child, def_name)
            if is_array:
                out.setdefault(name, [])
                if ext is not None or value is None:
                    out.setdefault("_" + name, [])
                    lst = out["_" + name]
                    while len(lst) < len(out[name]):
                        lst.append(None)
                    lst.append(ext)
                out[name].append(value)
            else:
                if value is not None:
                    out[name] = value
                if ext is not None:
                    out["_" + name] = ext
        # Pad extension arrays so they align with their value arrays.
        for key in list(out):
            if key.startswith("_") and isinstance(out[key], list):
                vals = out.get(key[1:], [])
                while len(out[key]) < len(vals):
                    out[key].append(None)

    def convert(self, elem, def_name):
        """Return (json value, primitive extension object or None)."""
        if def_name == "ResourceList":
            inner = [c for c in elem if isinstance(c.tag, str)]
            return self.resource(inner[0]), None
        kind = self.primitive_kind(def_name)
        if kind is None:
            out = {}
            if "id" in elem.attrib:
                out["id"] = elem.attrib["id"]
            if "url" in elem.attrib:
                out["url"] = elem.attrib["url"]
            self.fill(out, elem, def_name)
            return out, None
        value = elem.attrib.get("value")
        value = None if value is None else self.primitive_value(kind, value)
        ext = {}
        if "id" in elem.attrib:
            ext["id"] = elem.attrib["id"]
        self.fill(ext, elem, "Element")
        return value, (ext or None)


def main():
    schema = json.load(open(sys.argv[1]))
    root = ET.parse(sys.argv[2]).getroot()
    print(json.dumps(Converter(schema).resource(root), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
