"""The MDE simulator over real HTTP: tokens, OData paging and filters, visibility, faults, isolation."""

from __future__ import annotations

import itertools
import re
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from needle_local.scenarios import ALERT_FIELDS, EVIDENCE_FIELDS, HOSTS, machine_id, skeleton_scenario
from needle_local.simulators.mde import MdeSimulator, mde_timestamp

pytestmark = pytest.mark.integration

START = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
SCOPE = "https://api.securitycenter.microsoft.com/.default"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MDE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z")
# Plain HTTP never uses it, but httpx builds one per client unless given one: build it once.
TLS = ssl.create_default_context()


class Clock:
    """A scenario clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(START + timedelta(hours=2))


@pytest.fixture
def sim(clock: Clock) -> Iterator[MdeSimulator]:
    with MdeSimulator(clock=clock) as simulator:
        yield simulator


@pytest.fixture
def http(sim: MdeSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=5, verify=TLS) as client:
        yield client


def grant(http: httpx.Client, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": "sim-client",
        "client_secret": "sim-secret",
        "scope": SCOPE,
        **overrides,
    }
    tenant = form.pop("tenant", "sim-tenant")
    return http.post(f"/{tenant}/oauth2/v2.0/token", data=form)


@pytest.fixture
def auth(http: httpx.Client) -> dict[str, str]:
    response = grant(http)
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def make_alert(
    alert_id: str,
    updated: datetime,
    *,
    machine: str = "a" * 40,
    host: str = "ws-1.corp.example.com",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": alert_id,
        "title": f"alert {alert_id}",
        "severity": "Low",
        "status": "New",
        "alertCreationTime": mde_timestamp(updated - timedelta(minutes=1)),
        "lastUpdateTime": mde_timestamp(updated),
        "machineId": machine,
        "computerDnsName": host,
        "evidence": [{"entityType": "Process", "fileName": "cmd.exe"}],
        **extra,
    }


def list_ids(http: httpx.Client, auth: dict[str, str], **params: str | int) -> list[str]:
    response = http.get("/api/alerts", params=params, headers=auth)
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["value"]]


def assert_mde_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert GUID.fullmatch(error["target"])
    assert isinstance(error["message"], str)
    return error


# -- tokens and authorization ---------------------------------------------------------------


def test_token_grant_returns_an_entra_bearer_token_that_authorizes_api_calls(http: httpx.Client) -> None:
    response = grant(http)

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3599
    assert isinstance(body["access_token"], str)
    assert len(body["access_token"]) >= 32
    listed = http.get("/api/alerts", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert listed.status_code == 200


def test_every_grant_issues_a_distinct_token(http: httpx.Client) -> None:
    assert grant(http).json()["access_token"] != grant(http).json()["access_token"]


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "someone-else"}, 400, "unauthorized_client"),
        ({"tenant": "other-tenant"}, 400, "invalid_request"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"scope": "https://api.securitycenter.microsoft.com/Alert.Read.All"}, 400, "invalid_scope"),
    ],
)
def test_bad_token_requests_are_refused_entra_style(
    http: httpx.Client, overrides: dict[str, str], status: int, error: str
) -> None:
    response = grant(http, **overrides)

    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_description"].startswith("AADSTS")
    assert "access_token" not in body


def test_refused_secret_is_not_echoed(http: httpx.Client) -> None:
    response = grant(http, client_secret="hunter2-do-not-echo")

    assert response.status_code == 401
    assert "hunter2-do-not-echo" not in response.text


def test_token_form_must_be_form_encoded(http: httpx.Client) -> None:
    form = {"grant_type": "client_credentials", "client_id": "sim-client", "client_secret": "sim-secret"}
    response = http.post("/sim-tenant/oauth2/v2.0/token", json={**form, "scope": SCOPE})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic c2ltOnNpbQ=="}],
    ids=["missing", "unknown", "wrong-scheme"],
)
def test_api_calls_without_a_valid_token_get_401(http: httpx.Client, headers: dict[str, str]) -> None:
    assert_mde_error(http.get("/api/alerts", headers=headers), 401, "Unauthorized")


def test_expire_tokens_invalidates_every_issued_token(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    assert http.get("/api/alerts", headers=auth).status_code == 200

    sim.expire_tokens()

    assert_mde_error(http.get("/api/alerts", headers=auth), 401, "Unauthorized")
    fresh = {"Authorization": f"Bearer {grant(http).json()['access_token']}"}
    assert http.get("/api/alerts", headers=fresh).status_code == 200


def test_tokens_expire_after_their_ttl_in_wall_time(clock: Clock) -> None:
    with (
        MdeSimulator(clock=clock, token_ttl_seconds=0) as sim,
        httpx.Client(base_url=sim.base_url, verify=TLS) as http,
    ):
        token = grant(http).json()
        assert token["expires_in"] == 0
        headers = {"Authorization": f"Bearer {token['access_token']}"}

        assert_mde_error(http.get("/api/alerts", headers=headers), 401, "Unauthorized")


# -- listing: $filter, $top, $skip, $expand -------------------------------------------------


def test_filter_ge_and_gt_differ_exactly_at_the_boundary(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    times = [START + timedelta(minutes=m) for m in (1, 2, 3)]
    for n, moment in enumerate(times):
        sim.add_alert(make_alert(f"a{n}", moment))
    boundary = mde_timestamp(times[1])

    assert list_ids(http, auth, **{"$filter": f"lastUpdateTime ge {boundary}"}) == ["a1", "a2"]
    assert list_ids(http, auth, **{"$filter": f"lastUpdateTime gt {boundary}"}) == ["a2"]
    assert list_ids(http, auth, **{"$filter": f"lastUpdateTime lt {boundary}"}) == ["a0"]
    assert list_ids(http, auth, **{"$filter": f"lastUpdateTime le {boundary}"}) == ["a0", "a1"]


def test_filter_terms_combine_with_and(sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]) -> None:
    for n in range(4):
        sim.add_alert(make_alert(f"a{n}", START + timedelta(minutes=n)))
    low, high = mde_timestamp(START + timedelta(minutes=1)), mde_timestamp(START + timedelta(minutes=3))

    ids = list_ids(http, auth, **{"$filter": f"lastUpdateTime ge {low} and lastUpdateTime lt {high}"})

    assert ids == ["a1", "a2"]


def test_filter_compares_all_seven_fractional_digits(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    alert = make_alert("a0", START)
    alert["lastUpdateTime"] = "2025-03-04T10:00:00.1234567Z"
    sim.add_alert(alert, visible_at=START)

    # A client that truncates to microseconds must still see the alert with `gt`.
    assert list_ids(http, auth, **{"$filter": "lastUpdateTime gt 2025-03-04T10:00:00.123456Z"}) == ["a0"]
    assert list_ids(http, auth, **{"$filter": "lastUpdateTime gt 2025-03-04T10:00:00.1234567Z"}) == []
    assert list_ids(http, auth, **{"$filter": "lastUpdateTime ge 2025-03-04T10:00:00Z"}) == ["a0"]


def test_filter_accepts_plus_as_space_in_the_raw_query(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.add_alert(make_alert("old", START))
    sim.add_alert(make_alert("new", START + timedelta(hours=1)))

    response = http.get(
        f"{sim.base_url}/api/alerts?$filter=lastUpdateTime+ge+2025-03-04T10:30:00Z", headers=auth
    )

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["value"]] == ["new"]


@pytest.mark.parametrize(
    "expression",
    [
        "severity eq 'High'",
        "lastUpdateTime eq 2025-03-04T10:00:00Z",
        "lastUpdateTime ge '2025-03-04T10:00:00Z'",
        "lastUpdateTime ge yesterday",
        "lastUpdateTime ge 2025-03-04T10:00:00Z or lastUpdateTime lt 2025-03-04T09:00:00Z",
        "",
    ],
)
def test_unsupported_filters_are_odata_errors(
    http: httpx.Client, auth: dict[str, str], expression: str
) -> None:
    assert_mde_error(http.get("/api/alerts", params={"$filter": expression}, headers=auth), 400, "ODataError")


def test_top_and_skip_page_through_every_visible_alert_exactly_once(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    expected = {f"alert-{n:02d}" for n in range(25)}
    for n, alert_id in enumerate(sorted(expected, reverse=True)):
        sim.add_alert(make_alert(alert_id, START + timedelta(seconds=n)))

    seen: list[str] = []
    sizes: list[int] = []
    skip = 0
    while True:
        page = list_ids(http, auth, **{"$top": 7, "$skip": skip})
        seen += page
        sizes.append(len(page))
        if len(page) < 7:
            break
        skip += 7

    assert sizes == [7, 7, 7, 4]
    assert len(seen) == len(set(seen)) == 25
    assert set(seen) == expected


def test_top_defaults_to_the_10000_maximum(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    for n in range(12):
        sim.add_alert(make_alert(f"a{n:02d}", START))

    assert len(list_ids(http, auth)) == 12
    assert len(list_ids(http, auth, **{"$top": 10000})) == 12
    assert list_ids(http, auth, **{"$skip": 11}) == ["a11"]


@pytest.mark.parametrize(
    "params",
    [
        {"$top": "10001"},
        {"$top": "0"},
        {"$top": "-1"},
        {"$top": "ten"},
        {"$skip": "-5"},
        {"$expand": "machine"},
    ],
)
def test_out_of_range_paging_options_are_odata_errors(
    http: httpx.Client, auth: dict[str, str], params: dict[str, str]
) -> None:
    assert_mde_error(http.get("/api/alerts", params=params, headers=auth), 400, "ODataError")


def test_list_response_carries_odata_context(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    body = http.get("/api/alerts", headers=auth).json()

    assert body == {"@odata.context": f"{sim.base_url}/api/$metadata#Alerts", "value": []}


def test_expand_evidence_switches_evidence_on_and_off(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.add_alert(make_alert("a0", START))

    plain = http.get("/api/alerts", headers=auth).json()["value"][0]
    expanded = http.get("/api/alerts", params={"$expand": "evidence"}, headers=auth).json()["value"][0]

    assert plain["evidence"] == []
    assert expanded["evidence"] == [{"entityType": "Process", "fileName": "cmd.exe"}]
    assert {k: v for k, v in expanded.items() if k != "evidence"} == {
        k: v for k, v in plain.items() if k != "evidence"
    }


def test_single_alert_by_id(sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]) -> None:
    sim.add_alert(make_alert("da638766001234567890_-1402937711", START))

    found = http.get("/api/alerts/da638766001234567890_-1402937711", headers=auth)
    expanded = http.get(
        "/api/alerts/da638766001234567890_-1402937711", params={"$expand": "evidence"}, headers=auth
    )

    assert found.status_code == 200
    assert found.json()["id"] == "da638766001234567890_-1402937711"
    assert found.json()["evidence"] == []
    assert len(expanded.json()["evidence"]) == 1
    assert_mde_error(http.get("/api/alerts/da0_1", headers=auth), 404, "ResourceNotFound")


# -- visibility and vendor-side updates ------------------------------------------------------


def test_alert_is_hidden_until_the_clock_reaches_visible_at(
    sim: MdeSimulator, clock: Clock, http: httpx.Client, auth: dict[str, str]
) -> None:
    visible_at = clock.now + timedelta(minutes=5)
    sim.add_alert(make_alert("late", clock.now - timedelta(minutes=1)), visible_at=visible_at)

    assert list_ids(http, auth) == []
    assert_mde_error(http.get("/api/alerts/late", headers=auth), 404, "ResourceNotFound")

    clock.now = visible_at - timedelta(microseconds=1)
    assert list_ids(http, auth) == []

    clock.now = visible_at
    assert list_ids(http, auth) == ["late"]
    assert http.get("/api/alerts/late", headers=auth).status_code == 200


def test_visible_at_defaults_to_last_update_time(
    sim: MdeSimulator, clock: Clock, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.add_alert(make_alert("future", clock.now + timedelta(seconds=10)))

    assert list_ids(http, auth) == []
    clock.now += timedelta(seconds=10)
    assert list_ids(http, auth) == ["future"]


def test_update_alert_serves_the_new_version_from_its_time_on(
    sim: MdeSimulator, clock: Clock, http: httpx.Client, auth: dict[str, str]
) -> None:
    original = make_alert("a0", START)
    sim.add_alert(original)
    at = clock.now + timedelta(minutes=3, microseconds=250)

    sim.update_alert("a0", at, status="Resolved", classification="FalsePositive")

    # Until `at` the previous version is still what the API serves.
    before = http.get("/api/alerts", headers=auth).json()["value"]
    assert [(row["status"], row["lastUpdateTime"]) for row in before] == [("New", original["lastUpdateTime"])]

    clock.now = at
    after = http.get("/api/alerts", params={"$expand": "evidence"}, headers=auth).json()["value"]
    assert len(after) == 1
    assert after[0]["status"] == "Resolved"
    assert after[0]["classification"] == "FalsePositive"
    assert after[0]["lastUpdateTime"] == mde_timestamp(at)
    assert MDE_TIME.fullmatch(after[0]["lastUpdateTime"])
    assert after[0]["evidence"] == original["evidence"]
    since = {"$filter": f"lastUpdateTime gt {original['lastUpdateTime']}"}
    assert list_ids(http, auth, **since) == ["a0"]


def test_adding_an_alert_with_a_known_id_replaces_it(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.add_alert(make_alert("a0", START, severity="Low"))
    sim.add_alert(make_alert("a0", START + timedelta(minutes=1), severity="High"))

    rows = http.get("/api/alerts", headers=auth).json()["value"]

    assert [row["severity"] for row in rows] == ["High"]


def test_added_alerts_are_copied(sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]) -> None:
    alert = make_alert("a0", START)
    sim.add_alert(alert)
    alert["severity"] = "High"

    assert http.get("/api/alerts/a0", headers=auth).json()["severity"] == "Low"


def test_update_of_an_unknown_alert_raises(sim: MdeSimulator) -> None:
    with pytest.raises(KeyError):
        sim.update_alert("missing", START, status="Resolved")


def test_naive_visibility_times_are_rejected(sim: MdeSimulator) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sim.add_alert(make_alert("a0", START), visible_at=datetime(2025, 3, 4, 10, 0))


# -- injected faults -------------------------------------------------------------------------


def test_throttle_next_answers_429_with_retry_after_then_recovers(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.throttle_next(2, retry_after_seconds=7)

    for _ in range(2):
        response = http.get("/api/alerts", headers=auth)
        assert_mde_error(response, 429, "TooManyRequests")
        assert response.headers["Retry-After"] == "7"
    assert http.get("/api/alerts", headers=auth).status_code == 200


def test_faults_do_not_touch_token_calls(sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]) -> None:
    sim.throttle_next(1)

    assert grant(http).status_code == 200
    assert http.get("/api/alerts", headers=auth).status_code == 429


def test_fail_next_answers_internal_server_error_then_recovers(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.fail_next(1)
    sim.fail_next(1, status=503)

    first = http.get("/api/alerts", headers=auth)
    second = http.get("/api/alerts", headers=auth)

    assert assert_mde_error(first, 500, "InternalServerError")["message"] == ""
    assert_mde_error(second, 503, "InternalServerError")
    assert http.get("/api/alerts", headers=auth).status_code == 200


def test_requests_are_counted_per_route_template(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.add_alert(make_alert("a0", START))
    sim.fail_next(1)
    for _ in range(3):
        http.get("/api/alerts", headers=auth)
    http.get("/api/alerts/a0", headers=auth)
    http.get("/api/alerts/a1", headers=auth)

    assert sim.requests["POST /token"] == 1
    assert sim.requests["GET /api/alerts"] == 3
    assert sim.requests["GET /api/alerts/{id}"] == 2


def test_unknown_paths_are_404(http: httpx.Client, auth: dict[str, str]) -> None:
    assert_mde_error(http.get("/api/incidents", headers=auth), 404, "NotFound")
    assert_mde_error(http.delete("/api/alerts", headers=auth), 404, "NotFound")


def test_requests_are_not_logged_to_stderr(
    http: httpx.Client, auth: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    http.get("/api/alerts", headers=auth)
    http.get("/nowhere")

    assert capfd.readouterr().err == ""


# -- isolation -------------------------------------------------------------------------------


def test_isolate_creates_a_pending_action_that_later_succeeds(
    sim: MdeSimulator, clock: Clock, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.add_alert(make_alert("a0", START, machine="b" * 40, host="fin-ws-042.corp.example.com"))

    response = http.post(
        f"/api/machines/{'b' * 40}/isolate",
        json={"Comment": "Needle: credential theft on fin-ws-042", "IsolationType": "Selective"},
        headers=auth,
    )

    assert response.status_code == 201
    action = response.json()
    assert GUID.fullmatch(action["id"])
    assert action["type"] == "Isolate"
    assert action["scope"] == "Selective"
    assert action["status"] == "Pending"
    assert action["requestorComment"] == "Needle: credential theft on fin-ws-042"
    assert action["machineId"] == "b" * 40
    assert action["computerDnsName"] == "fin-ws-042.corp.example.com"
    assert action["creationDateTimeUtc"] == action["lastUpdateDateTimeUtc"] == mde_timestamp(clock.now)
    assert sim.isolated["b" * 40]["id"] == action["id"]

    clock.now += timedelta(seconds=40)
    polled = http.get(f"/api/machineactions/{action['id']}", headers=auth)

    assert polled.status_code == 200
    assert polled.json()["status"] == "Succeeded"
    assert polled.json()["lastUpdateDateTimeUtc"] == mde_timestamp(clock.now)
    assert sim.isolated["b" * 40]["status"] == "Succeeded"


def test_isolation_type_defaults_to_full(sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]) -> None:
    sim.add_alert(make_alert("a0", START))

    response = http.post(f"/api/machines/{'a' * 40}/isolate", json={"Comment": "contain"}, headers=auth)

    assert response.status_code == 201
    assert response.json()["scope"] == "Full"


@pytest.mark.parametrize(
    "body",
    [
        {"IsolationType": "Full"},
        {"comment": "lower-case name", "IsolationType": "Full"},
        {"Comment": "", "IsolationType": "Full"},
        {"Comment": "contain", "IsolationType": "full"},
        {"Comment": "contain", "IsolationType": "Partial"},
        ["Comment", "contain"],
    ],
)
def test_isolate_rejects_invalid_bodies(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str], body: Any
) -> None:
    sim.add_alert(make_alert("a0", START))

    response = http.post(f"/api/machines/{'a' * 40}/isolate", json=body, headers=auth)

    assert_mde_error(response, 400, "InvalidRequestBody")
    assert sim.isolated == {}


def test_isolate_of_an_unknown_machine_is_404(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    sim.add_alert(make_alert("a0", START))

    response = http.post(f"/api/machines/{'c' * 40}/isolate", json={"Comment": "contain"}, headers=auth)

    assert_mde_error(response, 404, "ResourceNotFound")
    assert_mde_error(
        http.get("/api/machineactions/43f4cb08-8fac-4b65-9db1-745c2ae65f3a", headers=auth),
        404,
        "ResourceNotFound",
    )
    assert sim.isolated == {}


def test_isolate_requires_a_token(sim: MdeSimulator, http: httpx.Client) -> None:
    sim.add_alert(make_alert("a0", START))

    response = http.post(f"/api/machines/{'a' * 40}/isolate", json={"Comment": "contain"})

    assert_mde_error(response, 401, "Unauthorized")
    assert sim.isolated == {}


# -- the skeleton scenario -------------------------------------------------------------------


def test_skeleton_scenario_has_ten_alerts_and_three_attacks() -> None:
    scenario = skeleton_scenario(START)

    assert len(scenario) == 10
    attacks = [item.alert for item in scenario if item.is_attack]
    assert len(attacks) == 3
    assert {a["computerDnsName"] for a in attacks} == {"fin-ws-042.corp.example.com"}
    assert [a["category"] for a in attacks] == ["Execution", "CredentialAccess", "LateralMovement"]
    assert [a["mitreTechniques"] for a in attacks] == [
        ["T1059.001"],
        ["T1003.001"],
        ["T1021.002", "T1569.002"],
    ]
    assert all(a["relatedUser"] == {"userName": "jdoe", "domainName": "CORP"} for a in attacks)
    assert len({item.alert["id"] for item in scenario}) == 10


def test_skeleton_scenario_alerts_have_every_mde_field() -> None:
    for item in skeleton_scenario(START):
        alert = item.alert
        assert set(alert) == set(ALERT_FIELDS)
        assert re.fullmatch(r"da\d{18}_-?\d{1,10}", alert["id"])
        assert re.fullmatch(r"[0-9a-f]{40}", alert["machineId"])
        assert alert["machineId"] == machine_id(alert["computerDnsName"])
        assert alert["computerDnsName"] in HOSTS
        assert alert["severity"] in {"UnSpecified", "Informational", "Low", "Medium", "High"}
        assert alert["status"] in {"Unknown", "New", "InProgress", "Resolved"}
        for name in ("alertCreationTime", "firstEventTime", "lastEventTime", "lastUpdateTime"):
            assert MDE_TIME.fullmatch(alert[name]), name
        assert alert["firstEventTime"] <= alert["lastEventTime"] < alert["alertCreationTime"]
        assert alert["alertCreationTime"] < alert["lastUpdateTime"]
        assert alert["evidence"]
        for row in alert["evidence"]:
            assert tuple(row) == EVIDENCE_FIELDS
            assert MDE_TIME.fullmatch(row["evidenceCreationTime"])
            if row["sha1"] is not None:
                assert re.fullmatch(r"[0-9a-f]{40}", row["sha1"])
                assert re.fullmatch(r"[0-9a-f]{64}", row["sha256"])


def test_skeleton_scenario_timing() -> None:
    scenario = skeleton_scenario(START)

    for item in scenario:
        updated = datetime.fromisoformat(item.alert["lastUpdateTime"][:26] + "+00:00")
        assert item.visible_at - updated == timedelta(seconds=30)
    assert [item.visible_at for item in scenario] == sorted(item.visible_at for item in scenario)
    noise = [
        item.alert for item in scenario if item.alert["computerDnsName"] == "eng-ws-007.corp.example.com"
    ]
    assert len(noise) == 6
    assert {a["title"] for a in noise} == {"Suspicious PowerShell command line"}
    assert {a["evidence"][0]["parentProcessFileName"] for a in noise} == {"sccm-agent.exe"}
    created = [datetime.fromisoformat(a["alertCreationTime"][:26] + "+00:00") for a in noise]
    assert START + timedelta(minutes=1) <= created[0] < START + timedelta(minutes=2)
    gaps = [later - earlier for earlier, later in itertools.pairwise(created)]
    assert all(timedelta(minutes=9) <= gap <= timedelta(minutes=11) for gap in gaps)


def test_skeleton_scenario_is_deterministic_and_anchored_on_start() -> None:
    assert skeleton_scenario(START) == skeleton_scenario(START)
    shifted = skeleton_scenario(START + timedelta(days=1))
    assert [item.visible_at - timedelta(days=1) for item in shifted] == [
        item.visible_at for item in skeleton_scenario(START)
    ]


def test_skeleton_scenario_served_by_the_simulator(
    sim: MdeSimulator, clock: Clock, http: httpx.Client, auth: dict[str, str]
) -> None:
    scenario = skeleton_scenario(START)
    for item in scenario:
        sim.add_alert(item.alert, visible_at=item.visible_at)

    clock.now = START
    assert list_ids(http, auth) == []
    clock.now = START + timedelta(minutes=30)
    assert sorted(list_ids(http, auth)) == sorted(
        i.alert["id"] for i in scenario if i.visible_at <= clock.now
    )
    clock.now = START + timedelta(hours=1)
    served = http.get("/api/alerts", params={"$expand": "evidence"}, headers=auth).json()["value"]
    assert sorted(served, key=lambda a: a["id"]) == sorted((i.alert for i in scenario), key=lambda a: a["id"])


# -- raw records and the shared fault knobs (simulator base) ----------------------------------


def test_add_raw_serves_a_malformed_record_under_its_sort_time(
    sim: MdeSimulator, clock: Clock, http: httpx.Client, auth: dict[str, str]
) -> None:
    # GIVEN two alerts and a record with no usable time, filed at a time between them
    sim.add_alert(make_alert("a0", START))
    sim.add_alert(make_alert("a2", START + timedelta(minutes=2)))
    broken = {"id": "a1", "lastUpdateTime": "not a time", "evidence": {"entityType": "Process"}}
    sim.add_raw(broken, visible_at=clock.now, sort_time=START + timedelta(minutes=1))
    sim.add_raw(["late"], visible_at=clock.now + timedelta(hours=1), sort_time=START)
    broken["title"] = "changed after add_raw"
    # WHEN listings are filtered around it
    after = {"$filter": f"lastUpdateTime ge {mde_timestamp(START + timedelta(seconds=30))}"}
    before = {"$filter": f"lastUpdateTime lt {mde_timestamp(START + timedelta(seconds=30))}"}
    # THEN it is served as given (evidence untouched even without $expand), in id order
    rows = http.get("/api/alerts", params=after, headers=auth).json()["value"]
    assert rows == [
        {"id": "a1", "lastUpdateTime": "not a time", "evidence": {"entityType": "Process"}},
        rows[1],
    ]
    assert rows[1]["id"] == "a2"
    assert list_ids(http, auth, **before) == ["a0"]
    # AND only once visible
    clock.now += timedelta(hours=1)
    assert ["late"] in http.get("/api/alerts", headers=auth).json()["value"]


def test_latency_delays_every_call(sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]) -> None:
    sim.faults.latency_seconds = 0.15

    started = time.monotonic()
    assert http.get("/api/alerts", headers=auth).status_code == 200

    assert time.monotonic() - started >= 0.15


def test_tokens_expire_after_n_calls_in_the_middle_of_paging(
    sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]
) -> None:
    # GIVEN five alerts paged two at a time, and tokens that die after two more API calls
    for n in range(5):
        sim.add_alert(make_alert(f"a{n}", START + timedelta(seconds=n)))
    sim.faults.expire_tokens_after(2)
    # WHEN the pages are read with one token
    first = http.get("/api/alerts", params={"$top": 2, "$skip": 0}, headers=auth)
    second = http.get("/api/alerts", params={"$top": 2, "$skip": 2}, headers=auth)
    third = http.get("/api/alerts", params={"$top": 2, "$skip": 4}, headers=auth)
    # THEN the third page is refused, and a fresh grant finishes the read
    assert (first.status_code, second.status_code) == (200, 200)
    assert_mde_error(third, 401, "Unauthorized")
    fresh = {"Authorization": f"Bearer {grant(http).json()['access_token']}"}
    assert list_ids(http, fresh, **{"$top": 2, "$skip": 4}) == ["a4"]


def test_duplicated_and_shuffled_pages(sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]) -> None:
    for n in range(8):
        sim.add_alert(make_alert(f"a{n}", START + timedelta(seconds=n)))
    sim.faults.duplicate_page_probability = 1.0
    sim.faults.shuffle_pages = True

    first = list_ids(http, auth, **{"$top": 4, "$skip": 0})
    second = list_ids(http, auth, **{"$top": 4, "$skip": 4})

    assert sorted(first) == ["a0", "a1", "a2", "a3"]
    # The second page repeats the tail of the first page.
    assert sorted(second) == ["a3", "a4", "a5", "a6", "a7"]


def test_page_faults_are_off_by_default(sim: MdeSimulator, http: httpx.Client, auth: dict[str, str]) -> None:
    for n in range(8):
        sim.add_alert(make_alert(f"a{n}", START + timedelta(seconds=n)))

    pages = [list_ids(http, auth, **{"$top": 4, "$skip": skip}) for skip in (0, 4)]

    assert pages == [["a0", "a1", "a2", "a3"], ["a4", "a5", "a6", "a7"]]
