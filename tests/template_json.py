"""Prints template.yaml as JSON, as written (not SAM-transformed), for tests/src/iam.rs.

CloudFormation's short-form tags (!Sub, !GetAtt, !If, ...) become their long forms
({"Fn::Sub": ...}), read by the same YAML loader the SAM translator uses. Resolving the
intrinsics is left to the Rust side, which knows the parameter values a test wants.

Usage: python template_json.py TEMPLATE
"""

import json
import sys

from samtranslator.yaml_helper import yaml_parse

with open(sys.argv[1], encoding="utf-8") as source:
    json.dump(yaml_parse(source.read()), sys.stdout)
