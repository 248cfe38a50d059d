"""infra/template.yaml holds the properties the design relies on; the embedded stack provisions from it faithfully."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest

from hvr.local.moto_server import REGION
from hvr.local.provision import (
    TEMPLATE,
    NotKnownLocally,
    Route,
    Schedule,
    SqsSource,
    Stack,
    http_routes,
    load_template,
    provision,
    schedules,
    sqs_sources,
)

ROOT = TEMPLATE.parents[1]
LAMBDA_DIR = ROOT / "infra" / "lambda"
T = load_template()
RES: dict[str, Any] = T["Resources"]
GLOBAL_FN: dict[str, Any] = T["Globals"]["Function"]
FUNCTIONS = {k: r["Properties"] for k, r in RES.items() if r["Type"] == "AWS::Serverless::Function"}
QUEUES = {k: r.get("Properties", {}) for k, r in RES.items() if r["Type"] == "AWS::SQS::Queue"}
DLQS = {q["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] for q in QUEUES.values() if "RedrivePolicy" in q}
ALARMS = {k: r["Properties"] for k, r in RES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
UNAUTHENTICATED = {("GET", "/v1/health"), ("GET", "/v1/openapi.json"), ("POST", "/v1/webhooks/{provider}"),
                   ("PUT", "/v1/agents/{name}")}  # the heartbeat is signed with the agent's own key instead
NOT_IN_LAMBDA_PATH = {"av", "numpy", "pillow", "fastapi", "uvicorn", "moto", "scipy", "matplotlib", "runpod"}


def fn(logical: str, key: str) -> Any:
    return FUNCTIONS[logical].get(key, GLOBAL_FN.get(key))


def strip_if(value: Any) -> list[Any]:
    """Both branches of a Fn::If (minus AWS::NoValue), or the value itself."""
    if isinstance(value, dict) and "Fn::If" in value:
        return [v for branch in value["Fn::If"][1:] for v in strip_if(branch)]
    return [] if value == {"Ref": "AWS::NoValue"} else [value]


# --- functions and queues ------------------------------------------------------------------------------------


def test_every_function_is_python311_with_a_handler() -> None:
    assert set(FUNCTIONS) == {"ApiFunction", "AuthorizerFunction", "WebhooksFunction", "SweeperFunction",
                              "WorkerFunction", "BudgetAlertsFunction", "CampaignsFunction"}
    for logical, props in FUNCTIONS.items():
        assert fn(logical, "Runtime") == "python3.11", logical
        assert props["Handler"].startswith("functions.") and props["Handler"].endswith(".lambda_handler")


def test_every_queue_redrives_to_a_dead_letter_queue_after_at_least_5_receives() -> None:
    assert {"JobsQueue", "CampaignsQueue"} <= set(QUEUES)
    assert {"JobsDeadLetterQueue", "CampaignsDeadLetterQueue"} == DLQS
    for logical, props in QUEUES.items():
        if logical in DLQS:
            assert "RedrivePolicy" not in props and props["MessageRetentionPeriod"] == 1209600
            continue
        redrive = props["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"]["Fn::GetAtt"][1] == "Arn"
        assert int(redrive["maxReceiveCount"]) >= 5, logical


def test_visibility_timeout_is_at_least_6x_the_consumer_timeout() -> None:
    consumers = {source.queue_logical_id: source.function_logical_id for source in sqs_sources(T)}
    assert consumers == {"JobsQueue": "WorkerFunction", "CampaignsQueue": "CampaignsFunction"}
    for logical, props in QUEUES.items():
        if logical in DLQS:
            continue
        assert int(props["VisibilityTimeout"]) >= 6 * int(fn(consumers[logical], "Timeout")), logical


def test_every_sqs_event_reports_batch_item_failures_and_the_worker_is_capped() -> None:
    events = [(k, e["Properties"]) for k, p in FUNCTIONS.items() for e in p.get("Events", {}).values()
              if e["Type"] == "SQS"]
    assert events
    for logical, props in events:
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"], logical
    worker = FUNCTIONS["WorkerFunction"]["Events"]["Jobs"]["Properties"]
    assert 2 <= worker["ScalingConfig"]["MaximumConcurrency"] <= 10


# --- tables, bucket, topics ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("table", "keys"), [
    ("JobsTable", [("pk", "HASH")]),
    ("LedgerTable", [("pk", "HASH"), ("sk", "RANGE")]),
    ("KeysTable", [("pk", "HASH")]),
    ("AgentsTable", [("pk", "HASH")]),
    ("IdempotencyTable", [("id", "HASH")]),
])
def test_table_keys(table: str, keys: list[tuple[str, str]]) -> None:
    props = RES[table]["Properties"]
    assert [(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]] == keys
    assert props["BillingMode"] == "PAY_PER_REQUEST" and props["SSESpecification"] == {"SSEEnabled": True}


def test_jobs_table_indexes() -> None:
    indexes = {i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]]
               for i in RES["JobsTable"]["Properties"]["GlobalSecondaryIndexes"]}
    assert indexes == {"gsi1": ["gsi1pk", "gsi1sk"], "gsi2": ["gsi2pk", "gsi2sk"], "gsi3": ["gsi3pk", "gsi3sk"],
                       "open": ["open_pk", "open_sk"]}


def test_idempotency_records_expire_by_ttl_on_expiration() -> None:
    ttl = RES["IdempotencyTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expiration", "Enabled": True}


def test_bucket_is_encrypted_private_and_expires_uploads() -> None:
    props = RES["OutputsBucket"]["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True)
    rules = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-uploads"]["Prefix"] == "uploads/" and rules["expire-uploads"]["ExpirationInDays"] > 0
    assert rules["abort-multipart"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1
    assert all(rule["Status"] == "Enabled" for rule in rules.values())


def test_topics_exist() -> None:
    assert RES["JobEventsTopic"]["Type"] == RES["AlertsTopic"]["Type"] == "AWS::SNS::Topic"


# --- API, schedule ---------------------------------------------------------------------------------------------


def test_http_api_uses_the_lambda_authorizer_and_only_public_routes_skip_it() -> None:
    auth = RES["HttpApi"]["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    assert authorizer["Identity"]["Headers"] == ["Authorization"]
    routes = http_routes(T)
    assert {(r.method, r.path) for r in routes if not r.auth} == UNAUTHENTICATED
    assert ("ANY", "/v1/{proxy+}", "ApiFunction", True) in {(r.method, r.path, r.function_logical_id, r.auth)
                                                            for r in routes}


SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def test_sweeper_runs_every_minute_and_checks_the_books_daily() -> None:
    assert schedules(T) == [Schedule("SweeperFunction", 60, SCHEDULED),
                            Schedule("SweeperFunction", 86400, {"task": "daily"})]


# --- least privilege ------------------------------------------------------------------------------------------


# Secrets the API creates at run time, one per GPU agent (router/store/agent_keys.py): named under this stack's prefix.
AGENT_SECRETS = ("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                 "${AWS::StackName}/agents/*")


def _named(value: Any) -> bool:
    """True if the value points at this template's resources or parameters (no wildcard of its own), or at the
    agents' secrets under this stack's own prefix."""
    if value == {"Fn::Sub": AGENT_SECRETS}:
        return True
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"] in RES or value["Ref"] in T["Parameters"]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0] in RES
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
        heads = re.findall(r"^\$\{([A-Za-z0-9]+)(?:\.Arn)?\}", text)
        return bool(heads) and heads[0] in RES
    return False


def test_every_policy_is_scoped_to_named_resources() -> None:
    for logical, props in FUNCTIONS.items():
        policies = [p for policy in props["Policies"] for p in strip_if(policy)]
        assert policies, logical
        for policy in policies:
            assert isinstance(policy, dict), f"{logical}: managed policy {policy!r} is not least privilege"
            if "Statement" in policy:
                for statement in policy["Statement"]:
                    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [
                        statement["Resource"]]
                    assert "*" not in resources and all(_named(r) for r in resources), (logical, statement)
                    assert all(not a.endswith(":*") for a in ([statement["Action"]] if isinstance(
                        statement["Action"], str) else statement["Action"])), (logical, statement)
            else:
                [(template_name, params)] = policy.items()
                assert template_name.endswith("Policy") and params, (logical, policy)
                assert all(_named(v) for v in params.values()), (logical, policy)


def test_only_the_api_writes_the_agents_secrets_and_whatever_calls_a_registered_box_reads_them() -> None:
    def statements(logical: str) -> list[dict[str, Any]]:
        return [statement for policy in FUNCTIONS[logical]["Policies"] for p in strip_if(policy)
                for statement in (p.get("Statement", []) if isinstance(p, dict) else [])]

    granted = {logical: {action for statement in statements(logical)
                         if statement["Resource"] == {"Fn::Sub": AGENT_SECRETS}
                         for action in ([statement["Action"]] if isinstance(statement["Action"], str)
                                        else statement["Action"])}
               for logical in FUNCTIONS}
    assert granted.pop("ApiFunction") == {"secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
                                          "secretsmanager:GetSecretValue"}
    # HVR_AGENTS=registry: the worker polls boxes, the campaigns planner reads their queues, the sweeper probes a
    # lost box before ending its attempts; each signs with the box's own key.
    readers = {logical for logical, actions in granted.items() if actions}
    assert readers == {"WorkerFunction", "CampaignsFunction", "SweeperFunction"}
    assert all(granted[logical] == {"secretsmanager:GetSecretValue"} for logical in readers)
    env = GLOBAL_FN["Environment"]["Variables"]
    assert env["HVR_AGENT_KEYS_PREFIX"] == {"Fn::Sub": "${AWS::StackName}/agents/"}
    assert env["HVR_AGENTS"] == {"Ref": "Agents"} and T["Parameters"]["Agents"]["AllowedValues"] == [
        "", "registry"]
    assert env["HVR_AGENTS_TABLE"] == {"Ref": "AgentsTable"}


def test_only_the_worker_may_touch_the_whole_bucket_and_the_authorizer_only_reads_keys() -> None:
    def names(logical: str) -> set[str]:
        return {next(iter(p)) for policy in FUNCTIONS[logical]["Policies"] for p in strip_if(policy)}

    # Besides reading keys, the authorizer counts failed keys (issue 19): UpdateItem on F#… items, never a key's.
    assert names("AuthorizerFunction") == {"DynamoDBReadPolicy", "Version"}
    [statement] = [s for p in FUNCTIONS["AuthorizerFunction"]["Policies"] for s in p.get("Statement", [])]
    assert statement == {"Effect": "Allow", "Action": "dynamodb:UpdateItem",
                         "Resource": {"Fn::GetAtt": ["KeysTable", "Arn"]},
                         "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["F#*"]}}}
    assert RES["KeysTable"]["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires_at",
                                                                         "Enabled": True}
    assert [k for k in FUNCTIONS if "S3CrudPolicy" in names(k)] == ["WorkerFunction"]


# --- packaging ------------------------------------------------------------------------------------------------


def requirements(*args: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, str(LAMBDA_DIR / "requirements.py"), *args], check=True,
                         capture_output=True, text=True).stdout
    return dict(line.split("==", 1) for line in out.splitlines())


def locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_the_shared_layer_has_the_runtime_dependencies_at_locked_versions_and_no_pyav() -> None:
    layer = requirements("hvr")
    lock = locked()
    assert {"boto3", "aws-lambda-powertools", "pydantic", "httpx", "pyyaml"} <= set(layer)
    assert all(lock[name] == version for name, version in layer.items())
    assert not NOT_IN_LAMBDA_PATH & set(layer)


def test_only_the_worker_package_adds_pyav() -> None:
    assert set(requirements("av", "--without", "hvr")) == {"av"}
    for logical, props in FUNCTIONS.items():
        assert RES[logical]["Metadata"] == {"BuildMethod": "makefile", "ContextPath": "lambda"}, logical
        assert props["CodeUri"] == "../functions" and "Layers" not in props, logical
    assert GLOBAL_FN["Layers"] == [{"Ref": "CoreLayer"}]
    makefile = (LAMBDA_DIR / "Makefile").read_text()
    recipes = dict(re.findall(r"^(build-\w+):\n((?:\t.*\n)+)", makefile, re.M))
    assert set(recipes) == {f"build-{k}" for k in FUNCTIONS} | {"build-CoreLayer"}
    assert [target for target, recipe in recipes.items() if " av " in recipe] == ["build-WorkerFunction"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_api_package_is_only_its_own_function_package(tmp_path: Path) -> None:
    scratch = tmp_path / "src"
    shutil.copytree(ROOT / "functions", scratch)  # what sam build does with CodeUri
    artifacts = tmp_path / "out"
    subprocess.run(["make", "--silent", "-f", str(LAMBDA_DIR / "Makefile"), "build-ApiFunction",
                    f"ARTIFACTS_DIR={artifacts}"], cwd=scratch, check=True, capture_output=True)
    files = {p.relative_to(artifacts).parts[:2] for p in artifacts.rglob("*") if p.is_file()}
    assert files and all(parts[0] == "functions" and parts[1] in ("__init__.py", "api") for parts in files)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_core_layer_is_the_runtime_alone_and_imports_without_the_dev_tools(tmp_path: Path) -> None:
    scratch = tmp_path / "src"
    shutil.copytree(ROOT / "router", scratch, ignore=shutil.ignore_patterns("__pycache__"))  # CoreLayer's ContentUri
    artifacts = tmp_path / "out"
    # The pinned dependencies are the other test's business (and a download): `true` stands in for pip here.
    subprocess.run(["make", "--silent", "-f", str(LAMBDA_DIR / "Makefile"), "build-CoreLayer", "REQUIREMENTS=true",
                    "PIP_INSTALL=true", f"ARTIFACTS_DIR={artifacts}"], cwd=scratch, check=True, capture_output=True)
    layer = artifacts / "python"
    assert sorted(p.name for p in layer.iterdir()) == ["router"]
    modules = sorted(".".join(p.relative_to(layer).with_suffix("").parts) for p in layer.rglob("*.py"))
    dev = [m for m in modules if {"sandbox", "local", "sim", "cli", "demo"} & set(m.split("."))]
    assert modules and dev == []
    assert (layer / "router" / "workflows" / "models.yaml").is_file()  # the graphs' model files travel with it
    # Every module imports from the layer with the repository's other packages made unimportable.
    probe = (
        "import importlib, importlib.abc, sys\n"
        "class Blocked(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('hvr', 'agent', 'functions', 'tests'):\n"
        "            raise ImportError(f'the runtime imported {name}')\n"
        "sys.meta_path.insert(0, Blocked())\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name.removesuffix('.__init__'))\n"
        f"assert sys.modules['router'].__file__.startswith({str(layer)!r})\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(layer)})
    assert run.returncode == 0, run.stderr[-2000:]


# --- alarms ---------------------------------------------------------------------------------------------------


def test_alarms_watch_dead_letters_worker_errors_and_job_failure_rate() -> None:
    by_metric: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for props in ALARMS.values():
        assert props["AlarmActions"] == [{"Ref": "AlertsTopic"}]
        if "MetricName" in props:
            by_metric.setdefault((props["Namespace"], props["MetricName"]), []).append(props)
    dlq_alarms = by_metric[("AWS/SQS", "ApproximateNumberOfMessagesVisible")]
    assert {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in dlq_alarms} == DLQS
    assert all(a["Threshold"] == 0 and a["ComparisonOperator"] == "GreaterThanThreshold" for a in dlq_alarms)
    [errors] = by_metric[("AWS/Lambda", "Errors")]
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "WorkerFunction"}}]
    rate = ALARMS["JobFailureRateAlarm"]
    metrics = {m["Id"]: m for m in rate["Metrics"]}
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in metrics.values() if "MetricStat" in m} == {
        "JobsFailed", "JobsSucceeded"}
    assert all(m["MetricStat"]["Metric"]["Namespace"] == "hvr" for m in metrics.values() if "MetricStat" in m)
    assert [m["Id"] for m in metrics.values() if m["ReturnData"]] == ["rate"] and 0 < rate["Threshold"] < 1


# --- linting and deployability --------------------------------------------------------------------------------


def test_cfn_lint_is_clean() -> None:
    from cfnlint.api import lint_file

    assert [str(match) for match in lint_file(TEMPLATE)] == []


def test_no_dependency_cycle_after_the_sam_transform(monkeypatch: pytest.MonkeyPatch) -> None:
    """cfn-lint misses the cycle SAM creates when a function the HTTP API integrates references the API."""
    from samtranslator.translator.transform import transform

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template = load_template()
    for res in template["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in res.get("Properties", {}):
                res["Properties"][key] = "s3://bucket/key"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    out = transform(template, {}, NoManagedPolicies())["Resources"]
    graph = {logical: {d for d in _depends_on(res) if d in out and d != logical} for logical, res in out.items()}
    assert _cycle(graph) is None


def _depends_on(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "DependsOn":
                found.update([inner] if isinstance(inner, str) else inner)
            else:
                if key == "Fn::Sub":
                    text = inner if isinstance(inner, str) else inner[0]
                    found.update(re.findall(r"\$\{([A-Za-z0-9]+)", text))
                found |= _depends_on(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _depends_on(inner)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    return next((c for n in sorted(graph) if n not in state and (c := visit(n, [n]))), None)


# --- the embedded stack provisions from the template -----------------------------------------------------------

TIME_SCALE = 10.0


@pytest.fixture
def aws(moto_url: str) -> dict[str, Any]:
    """Clients of a moto server (in-process `mock_aws` would also capture the calls of an embedded stack another
    test left running). moto keeps one state per process, so each test provisions under a stack name of its own."""
    return {name: boto3.client(name, endpoint_url=moto_url, region_name=REGION, aws_access_key_id="testing",
                               aws_secret_access_key="testing") for name in ("dynamodb", "sqs", "s3", "sns")}


def fresh(aws: dict[str, Any], **kwargs: Any) -> Stack:
    return provision(aws, stack_name=f"t{uuid.uuid4().hex[:10]}", time_scale=TIME_SCALE, **kwargs)


def test_provision_creates_what_the_template_declares(aws: dict[str, Any]) -> None:
    stack = fresh(aws)
    assert set(stack.table_names) == {"JobsTable", "LedgerTable", "KeysTable", "IdempotencyTable", "BudgetsTable",
                                      "AgentsTable"}
    assert set(stack.table_names.values()) <= set(aws["dynamodb"].list_tables()["TableNames"])
    ttl = aws["dynamodb"].describe_time_to_live(TableName=stack.table_names["IdempotencyTable"])
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expiration"
    assert set(stack.queue_urls) == set(QUEUES)
    assert set(stack.topic_arns) == {"JobEventsTopic", "AlertsTopic", "BudgetNotificationsTopic"}
    assert set(stack.topic_arns.values()) <= {t["TopicArn"] for t in aws["sns"].list_topics()["Topics"]}


@pytest.mark.parametrize(("queue", "dlq"), [("JobsQueue", "JobsDeadLetterQueue"),
                                            ("CampaignsQueue", "CampaignsDeadLetterQueue")])
def test_provisioned_queue_redrives_to_its_dlq_with_a_scaled_visibility(aws: dict[str, Any], queue: str,
                                                                        dlq: str) -> None:
    stack = fresh(aws)
    attributes = aws["sqs"].get_queue_attributes(QueueUrl=stack.queue_urls[queue], AttributeNames=["All"])[
        "Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == stack.queue_arns[dlq]
    assert int(redrive["maxReceiveCount"]) == QUEUES[queue]["RedrivePolicy"]["maxReceiveCount"]
    assert int(attributes["VisibilityTimeout"]) == round(QUEUES[queue]["VisibilityTimeout"] / TIME_SCALE)


def test_campaign_manifests_dropped_in_the_bucket_reach_the_campaigns_queue(aws: dict[str, Any]) -> None:
    stack = fresh(aws)
    bucket, url = stack.bucket_names["OutputsBucket"], stack.queue_urls["CampaignsQueue"]
    aws["s3"].put_object(Bucket=bucket, Key="outputs/not-a-manifest.jsonl", Body=b"{}\n")
    aws["s3"].put_object(Bucket=bucket, Key="campaigns/spring.jsonl", Body=b"{}\n")
    bodies = [json.loads(m["Body"]) for m in aws["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10)[
        "Messages"]]
    # S3 sends a test event when notifications are configured, in AWS as here; consumers must skip it.
    # Event keys are URL-encoded (moto even encodes "/"): consumers unquote_plus them.
    keys = [unquote_plus(r["s3"]["object"]["key"]) for body in bodies for r in body.get("Records", [])]
    assert keys == ["campaigns/spring.jsonl"]
    assert any(body.get("Event") == "s3:TestEvent" for body in bodies)


def test_function_env_resolves_refs_and_leaves_the_api_url_to_the_caller(aws: dict[str, Any]) -> None:
    stack = fresh(aws, parameters={"AgentUrl": "http://127.0.0.1:9000"})
    env = stack.function_env("WorkerFunction")
    assert env["HVR_JOBS_TABLE"] == stack.table_names["JobsTable"]
    assert env["HVR_JOBS_QUEUE_URL"] == stack.queue_urls["JobsQueue"]
    assert env["HVR_EVENTS_TOPIC_ARN"] == stack.topic_arns["JobEventsTopic"]
    assert env["HVR_AGENT_URL"] == "http://127.0.0.1:9000"
    assert "HVR_PUBLIC_API_URL" not in env  # not known until the local gateway is up
    overridden = stack.function_env("WorkerFunction", overrides={"HVR_PUBLIC_API_URL": "http://127.0.0.1:8787"})
    assert overridden["HVR_PUBLIC_API_URL"] == "http://127.0.0.1:8787"
    stack.api_url = "http://127.0.0.1:8788/"
    assert stack.function_env("SweeperFunction")["HVR_PUBLIC_API_URL"] == "http://127.0.0.1:8788"
    assert "HVR_PUBLIC_API_URL" not in stack.function_env("ApiFunction")
    bucket_arn = f"arn:aws:s3:::{stack.bucket_names['OutputsBucket']}"
    assert stack.resolve({"Fn::Sub": "${OutputsBucket.Arn}/uploads/*"}) == f"{bucket_arn}/uploads/*"


def test_invocation_helpers_say_what_the_template_says(aws: dict[str, Any]) -> None:
    stack = fresh(aws)
    assert stack.http_routes() == [
        Route("ANY", "/v1/{proxy+}", "ApiFunction", auth=True),
        Route("GET", "/v1/health", "ApiFunction", auth=False),
        Route("GET", "/v1/openapi.json", "ApiFunction", auth=False),
        Route("PUT", "/v1/agents/{name}", "ApiFunction", auth=False),
        Route("POST", "/v1/webhooks/{provider}", "WebhooksFunction", auth=False),
    ]
    assert stack.schedules() == [("SweeperFunction", 60, SCHEDULED), ("SweeperFunction", 86400, {"task": "daily"})]
    assert stack.sqs_sources() == [SqsSource("WorkerFunction", "JobsQueue", 10),
                                   SqsSource("CampaignsFunction", "CampaignsQueue", 1)]


def _template(events: dict[str, Any], api_auth: dict[str, Any] | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {"Fn": {"Type": "AWS::Serverless::Function", "Properties": {"Events": events}}}
    if api_auth is not None:
        resources["Api"] = {"Type": "AWS::Serverless::HttpApi", "Properties": {"Auth": api_auth}}
    return {"Resources": resources}


@pytest.mark.parametrize(("expression", "seconds"), [("rate(1 minute)", 60), ("rate(5 minutes)", 300),
                                                      ("rate(2 hours)", 7200), ("rate(30 seconds)", 30),
                                                      ("rate(1 day)", 86400)])
def test_schedule_rates(expression: str, seconds: int) -> None:
    template = _template({"E": {"Type": "Schedule", "Properties": {"Schedule": expression}}})
    assert schedules(template) == [Schedule("Fn", seconds, SCHEDULED)]


def test_cron_schedules_are_refused_and_disabled_ones_skipped() -> None:
    assert schedules(_template({"E": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)",
                                                                         "Enabled": False}}})) == []
    with pytest.raises(NotKnownLocally):
        schedules(_template({"E": {"Type": "Schedule", "Properties": {"Schedule": "cron(0 * * * ? *)"}}}))


def test_route_auth_follows_the_event_then_the_api_default() -> None:
    events = {
        "Open": {"Type": "HttpApi", "Properties": {"ApiId": {"Ref": "Api"}, "Path": "/a", "Method": "get",
                                                   "Auth": {"Authorizer": "NONE"}}},
        "Default": {"Type": "HttpApi", "Properties": {"ApiId": {"Ref": "Api"}, "Path": "/b", "Method": "POST"}},
        "Implicit": {"Type": "HttpApi", "Properties": {"Path": "/c", "Method": "ANY"}},
    }
    routes = http_routes(_template(events, api_auth={"DefaultAuthorizer": "Keys", "Authorizers": {"Keys": {}}}))
    assert [(r.method, r.path, r.auth) for r in routes] == [("GET", "/a", False), ("POST", "/b", True),
                                                            ("ANY", "/c", False)]
