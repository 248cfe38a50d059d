"""Create the template's tables, queues, topics and bucket in an emulated account, and the functions' environment.

One source of truth: infra/template.yaml. Physical names are `<stack>-<LogicalId>`; `Ref`/`GetAtt`/`Sub` resolve to
them, so the environment each function sees locally is the one the template gives it in AWS. The template also says
how functions are invoked; `http_routes`, `schedules` and `sqs_sources` read that for the local gateway, timers and
pollers. They return the template's values: scaling periods by the time scale is the caller's business.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account, so built ARNs match the ones moto hands out
HTTP_API_TYPES = frozenset({"AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Api"})
SQS_BATCH_SIZE_DEFAULT = 10  # Lambda's default for SQS event sources


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
    """The template as plain data, short-form intrinsics turned into their long form (`!Ref X` → {"Ref": "X"})."""
    return dict(yaml.load(path.read_text(), Loader=_CfnLoader))


class NotKnownLocally(ValueError):
    """A value the template has in AWS but the local stack has no counterpart for (yet)."""


@dataclass(frozen=True)
class Route:
    """One route of the HTTP API, from a function's `HttpApi` event.

    `method` is upper case, `ANY` included; `path` is API Gateway's route path as written (`/v1/health`,
    `/v1/webhooks/{provider}`, `/v1/{proxy+}`). `auth` is False only when the event says `Auth: {Authorizer: NONE}`
    or neither the event nor its API names an authorizer. Choosing among overlapping routes (most specific path
    first, a method before ANY) is the gateway's job, as in API Gateway; the list is in template order.
    """

    method: str
    path: str
    function_logical_id: str
    auth: bool

    @property
    def function(self) -> str:
        """Short alias of `function_logical_id`."""
        return self.function_logical_id


class Schedule(NamedTuple):
    function_logical_id: str
    rate_seconds: int  # the template's period; divide by the time scale locally
    event: dict[str, Any]  # what EventBridge hands the function: the rule's `Input`, or its scheduled-event shape


class SqsSource(NamedTuple):
    function_logical_id: str
    queue_logical_id: str
    batch_size: int


def http_routes(template: Mapping[str, Any]) -> list[Route]:
    """Every `HttpApi` event of every function, in template order."""
    resources = template["Resources"]
    routes: list[Route] = []
    for logical, event in _events(template, "HttpApi"):
        api = _ref_target(event.get("ApiId"))
        api_auth = resources.get(api, {}).get("Properties", {}).get("Auth", {}) if api else {}
        authorizer = event.get("Auth", {}).get("Authorizer", api_auth.get("DefaultAuthorizer"))
        routes.append(Route(method=str(event.get("Method", "ANY")).upper(), path=str(event.get("Path", "$default")),
                            function_logical_id=logical, auth=authorizer not in (None, "NONE")))
    return routes


_RATE = re.compile(r"^rate\(\s*(\d+)\s+(second|minute|hour|day)s?\s*\)$")
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_SCHEDULED_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def schedules(template: Mapping[str, Any]) -> list[Schedule]:
    """Every enabled `Schedule`/`ScheduleV2` event as (function, period in seconds). Only `rate(...)` is supported
    locally: a cron expression raises NotKnownLocally rather than being run at some guessed period."""
    found: list[Schedule] = []
    for logical, event in _events(template, "Schedule", "ScheduleV2"):
        if event.get("Enabled") is False or event.get("State") == "DISABLED":
            continue
        expression = str(event.get("Schedule") or event.get("ScheduleExpression", ""))
        match = _RATE.match(expression.strip())
        if not match:
            raise NotKnownLocally(f"{logical}: only rate(...) schedules run locally, not {expression!r}")
        event_in = json.loads(event["Input"]) if "Input" in event else dict(_SCHEDULED_EVENT)
        found.append(Schedule(logical, int(match.group(1)) * _UNIT_SECONDS[match.group(2)], event_in))
    return found


def sqs_sources(template: Mapping[str, Any]) -> list[SqsSource]:
    """Every `SQS` event as (function, queue logical id, batch size); the queue is the `!GetAtt Queue.Arn` named."""
    found: list[SqsSource] = []
    for logical, event in _events(template, "SQS"):
        queue = _ref_target(event.get("Queue"))
        if queue is None:
            raise NotKnownLocally(f"{logical}: SQS event on a queue outside the template: {event.get('Queue')}")
        found.append(SqsSource(logical, queue, int(event.get("BatchSize", SQS_BATCH_SIZE_DEFAULT))))
    return found


def _events(template: Mapping[str, Any], *types: str) -> list[tuple[str, dict[str, Any]]]:
    return [(logical, event.get("Properties", {}))
            for logical, res in template["Resources"].items() if res["Type"] == "AWS::Serverless::Function"
            for event in res.get("Properties", {}).get("Events", {}).values() if event["Type"] in types]


def _ref_target(value: Any) -> str | None:
    """The logical id a `Ref` or `GetAtt` points at."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    return None


