"""The web console's deployment in infra/template.yaml: a private bucket read only by CloudFront, which serves the
console and sends /v1/* to the HTTP API on the same origin, with the local gateway's security headers."""

from __future__ import annotations

from typing import Any

from hvr.local.console import POLICY, console_files
from hvr.local.provision import load_template

T = load_template()
RES: dict[str, Any] = T["Resources"]
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"


def props(logical: str) -> dict[str, Any]:
    return dict(RES[logical]["Properties"])


def test_the_console_bucket_is_private_encrypted_and_read_only_by_its_distribution() -> None:
    bucket = props("ConsoleBucket")
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    allow, deny = props("ConsoleBucketPolicy")["PolicyDocument"]["Statement"]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"} and allow["Action"] == "s3:GetObject"
    assert "${ConsoleDistribution}" in allow["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_distribution_serves_the_console_and_sends_the_api_uncached_with_the_callers_headers() -> None:
    config = props("ConsoleDistribution")["DistributionConfig"]
    origins = {o["Id"]: o for o in config["Origins"]}
    assert origins["console"]["OriginAccessControlId"] == {"Fn::GetAtt": ["ConsoleOriginAccessControl", "Id"]}
    assert "${HttpApi}.execute-api" in origins["api"]["DomainName"]["Fn::Sub"]
    assert config["DefaultRootObject"] == "index.html"
    assert config["DefaultCacheBehavior"]["TargetOriginId"] == "console"
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    [api] = config["CacheBehaviors"]
    assert api["PathPattern"] == "/v1/*" and api["TargetOriginId"] == "api"
    assert api["CachePolicyId"] == CACHING_DISABLED  # never a cached answer for another key
    assert api["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST  # the Authorization header reaches the authorizer
    assert {"POST", "PUT", "DELETE"} <= set(api["AllowedMethods"])


def test_the_deployed_page_has_the_local_pages_policy_but_https_only() -> None:
    headers = props("ConsoleHeaders")["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    deployed = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]
    assert deployed == POLICY.replace(" http: https:", " https:")
    assert headers["ReferrerPolicy"]["ReferrerPolicy"] == "no-referrer"


def test_uploads_may_be_put_cross_origin_and_nothing_else() -> None:
    [rule] = props("OutputsBucket")["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedMethods"] == ["PUT"]


def test_the_console_has_its_page_and_files_and_the_outputs_name_it() -> None:
    assert {"index.html", "app.js", "api.js", "ui.js", "style.css"} <= set(console_files())
    assert {"ConsoleUrl", "ConsoleBucketName"} <= set(T["Outputs"])
