"""template.yaml -> the CloudFormation template moto can create, plus what moto cannot do itself.

aws-sam-translator expands the SAM resources offline. Local code locations (CodeUri,
ContentUri, DefinitionUri) are swapped for placeholders because moto creates functions from
S3 objects; the real locations are kept here so the Lambda hook can run the handlers.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

CODE_BUCKET = "needle-local-code"


@dataclass(frozen=True)
class FunctionSource:
    logical_id: str
    code_dir: Path
    handler: str


@dataclass(frozen=True)
class StateMachineSource:
    logical_id: str
    definition_file: Path
    substitutions: dict[str, Any]


@dataclass
class LocalTemplate:
    """A transformed template split into what moto creates and what the runtime emulates."""

    root: Path
    cfn: dict[str, Any]
    functions: dict[str, FunctionSource] = field(default_factory=dict)
    state_machines: dict[str, StateMachineSource] = field(default_factory=dict)
    event_source_mappings: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    sam_functions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def code_objects(self) -> list[str]:
        return [
            f"{logical}.zip"
            for logical, res in self.cfn["Resources"].items()
            if res["Type"] in ("AWS::Lambda::Function", "AWS::Lambda::LayerVersion")
        ]


class _AnyManagedPolicy(dict[str, str]):
    """Offline stand-in for the IAM lookup the translator makes for managed policy names."""

    def __missing__(self, name: str) -> str:
        return f"arn:aws:iam::aws:policy/{name}"

    def get(self, name: str, default: Any = None) -> str:
        return self[name]

    def __contains__(self, name: object) -> bool:
        return True


class _OfflinePolicyLoader:
    def load(self) -> dict[str, str]:
        return _AnyManagedPolicy()


def load_template(path: Path, region: str) -> LocalTemplate:
    root = path.parent
    sam = yaml_parse(path.read_text())
    local = LocalTemplate(root=root, cfn={})
    for logical, res in sam["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            local.functions[logical] = FunctionSource(logical, root / props["CodeUri"], props["Handler"])
            local.sam_functions[logical] = copy.deepcopy(props)
            props["CodeUri"] = f"s3://{CODE_BUCKET}/{logical}.zip"
        elif res["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = f"s3://{CODE_BUCKET}/{logical}.zip"
        elif res["Type"] == "AWS::Serverless::StateMachine":
            definition = root / props.pop("DefinitionUri")
            local.state_machines[logical] = StateMachineSource(
                logical, definition, dict(props.get("DefinitionSubstitutions", {}))
            )
            props["Definition"] = json.loads(definition.read_text())
        elif res["Type"] == "AWS::SecretsManager::Secret":
            local.secrets.append(logical)
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region  # the translator reads the region for ARNs
    try:
        cfn = transform(sam, {}, _OfflinePolicyLoader())
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous
    # moto's own stream trigger invokes synchronously and ignores FilterCriteria: the runtime's
    # stream pump delivers these mappings instead.
    for logical in [k for k, v in cfn["Resources"].items() if v["Type"] == "AWS::Lambda::EventSourceMapping"]:
        local.event_source_mappings[logical] = cfn["Resources"].pop(logical)["Properties"]
    # Layers and function code come from the working tree, renamed layer ids included.
    for logical, res in cfn["Resources"].items():
        if res["Type"] == "AWS::Lambda::LayerVersion":
            res["Properties"]["Content"] = {"S3Bucket": CODE_BUCKET, "S3Key": f"{logical}.zip"}
    local.cfn = cfn
    return local
