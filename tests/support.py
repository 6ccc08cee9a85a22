"""Helpers shared by integration and e2e tests: building MDE alerts and reading the stack."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any


def mde_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"  # MDE sends 7 fractional digits


def mde_alert(
    alert_id: str,
    at: datetime,
    *,
    title: str = "Suspicious access to LSASS process memory",
    host: str = "fin-ws-042.corp.example.com",
    severity: str = "High",
    category: str = "CredentialAccess",
    command_line: str = "procdump64.exe -accepteula -ma lsass.exe C:\\Temp\\out.dmp",
) -> dict[str, Any]:
    return {
        "id": alert_id,
        "incidentId": 4821,
        "severity": severity,
        "status": "New",
        "classification": None,
        "determination": None,
        "detectionSource": "WindowsDefenderAtp",
        "detectorId": "2f6e1b7a-5c3d-4e9f-8a10-3b2c1d0e9f87",
        "category": category,
        "title": title,
        "description": "A process accessed LSASS memory.",
        "alertCreationTime": mde_time(at),
        "firstEventTime": mde_time(at - timedelta(minutes=2)),
        "lastEventTime": mde_time(at - timedelta(minutes=1)),
        "lastUpdateTime": mde_time(at + timedelta(seconds=20)),
        "machineId": "4b1d9c0e7a2f33d8a6e51c90f4b7e2a1d3c5f609",
        "computerDnsName": host,
        "mitreTechniques": ["T1003.001"],
        "relatedUser": {"userName": "jdoe", "domainName": "CORP"},
        "evidence": [
            {
                "entityType": "Process",
                "sha1": "1f3a0c5e9d2b4a6c8e0f1a2b3c4d5e6f7a8b9c0d",
                "sha256": "9e2c0a7d4b1f6e3a8c5d2b9f0e7a4c1d6b3e8f5a2c9d0e7b4a1f8c5e2d9b6a3f",
                "fileName": command_line.split(" ", 1)[0],
                "filePath": "C:\\Users\\jdoe\\Downloads",
                "processId": 7312,
                "processCommandLine": command_line,
                "parentProcessFileName": "cmd.exe",
                "parentProcessFilePath": "C:\\Windows\\System32",
            }
        ],
    }


def scan(aws: Any, logical_table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = aws.client("dynamodb").scan(TableName=aws.physical[logical_table])["Items"]
    return items


def s3_json(aws: Any, key: str) -> Any:
    body = aws.client("s3").get_object(Bucket=aws.physical["ReportsBucket"], Key=key)["Body"].read()
    return json.loads(body)


def bind_stack_tables(aws: Any) -> None:
    """Point the pynamodb models at the embedded stack's tables."""
    from needle.store.tables import TableNames, bind

    p = aws.physical
    bind(
        TableNames(
            p["EventsTable"], p["EntitiesTable"], p["ModelsTable"], p["IncidentsTable"], p["StateTable"]
        ),
        aws.region,
    )
