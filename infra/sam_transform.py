"""Expands infra/template.yaml with the AWS SAM translator, offline, and writes the plain
CloudFormation JSON that `sam deploy` would send (so infra/lint.sh can lint that too).

Usage: python infra/sam_transform.py infra/template.yaml OUT.json

The local CodeUri zips are swapped for placeholder S3 locations first (that is what
`sam deploy` does after uploading them); nothing is uploaded and no AWS call is made.
"""

import json
import os
import sys

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The template attaches no AWS managed policies by name, so there is nothing to look up."""

    def load(self):
        return {}


def load_template(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml_parse(f.read())


def expand(template: dict, code_uris: dict) -> dict:
    """The template with each function's CodeUri replaced by code_uris[logical id] (an S3
    location), expanded by the SAM translator. Exits naming each cause when SAM refuses it."""
    # The translator asks boto for the partition of the region; any commercial region will do.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = code_uris[name]
    try:
        return transform(template, {}, NoManagedPolicies())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"SAM transform: {cause.message}", file=sys.stderr)
        sys.exit(1)


def main(src: str, dst: str) -> None:
    template = load_template(src)
    placeholders = {
        name: {"Bucket": "placeholder-artifacts", "Key": f"{name}/bootstrap.zip"}
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }
    expanded = expand(template, placeholders)
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(expanded, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
