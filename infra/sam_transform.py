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


def main(src: str, dst: str) -> None:
    # The translator asks boto for the partition of the region; any commercial region will do.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(src, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = {
                "Bucket": "placeholder-artifacts",
                "Key": f"{name}/bootstrap.zip",
            }
    try:
        expanded = transform(template, {}, NoManagedPolicies())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"{src}: SAM transform: {cause.message}", file=sys.stderr)
        sys.exit(1)
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(expanded, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
