#!/usr/bin/env python3
"""Validate manifest files against schema/ with an outside implementation (python-jsonschema, ruamel.yaml).

Proves that the committed JSON Schema works without hactl: editors and CI jobs of our users use exactly such
validators. check-jsonschema itself reads one document per file, and manifests often hold several, so the
documents are split here and each is checked against the any-kind schema with format checking on.
Usage: schema-check.py SCHEMA_DIR FILE... ; exit 0 when every document is valid.
"""
import json
import sys
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker
from ruamel.yaml import YAML


def main() -> int:
    schema_dir, files = Path(sys.argv[1]), sys.argv[2:]
    schema = json.loads((schema_dir / "manifest.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    yaml = YAML(typ="safe")  # YAML 1.2, like hactl
    failures = documents = 0
    for name in files:
        for index, doc in enumerate(yaml.load_all(Path(name).read_text())):
            if doc is None:
                continue
            documents += 1
            for error in validator.iter_errors(doc):
                failures += 1
                where = "/".join(str(p) for p in error.absolute_path)
                print(f"{name}: document {index + 1}: {where}: {error.message}")
    print(f"schema-check: {documents} documents in {len(files)} files, {failures} errors")
    return 1 if failures or documents == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
