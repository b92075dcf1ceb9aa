"""The compose file's central profile and Grafana's provisioning files, checked as files (docker
and Grafana are not available on the test machines: nothing here starts them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def test_central_profile_runs_grafana_over_influxdb2_with_the_dashboards() -> None:
    compose = _yaml(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    grafana = services["grafana"]
    assert grafana["profiles"] == ["central"] and "influxdb" in grafana["depends_on"]
    assert services["influxdb"]["image"].startswith("influxdb:2")
    assert "profiles" not in services["gateway"]  # the gateway's own stack is unchanged
    mounts = {m.split(":")[1]: m.split(":")[0] for m in grafana["volumes"]}
    prov, boards = mounts["/etc/grafana/provisioning"], mounts["/var/lib/grafana/dashboards"]
    assert (DEPLOY / prov / "datasources").is_dir() and (DEPLOY / boards / "influxql" / "district.json").is_file()
    assert "grafana-data" in compose["volumes"] and grafana["networks"] == ["edge"]
    env = grafana["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_PASSWORD:?")  # no default password
    assert all(p.startswith("127.0.0.1:") for p in grafana["ports"])


def test_provisioning_files_match_the_dashboards() -> None:
    ds = _yaml(DEPLOY / "grafana/provisioning/datasources/central.yaml")
    assert ds["apiVersion"] == 1
    types = {d["type"] for d in ds["datasources"]}
    assert types == {"influxdb", "prometheus"}  # one per dashboard flavour
    influx = next(d for d in ds["datasources"] if d["type"] == "influxdb")
    assert (
        influx["jsonData"]["dbName"] == "community"
        and "${INFLUX_TOKEN}" in influx["secureJsonData"]["httpHeaderValue1"]
    )
    prov = _yaml(DEPLOY / "grafana/provisioning/dashboards/central.yaml")
    (provider,) = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert provider["options"]["foldersFromFilesStructure"] is True and "folder" not in provider
