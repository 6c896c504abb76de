"""Prints template.yaml's notification rules as CloudFormation would create them, for the tests.

Usage: python notification_rules.py TEMPLATE
Prints {rule: {"pattern": ..., "input_paths": {...}, "input_template": "..."}} as JSON for every
AWS::Events::Rule of the SAM-transformed template whose pattern takes Convoy's own events
(source "convoy"). The tests put each pattern on moto's EventBridge and render each input
transformer as EventBridge does (tests/src/notifications.rs): moto routes rules to SQS but not to
SNS, and it can only apply input templates that are one JSON value, not the multi-line text
template an email needs.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from event_rules import StubManagedPolicyLoader, replace_local_code_uris, transform, yaml_parse  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        template = yaml_parse(f.read())
    replace_local_code_uris(template)
    transformed = transform(template, {}, StubManagedPolicyLoader())
    rules = {}
    for name, resource in transformed["Resources"].items():
        properties = resource.get("Properties") or {}
        pattern = properties.get("EventPattern")
        if resource.get("Type") != "AWS::Events::Rule" or not pattern or pattern.get("source") != ["convoy"]:
            continue
        targets = properties.get("Targets") or []
        if len(targets) != 1 or "InputTransformer" not in targets[0]:
            sys.exit(f"notification_rules: {name} must have one target with an InputTransformer")
        transformer = targets[0]["InputTransformer"]
        rules[name] = {
            "pattern": pattern,
            "input_paths": transformer.get("InputPathsMap") or {},
            "input_template": transformer["InputTemplate"],
        }
    json.dump(rules, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
