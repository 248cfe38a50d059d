"""Create the template's tables, queues and bucket in an emulated account, and the functions' environment.

One source of truth: infra/template.yaml. Physical names are `<stack>-<LogicalId>`; `Ref`/`GetAtt` resolve to
them, so the environment each function sees locally is the one the template gives it in AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return dict(yaml.load(path.read_text(), Loader=_CfnLoader))


@dataclass
class Stack:
    name: str
    names: dict[str, str] = field(default_factory=dict)  # logical id → physical name
    queue_urls: dict[str, str] = field(default_factory=dict)
    queue_arns: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    template: dict[str, Any] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and "Ref" in value:
            ref = value["Ref"]
            if ref in self.parameters:
                return self.parameters[ref]
            return self.queue_urls.get(ref) or self.names[ref]
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            logical, attr = value["Fn::GetAtt"]
            if attr == "Arn":
                return self.queue_arns.get(logical) or f"arn:aws:local:::{self.names[logical]}"
            if attr == "QueueName":
                return self.names[logical]
        if isinstance(value, dict | list):
            raise ValueError(f"unsupported intrinsic locally: {value}")
        return value

    def function_env(self, logical_id: str) -> dict[str, str]:
        glob = self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        own = self.template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
        return {key: str(self.resolve(value)) for key, value in {**glob, **own}.items()}


def provision(clients: dict[str, Any], stack_name: str = "hvr", parameters: dict[str, str] | None = None,
              time_scale: float = 1.0, path: Path = TEMPLATE) -> Stack:
    """Create every table, queue and bucket of the template. `time_scale` shrinks visibility timeouts."""
    template = load_template(path)
    stack = Stack(name=stack_name, template=template)
    for name, spec in template.get("Parameters", {}).items():
        stack.parameters[name] = (parameters or {}).get(name, str(spec.get("Default", "")))
    resources = template["Resources"]
    stack.names = {logical: f"{stack_name}-{logical}" for logical in resources}
    # Dead-letter queues first: the queues that redrive into them need their ARNs.
    queues = sorted((k for k, r in resources.items() if r["Type"] == "AWS::SQS::Queue"),
                    key=lambda k: "RedrivePolicy" in resources[k].get("Properties", {}))
    for logical in queues:
        _create_queue(clients["sqs"], stack, logical, resources[logical].get("Properties", {}), time_scale)
    for logical, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::DynamoDB::Table":
            _create_table(clients["dynamodb"], stack.names[logical], props)
        elif res["Type"] == "AWS::S3::Bucket":
            _create_bucket(clients["s3"], stack.names[logical], props)
    return stack


def _create_table(ddb: Any, name: str, props: dict[str, Any]) -> None:
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    ddb.create_table(**args)
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)


def _create_queue(sqs: Any, stack: Stack, logical: str, props: dict[str, Any], time_scale: float) -> None:
    attributes: dict[str, str] = {}
    if "VisibilityTimeout" in props:
        attributes["VisibilityTimeout"] = str(max(1, round(int(props["VisibilityTimeout"]) / time_scale)))
    if "MessageRetentionPeriod" in props:
        attributes["MessageRetentionPeriod"] = str(props["MessageRetentionPeriod"])
    redrive = props.get("RedrivePolicy")
    if redrive:
        attributes["RedrivePolicy"] = json.dumps({
            "deadLetterTargetArn": stack.resolve(redrive["deadLetterTargetArn"]),
            "maxReceiveCount": int(redrive["maxReceiveCount"]),
        })
    url = sqs.create_queue(QueueName=stack.names[logical], Attributes=attributes)["QueueUrl"]
    stack.queue_urls[logical] = url
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.queue_arns[logical] = arn


def _create_bucket(s3: Any, name: str, props: dict[str, Any]) -> None:
    s3.create_bucket(Bucket=name)
    encryption = props.get("BucketEncryption")
    if encryption:
        rules = [{"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                 for rule in encryption["ServerSideEncryptionConfiguration"]]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
