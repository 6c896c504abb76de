"""Transforms a SAM template into plain CloudFormation offline, for cfn-lint (scripts/lint-template).

cfn-lint checks AWS::Serverless::* resources only shallowly; linting the transformed template
checks what SAM generates (functions, roles, event rules, permissions). Two things stand in for
what `sam build` / the CloudFormation transform would supply:
- each function's local CodeUri (built by cargo-lambda) becomes an s3:// placeholder, since the
  transform accepts only S3 locations;
- the managed-policy loader never calls IAM: see StubManagedPolicyLoader.

Usage: python sam_transform.py TEMPLATE OUT.json
"""

import json
import os
import sys

# Partition and pseudo-parameters come from boto's region; pin one so the output does not depend
# on the caller's AWS config. No AWS call is made.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

PLACEHOLDER_BUCKET = "convoy-lint-placeholder"


class StubManagedPolicyLoader:
    """Stands in for samtranslator's IAM-backed loader (which calls iam:ListPolicies).

    The transform consults it only for a policy *name* that is neither an ARN nor in
    samtranslator's bundled map of AWS managed policies (AWSLambdaBasicExecutionRole, which SAM
    adds itself, is in that map). Our own AWS::IAM::ManagedPolicy resources are referenced with
    !Ref: intrinsics pass through to ManagedPolicyArns untouched and never reach the loader. So
    if it is ever called, the template names an unknown policy: most likely a typo, which the real
    transform would pass on as an invalid ARN. Fail here instead.
    """

    def load(self):
        raise SystemExit(
            "sam_transform: the template names a managed policy that is neither an ARN, a !Ref, "
            "nor an AWS managed policy known to samtranslator: check its spelling"
        )


def s3_placeholder(name):
    return f"s3://{PLACEHOLDER_BUCKET}/{name}.zip"


def is_local(code_uri):
    # A string that is not already s3:// is a path for `sam build`; a dict is already
    # {Bucket, Key} and an intrinsic is left for the transform to judge.
    return isinstance(code_uri, str) and not code_uri.startswith("s3://")


def replace_local_code_uris(template):
    replaced = []
    globals_function = (template.get("Globals") or {}).get("Function") or {}
    if is_local(globals_function.get("CodeUri")):
        globals_function["CodeUri"] = s3_placeholder("globals")
        replaced.append("Globals.Function")
    for name, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}
        # A function without CodeUri is left as is, so that the transform reports it.
        if is_local(properties.get("CodeUri")):
            properties["CodeUri"] = s3_placeholder(name)
            replaced.append(name)
    return replaced


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    source, out = sys.argv[1:]
    with open(source, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    replaced = replace_local_code_uris(template)
    try:
        transformed = transform(template, {}, StubManagedPolicyLoader())
    except InvalidDocumentException as e:
        # One line per problem the transform found, like a linter.
        for cause in e.causes:
            print(f"sam_transform: {source}: {cause.message}", file=sys.stderr)
        sys.exit(1)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(transformed, f, indent=2)
        f.write("\n")
    print(f"sam_transform: {len(replaced)} local CodeUri -> s3:// placeholder "
          f"({', '.join(replaced) or 'none'}); wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
