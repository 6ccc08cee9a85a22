"""template.yaml is the single source of truth: the code and the security settings follow it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from needle.sources.factory import SOURCES
from needle.store import items

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE: dict[str, Any] = yaml_parse((ROOT / "template.yaml").read_text())
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
TABLE_MODELS = {
    "EventsTable": items.EventItem,
    "EntitiesTable": items.EntityItem,
    "ModelsTable": items.ModelItem,
    "IncidentsTable": items.IncidentItem,
    "StateTable": items.StateItem,
}


def _of_type(kind: str) -> dict[str, Any]:
    return {k: v["Properties"] for k, v in RESOURCES.items() if v["Type"] == kind}


def _keys(schema: list[dict[str, str]]) -> dict[str, str]:
    return {k["KeyType"]: k["AttributeName"] for k in schema}


@pytest.mark.parametrize("logical", sorted(TABLE_MODELS))
def test_pynamodb_model_keys_match_the_table_in_the_template(logical: str) -> None:
    props = RESOURCES[logical]["Properties"]
    model = TABLE_MODELS[logical]
    attributes = model.get_attributes()
    declared = {name: a for name, a in attributes.items() if a.is_hash_key or a.is_range_key}
    expected = _keys(props["KeySchema"])
    assert {("HASH" if a.is_hash_key else "RANGE"): name for name, a in declared.items()} == expected
    for index in props.get("GlobalSecondaryIndexes", []):
        model_index = next(i for i in model._indexes.values() if i.Meta.index_name == index["IndexName"])
        hash_key = next(a.attr_name for a in model_index.Meta.attributes.values() if a.is_hash_key)
        assert hash_key == _keys(index["KeySchema"])["HASH"]


def test_every_table_is_encrypted_recoverable_and_on_demand() -> None:
    tables = _of_type("AWS::DynamoDB::Table")
    assert set(tables) == set(TABLE_MODELS)
    for name, props in tables.items():
        assert props["SSESpecification"] == {"SSEEnabled": True}, name
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name
        assert props["BillingMode"] == "PAY_PER_REQUEST", name


def test_reports_bucket_is_encrypted_and_never_public() -> None:
    props = RESOURCES["ReportsBucket"]["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    deny = RESOURCES["ReportsBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_topic_and_queues_are_encrypted() -> None:
    assert RESOURCES["NotificationsTopic"]["Properties"]["KmsMasterKeyId"]
    for props in _of_type("AWS::SQS::Queue").values():
        assert props["SqsManagedSseEnabled"] is True


def test_every_function_has_its_code_and_a_sample_event() -> None:
    for logical, props in _of_type("AWS::Serverless::Function").items():
        module = props["Handler"].rsplit(".", 1)[0]
        assert (ROOT / props["CodeUri"] / f"{module}.py").is_file(), logical
        sample = ROOT / "events" / f"{logical}.json"
        assert sample.is_file(), f"events/{logical}.json missing"
        json.loads(sample.read_text())


def test_function_policies_name_exact_actions_on_exact_resources() -> None:
    for logical, props in _of_type("AWS::Serverless::Function").items():
        for policy in props.get("Policies", []):
            for statement in policy.get("Statement", []):
                if "Fn::If" in statement:
                    statement = statement["Fn::If"][1]
                assert statement["Effect"] == "Allow"
                assert all("*" not in action for action in statement["Action"]), logical
                assert statement["Resource"] != "*", logical


def test_process_events_sees_inserts_and_material_updates_with_partial_failures_and_a_destination() -> None:
    trigger = RESOURCES["ProcessEventsFunction"]["Properties"]["Events"]["NewEvents"]["Properties"]
    assert [json.loads(f["Pattern"]) for f in trigger["FilterCriteria"]["Filters"]] == [
        {"eventName": ["INSERT"]},
        {"eventName": ["MODIFY"], "dynamodb": {"NewImage": {"rescore": {"BOOL": [True]}}}},
    ]
    assert trigger["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert trigger["BisectBatchOnFunctionError"] is True
    assert trigger["DestinationConfig"]["OnFailure"]["Type"] == "SQS"


def test_each_edr_source_has_a_one_minute_schedule_passing_its_source_and_the_scheduled_time() -> None:
    rules = _of_type("AWS::Events::Rule")
    schedules = {}
    for props in rules.values():
        [target] = props["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": ["PollSourceFunction", "Arn"]}
        transformer = target["InputTransformer"]
        assert transformer["InputPathsMap"] == {"time": "$.time"}
        rendered = json.loads(transformer["InputTemplate"].replace("<time>", "2026-01-01T00:00:00Z"))
        assert rendered["time"] == "2026-01-01T00:00:00Z"
        schedules[rendered["source"]] = props
    # one schedule per source the feed factory can build, and no other
    assert len(schedules) == len(rules)
    assert set(schedules) == set(SOURCES)
    assert all(s["ScheduleExpression"] == "rate(1 minute)" for s in schedules.values())
    # each is switched by its own Enable<Source> condition, so an unconfigured EDR is never polled
    conditions = []
    for props in schedules.values():
        condition, on, off = props["State"]["Fn::If"]
        assert (on, off) == ("ENABLED", "DISABLED")
        assert condition in TEMPLATE["Conditions"]
        conditions.append(condition)
    assert len(set(conditions)) == len(SOURCES)
    # and EventBridge may invoke the poller for each rule, and only for it
    permissions = _of_type("AWS::Lambda::Permission")
    sources = sorted(p["SourceArn"]["Fn::GetAtt"][0] for p in permissions.values())
    assert sources == sorted(rules)


def test_state_machine_is_jsonpath_only_and_every_placeholder_is_substituted() -> None:
    props = RESOURCES["InvestigationStateMachine"]["Properties"]
    text = (ROOT / props["DefinitionUri"]).read_text()
    definition = json.loads(text)
    assert definition.get("QueryLanguage", "JSONPath") == "JSONPath"
    assert "Assign" not in text
    assert "JSONata" not in text
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(props["DefinitionSubstitutions"])
