"""The embedded AWS: Needle's template.yaml created on moto, with what moto leaves out emulated.

One module serves the demo and the integration/e2e tests:

    with EmbeddedAws(parameters={...}, secrets={...}) as aws:
        aws.tick()      # every enabled schedule fires once (PollSource per EDR)
        aws.settle()    # stream records delivered, investigations finished
        aws.inbox()     # what an SNS subscriber received

What moto does not do and this module does (measured with moto 5.2.5): Lambda code runs
in-process (lambda_hook); DynamoDB stream mappings are delivered by StreamPump; schedules fire
on tick(); the state machine is re-created through the API (moto's CloudFormation puts it where
executions do not run) with DefinitionSubstitutions applied; secrets are created here (moto's
CloudFormation skips them); an SQS inbox subscribes to each SNS topic.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from needle_local import lambda_hook, moto_speedups
from needle_local.stream_pump import Mapping, ShardRecords, StreamPump
from needle_local.template import CODE_BUCKET, LocalTemplate, load_template

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"


@dataclass(frozen=True)
class InboxMessage:
    subject: str
    message: str
    attributes: dict[str, str]


class EmbeddedAws:
    def __init__(
        self,
        template: Path = ROOT / "template.yaml",
        *,
        parameters: dict[str, str] | None = None,
        secrets: dict[str, dict[str, str]] | None = None,
        region: str = "us-east-1",
        stack_name: str = "needle",
        handler_env: dict[str, str] | None = None,
    ) -> None:
        self.template_path = template
        self.parameters = parameters or {}
        self.secret_values = secrets or {}
        self.region = region
        self.stack_name = stack_name
        self.handler_env = {
            # No X-Ray daemon here. Metrics stay on: their EMF lines land in the log groups, as in AWS.
            "POWERTOOLS_TRACE_DISABLED": "true",
            **(handler_env or {}),
        }
        self.physical: dict[str, str] = {}
        self.state_machine_arns: dict[str, str] = {}
        self.inbox_url = ""
        self._mock: Any = None
        self._server: ThreadedMotoServer | None = None
        self._clients: dict[str, Any] = {}
        self.pump: StreamPump | None = None
        self.template: LocalTemplate | None = None

    # lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> EmbeddedAws:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> EmbeddedAws:
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        lambda_hook.install()
        moto_speedups.install()
        lambda_hook.reset()
        lambda_hook.base_env = dict(self.handler_env)
        self.template = load_template(self.template_path, self.region)
        self._create_stack(self.template)
        for logical, source in self.template.functions.items():
            lambda_hook.register(self.physical[logical], source.code_dir, source.handler)
        self._create_secrets(self.template)
        self._create_state_machines(self.template)
        self._create_stream_mappings(self.template)
        self._create_inbox()
        self._preset_environment()
        return self

    def _preset_environment(self) -> None:
        lam = self.client("lambda")
        union = {**self.handler_env, "AWS_LAMBDA_FUNCTION_NAME": "", "_HANDLER": ""}
        for logical in self.template.functions if self.template else {}:
            config = lam.get_function_configuration(FunctionName=self.physical[logical])
            union.update({k: str(v) for k, v in config.get("Environment", {}).get("Variables", {}).items()})
        lambda_hook.preset(union)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        self._clients.clear()
        lambda_hook.reset()

    def serve(self, port: int = 0) -> str:
        """Expose this embedded AWS on 127.0.0.1 (AWS CLI: --endpoint-url); returns the URL."""
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        host, bound = self._server.get_host_and_port()
        return f"http://{host}:{bound}"

    # clients -----------------------------------------------------------------------------------
    def client(self, service: str) -> Any:
        """One client per service for the life of this stack (creating one costs ~30 ms)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=self.region)  # type: ignore[call-overload]
        return self._clients[service]

    # driving -----------------------------------------------------------------------------------
    def invoke(self, logical_id: str, payload: dict[str, Any]) -> Any:
        """Invoke a function synchronously; raises when the handler raised."""
        response = self.client("lambda").invoke(
            FunctionName=self.physical[logical_id], Payload=json.dumps(payload).encode()
        )
        body = json.loads(response["Payload"].read() or b"null")
        if "FunctionError" in response:
            raise RuntimeError(f"{logical_id} failed: {body.get('errorType')}: {body.get('errorMessage')}")
        return body

    def tick(self, now: datetime | None = None) -> list[Any]:
        """Fire every enabled schedule once, as EventBridge would at `now` (default: the clock).

        The target gets its Input, or its InputTransformer applied to the scheduled event.
        """
        at = (now or datetime.now(UTC)).astimezone(UTC)
        scheduled = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [],
            "detail": {},
        }
        events = self.client("events")
        results = []
        for rule in events.list_rules()["Rules"]:
            if rule.get("State") != "ENABLED" or not rule.get("ScheduleExpression"):
                continue
            for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
                payload = _target_input(target, {**scheduled, "resources": [rule["Arn"]]})
                function = target["Arn"].rsplit(":", 1)[-1]
                logical = next(k for k, v in self.physical.items() if v == function)
                results.append(self.invoke(logical, payload))
        return results

    def settle(self, timeout: float = 120.0) -> None:
        """Deliver stream records and wait for investigations until nothing is left to do."""
        assert self.pump is not None
        deadline = time.monotonic() + timeout
        while True:
            delivered = self.pump.pump()
            running = self.running_executions()
            if delivered == 0 and running == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not settled after {timeout}s: {running} executions still running")
            if delivered == 0:
                time.sleep(0.02)

    def running_executions(self) -> int:
        # Read from moto's backend, not ListExecutions: settle() asks between every stream pump,
        # and the API call sorts and serializes every execution of the machine each time.
        backend = stepfunctions_parser_backends[DEFAULT_ACCOUNT_ID][self.region]
        return sum(
            execution.status == "RUNNING"
            for arn in self.state_machine_arns.values()
            for execution in backend.describe_state_machine(arn).executions
        )

    def executions(self) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        out: list[dict[str, Any]] = []
        for arn in self.state_machine_arns.values():
            out.extend(sfn.list_executions(stateMachineArn=arn)["executions"])
        return out

    def inbox(self) -> list[InboxMessage]:
        """Drain the SQS queue subscribed to the notifications topic."""
        sqs = self.client("sqs")
        out: list[InboxMessage] = []
        while True:
            got = sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return out
            for message in got:
                envelope = json.loads(message["Body"])
                attributes = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
                out.append(InboxMessage(envelope.get("Subject", ""), envelope["Message"], attributes))
                sqs.delete_message(QueueUrl=self.inbox_url, ReceiptHandle=message["ReceiptHandle"])

    def function_logs(self, logical_id: str) -> list[str]:
        """Every line the function wrote to its CloudWatch log group."""
        logs = self.client("logs")
        group = f"/aws/lambda/{self.physical[logical_id]}"
        try:
            events = logs.filter_log_events(logGroupName=group)["events"]
        except logs.exceptions.ResourceNotFoundException:
            return []
        return [e["message"] for e in events]

    # setup -------------------------------------------------------------------------------------
    def _create_stack(self, template: LocalTemplate) -> None:
        s3 = self.client("s3")
        s3.create_bucket(Bucket=CODE_BUCKET)
        placeholder = io.BytesIO()
        with zipfile.ZipFile(placeholder, "w") as archive:
            archive.writestr(
                "README.txt", "code runs in-process from the working tree (needle_local.lambda_hook)"
            )
        for key in template.code_objects():
            s3.put_object(Bucket=CODE_BUCKET, Key=key, Body=placeholder.getvalue())
        cfn = self.client("cloudformation")
        cfn.create_stack(
            StackName=self.stack_name,
            TemplateBody=json.dumps(template.cfn),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in self.parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        status = cfn.describe_stacks(StackName=self.stack_name)["Stacks"][0]["StackStatus"]
        if status != "CREATE_COMPLETE":
            raise RuntimeError(f"stack creation ended in {status}")
        for resource in cfn.list_stack_resources(StackName=self.stack_name)["StackResourceSummaries"]:
            self.physical[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]

    def _function_arn(self, logical: str) -> str:
        return str(
            self.client("lambda").get_function(FunctionName=self.physical[logical])["Configuration"][
                "FunctionArn"
            ]
        )

    def _resolve(self, value: Any) -> Any:
        """The intrinsics the emulated parts need: Ref, Fn::GetAtt Arn/StreamArn."""
        if isinstance(value, dict) and "Ref" in value:
            return self.physical[value["Ref"]]
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            logical, attribute = value["Fn::GetAtt"]
            kind = self.template.cfn["Resources"][logical]["Type"] if self.template else ""
            if kind == "AWS::Lambda::Function" and attribute == "Arn":
                return self._function_arn(logical)
            if kind == "AWS::SQS::Queue" and attribute == "Arn":
                return self.client("sqs").get_queue_attributes(
                    QueueUrl=self.physical[logical], AttributeNames=["QueueArn"]
                )["Attributes"]["QueueArn"]
            if kind == "AWS::DynamoDB::Table" and attribute == "StreamArn":
                return self.client("dynamodb").describe_table(TableName=self.physical[logical])["Table"][
                    "LatestStreamArn"
                ]
            raise NotImplementedError(f"Fn::GetAtt {logical}.{attribute} ({kind})")
        return value

    def patch_environment(self, logical: str, updates: dict[str, str]) -> None:
        lam = self.client("lambda")
        name = self.physical[logical]
        current = (
            lam.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})
        )
        variables = {
            k: str(v) for k, v in {**current, **updates}.items()
        }  # moto keeps Number parameters as int
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": variables})

    def _create_secrets(self, template: LocalTemplate) -> None:
        secrets = self.client("secretsmanager")
        for logical in template.secrets:
            if logical not in self.secret_values:
                continue
            arn = secrets.create_secret(
                Name=f"{self.stack_name}/{logical}", SecretString=json.dumps(self.secret_values[logical])
            )["ARN"]
            self.physical[logical] = arn
            for function, props in template.sam_functions.items():
                variables = props.get("Environment", {}).get("Variables", {})
                wanted = {k: arn for k, v in variables.items() if {"Ref": logical} in _walk(v)}
                if wanted:
                    self.patch_environment(function, wanted)

    def _create_state_machines(self, template: LocalTemplate) -> None:
        sfn = self.client("stepfunctions")
        iam = self.client("iam")
        for logical, source in template.state_machines.items():
            text = source.definition_file.read_text()
            for key, expression in source.substitutions.items():
                text = text.replace("${" + key + "}", str(self._resolve(expression)))
            leftover = re.findall(r"\$\{(\w+)\}", text)
            if leftover:
                raise RuntimeError(f"{source.definition_file.name}: no substitution for {leftover}")
            role = iam.get_role(RoleName=self.physical[f"{logical}Role"])["Role"]["Arn"]
            created = sfn.create_state_machine(
                name=f"{self.stack_name}-{logical}", definition=text, roleArn=role, type="STANDARD"
            )
            old_arn = self.physical[logical]
            self.physical[logical] = self.state_machine_arns[logical] = created["stateMachineArn"]
            for function in template.functions:
                variables = (
                    self.client("lambda")
                    .get_function_configuration(FunctionName=self.physical[function])
                    .get("Environment", {})
                    .get("Variables", {})
                )
                wanted = {k: created["stateMachineArn"] for k, v in variables.items() if v == old_arn}
                if wanted:
                    self.patch_environment(function, wanted)

    def _create_stream_mappings(self, template: LocalTemplate) -> None:
        self.pump = StreamPump(
            ShardRecords(DEFAULT_ACCOUNT_ID, self.region),
            self.client("lambda"),
            self.client("sqs"),
            self.region,
        )
        for props in template.event_source_mappings.values():
            table_logical = props["EventSourceArn"]["Fn::GetAtt"][0]
            keys = template.cfn["Resources"][table_logical]["Properties"]["KeySchema"]
            destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            queue_url = None
            if destination is not None:
                queue_url = self.physical[destination["Fn::GetAtt"][0]]
            filters = props.get("FilterCriteria", {}).get("Filters", [])
            self.pump.add(
                Mapping(
                    function_name=self._resolve(props["FunctionName"]),
                    stream_arn=self._resolve(props["EventSourceArn"]),
                    batch_size=int(props.get("BatchSize", 100)),
                    filters=[json.loads(f["Pattern"]) for f in filters],
                    report_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                    bisect=bool(props.get("BisectBatchOnFunctionError", False)),
                    max_retries=int(props.get("MaximumRetryAttempts", 10_000)),
                    on_failure_queue_url=queue_url,
                    key_attributes=tuple(k["AttributeName"] for k in keys),
                )
            )

    def _create_inbox(self) -> None:
        sqs = self.client("sqs")
        self.inbox_url = sqs.create_queue(QueueName=f"{self.stack_name}-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.inbox_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns = self.client("sns")
        assert self.template is not None
        for logical, res in self.template.cfn["Resources"].items():
            if res["Type"] == "AWS::SNS::Topic":
                sns.subscribe(TopicArn=self.physical[logical], Protocol="sqs", Endpoint=queue_arn)


def _target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """What EventBridge sends a target: Input, InputTransformer (top-level paths), or the event."""
    if target.get("Input"):
        return json.loads(target["Input"])
    transformer = target.get("InputTransformer")
    if not transformer:
        return event
    text = transformer["InputTemplate"]
    for name, path in transformer.get("InputPathsMap", {}).items():
        value = event.get(path.removeprefix("$."))
        text = text.replace(f"<{name}>", value if isinstance(value, str) else json.dumps(value))
    return json.loads(text)


def _walk(value: Any) -> list[Any]:
    """Every nested value of a template expression (to find a Ref inside Fn::If)."""
    found = [value]
    if isinstance(value, dict):
        for v in value.values():
            found.extend(_walk(v))
    elif isinstance(value, list):
        for v in value:
            found.extend(_walk(v))
    return found