_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass
class Stack:
    name: str
    names: dict[str, str] = field(default_factory=dict)  # logical id → physical name, every resource
    queue_urls: dict[str, str] = field(default_factory=dict)
    queue_arns: dict[str, str] = field(default_factory=dict)
    topic_arns: dict[str, str] = field(default_factory=dict)
    table_names: dict[str, str] = field(default_factory=dict)
    bucket_names: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    template: dict[str, Any] = field(default_factory=dict)
    # Where the template's HTTP API is served locally; `https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}`
    # resolves to it. Unset, such values are NotKnownLocally and function_env leaves them out.
    api_url: str | None = None

    def http_routes(self) -> list[Route]:
        return http_routes(self.template)

    def schedules(self) -> list[Schedule]:
        return schedules(self.template)

    def sqs_sources(self) -> list[SqsSource]:
        return sqs_sources(self.template)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and "Ref" in value:
            return self._ref(value["Ref"])
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            logical, attr = value["Fn::GetAtt"]
            return self._get_att(logical, attr)
        if isinstance(value, dict) and "Fn::Sub" in value:
            return self._sub(value["Fn::Sub"])
        if isinstance(value, dict | list):
            raise ValueError(f"unsupported intrinsic locally: {value}")
        return value

    def function_env(self, logical_id: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """The function's environment (Globals, then its own variables), resolved locally.

        `overrides` win over the template and may add variables. A variable whose value has no local counterpart
        (the API's URL before `api_url` is set) is left out, so settings see it unset rather than wrong.
        """
        glob = self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        own = self.template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
        env: dict[str, str] = {}
        for key, value in {**glob, **own}.items():
            if overrides and key in overrides:
                continue
            try:
                env[key] = str(self.resolve(value))
            except NotKnownLocally:
                continue
        env.update(overrides or {})
        return env

    def _ref(self, ref: str) -> str:
        pseudo = self._pseudo(ref)
        if pseudo is not None:
            return pseudo
        if ref in self.parameters:
            return self.parameters[ref]
        for known in (self.queue_urls, self.topic_arns):  # what Ref gives for a queue and a topic
            if ref in known:
                return known[ref]
        return self.names[ref]

    def _get_att(self, logical: str, attr: str) -> str:
        name = self.names[logical]
        if attr == "Arn":
            if logical in self.queue_arns:
                return self.queue_arns[logical]
            if logical in self.topic_arns:
                return self.topic_arns[logical]
            if logical in self.table_names:
                return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"
            if logical in self.bucket_names:
                return f"arn:aws:s3:::{name}"
        if attr in ("QueueName", "TopicName"):
            return name
        if attr == "QueueUrl" and logical in self.queue_urls:
            return self.queue_urls[logical]
        if attr == "TopicArn" and logical in self.topic_arns:
            return self.topic_arns[logical]
        raise ValueError(f"unsupported GetAtt locally: {logical}.{attr}")

    def _pseudo(self, ref: str) -> str | None:
        return {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": self.name}.get(ref)

    def _sub(self, spec: str | list[Any]) -> str:
        text, variables = (spec, {}) if isinstance(spec, str) else (spec[0], spec[1])
        resources = self.template.get("Resources", {})
        for logical, res in resources.items():
            # An HTTP API's default endpoint becomes the local gateway's address.
            if res["Type"] in HTTP_API_TYPES and logical not in variables:
                endpoint = f"https://${{{logical}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}"
                if endpoint in text:
                    if self.api_url is None:
                        raise NotKnownLocally(f"{logical}'s URL: no local API URL given")
                    text = text.replace(endpoint, self.api_url.rstrip("/"))

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} stays literal, without the bang
                return "${" + name[1:] + "}"
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                logical, attr = name.split(".", 1)
                return self._get_att(logical, attr)
            if name in resources and resources[name]["Type"] in HTTP_API_TYPES:
                raise NotKnownLocally(f"{name}: an HTTP API has no id locally")
            return self._ref(name)

        return _SUB_VARIABLE.sub(one, text)


def provision(clients: dict[str, Any], stack_name: str = "hvr", parameters: dict[str, str] | None = None,
              time_scale: float = 1.0, path: Path = TEMPLATE, api_url: str | None = None) -> Stack:
    """Create every queue, topic, table and bucket of the template (with the bucket's notifications).

    `clients` are boto3 clients by service name ("sqs", "sns", "dynamodb", "s3"); without "sns", one is made on
    the sqs client's endpoint. `time_scale` divides queue visibility timeouts and delays (never below 1 s).
    """
    template = load_template(path)
    stack = Stack(name=stack_name, template=template, api_url=api_url)
    for name, spec in template.get("Parameters", {}).items():
        stack.parameters[name] = (parameters or {}).get(name, str(spec.get("Default", "")))
    resources = template["Resources"]
    stack.names = {logical: f"{stack_name}-{logical}" for logical in resources}
    # Dead-letter queues first: the queues that redrive into them need their ARNs.
    queues = sorted((k for k, r in resources.items() if r["Type"] == "AWS::SQS::Queue"),
                    key=lambda k: "RedrivePolicy" in resources[k].get("Properties", {}))
    for logical in queues:
        _create_queue(clients["sqs"], stack, logical, resources[logical].get("Properties", {}), time_scale)
    topics = [k for k, r in resources.items() if r["Type"] == "AWS::SNS::Topic"]
    if topics:
        sns = clients.get("sns") or _sibling_client("sns", clients["sqs"])
        for logical in topics:
            stack.topic_arns[logical] = sns.create_topic(Name=stack.names[logical])["TopicArn"]
    for logical, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::DynamoDB::Table":
            _create_table(clients["dynamodb"], stack.names[logical], props)
            stack.table_names[logical] = stack.names[logical]
        elif res["Type"] == "AWS::S3::Bucket":
            _create_bucket(clients["s3"], stack, stack.names[logical], props)
            stack.bucket_names[logical] = stack.names[logical]
    return stack


def _sibling_client(service: str, other: Any) -> Any:
    from router.store.aws import client

    return client(service, other.meta.endpoint_url, other.meta.region_name)


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
    if int(props.get("DelaySeconds", 0)):
        attributes["DelaySeconds"] = str(max(1, round(int(props["DelaySeconds"]) / time_scale)))
    if "MessageRetentionPeriod" in props:  # not scaled: a shorter retention would lose messages, not speed anything
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


def _create_bucket(s3: Any, stack: Stack, name: str, props: dict[str, Any]) -> None:
    """The bucket, its encryption, public access block and notifications. Lifecycle rules are not copied: moto
    never expires objects, so they would change nothing locally."""
    s3.create_bucket(Bucket=name)
    encryption = props.get("BucketEncryption")
    if encryption:
        rules = [{"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                 for rule in encryption["ServerSideEncryptionConfiguration"]]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    block = props.get("PublicAccessBlockConfiguration")
    if block:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
    notifications = _notifications(stack, props.get("NotificationConfiguration", {}))
    if notifications:
        s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=notifications)


def _notifications(stack: Stack, spec: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's NotificationConfiguration in the S3 API's shape. Lambda targets are left out: locally a
    function is invoked by the embedded stack, not by S3."""
    out: dict[str, list[dict[str, Any]]] = {}
    for cfn_key, api_key, target, arn_key in (("QueueConfigurations", "QueueConfigurations", "Queue", "QueueArn"),
                                               ("TopicConfigurations", "TopicConfigurations", "Topic", "TopicArn")):
        for item in spec.get(cfn_key, []):
            config: dict[str, Any] = {arn_key: stack.resolve(item[target]), "Events": [item["Event"]]}
            rules = item.get("Filter", {}).get("S3Key", {}).get("Rules")
            if rules:
                config["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
            out.setdefault(api_key, []).append(config)
    return out
