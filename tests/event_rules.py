"""Evaluates the EventBridge rules of template.yaml against events, for tests/tests/e2e/event_rules.rs.

The rules are read from the template as SAM transforms it (scripts/sam_transform.py's offline
transform), so each AWS::Events::Rule is the one CloudFormation would create, not a guess from
the SAM shorthand. Their patterns' `Ref`/`Fn::Sub` are resolved with the test world's values.
Patterns are evaluated by moto's EventBridge pattern matcher (`moto.events.models.EventPattern`,
what moto's PutEvents uses to route events to rules; it implements prefix, suffix,
anything-but, exists, numeric, equals-ignore-case, wildcard and $or). moto 5.2.5's
`TestEventPattern` API is a stub (it answers HTTP 200 with an empty body, no `Result`), so the
matcher is called in process instead.

Usage: python event_rules.py TEMPLATE INPUT.json
INPUT.json: {"parameters": {name: value}, "pseudo": {"AWS::AccountId": ..., "AWS::Region": ...},
             "events": {name: event}}
Prints {"rules": {rule: pattern}, "matches": {rule: {event: true|false}}} as JSON.
"""

import json
import os
import re
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from sam_transform import StubManagedPolicyLoader, replace_local_code_uris  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402
from moto.events.models import EventPattern  # noqa: E402


def resolve(node, values, lists):
    """Resolves Ref and Fn::Sub with the given values; any other intrinsic is an error."""
    if isinstance(node, list):
        return [resolve(item, values, lists) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, arg), = node.items()
        if key == "Ref":
            if arg in lists:
                return lists[arg]
            if arg in values:
                return values[arg]
            raise SystemExit(f"event_rules: no value for Ref {arg}")
        if key == "Fn::Sub":
            if not isinstance(arg, str):
                raise SystemExit(f"event_rules: Fn::Sub with variables is not supported: {arg}")

            def sub(match):
                name = match.group(1)
                if name not in values:
                    raise SystemExit(f"event_rules: no value for ${{{name}}}")
                return values[name]

            return re.sub(r"\$\{([^}!]+)\}", sub, arg)
        if key.startswith("Fn::"):
            raise SystemExit(f"event_rules: unsupported intrinsic in a pattern: {key}")
    return {k: resolve(v, values, lists) for k, v in node.items()}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    template_path, input_path = sys.argv[1:]
    with open(template_path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    with open(input_path, encoding="utf-8") as f:
        given = json.load(f)
    parameter_types = {name: p.get("Type") for name, p in (template.get("Parameters") or {}).items()}
    replace_local_code_uris(template)
    transformed = transform(template, {}, StubManagedPolicyLoader())

    values = dict(given["pseudo"])
    values.setdefault("AWS::Partition", "aws")
    lists = {}
    for name, value in given["parameters"].items():
        if parameter_types.get(name) == "CommaDelimitedList":
            lists[name] = value.split(",")
        else:
            values[name] = value

    rules = {}
    for name, resource in transformed["Resources"].items():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        pattern = (resource.get("Properties") or {}).get("EventPattern")
        if pattern is None:
            continue  # a schedule: no pattern to match
        rules[name] = resolve(pattern, values, lists)

    matches = {}
    for rule, pattern in rules.items():
        matcher = EventPattern.load(json.dumps(pattern))
        matches[rule] = {event: bool(matcher.matches_event(body)) for event, body in given["events"].items()}
    json.dump({"rules": rules, "matches": matches}, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
