"""`credo simulate`: a synthetic population decided in chunks gives the figures a plain loop over
DecisionService.decide() gives; a Dask LocalCluster gives the same bytes; scenarios shock what they
say; pre-approval lists each customer's best offer; a bad scenario file is refused with locations."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from engine.batch.decider import Undecided
from engine.batch.inputs import iter_chunks
from engine.batch.pool import DaskPool, InProcessPool, LocalPool
from engine.batch.portfolio import Portfolio, Row, row_of
from engine.batch.scenario import load_scenarios, share_draw
from engine.batch.simulate import SimulationOptions, declared_only, simulate
from engine.cli import main
from engine.errors import CredoError, ScenarioError
from engine.models.synthetic import write
from engine.policy import load_policy
from engine.service import DecisionService

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "consumer_loan" / "policy.yaml"
STRESS = ROOT / "policies" / "consumer_loan" / "scenarios" / "stress.yaml"
MODELS = ROOT / "models"
SAMPLE = 2000  # the check against decide()
SMALL = 600  # pools and scenarios: enough rows for every outcome and several chunks


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("population") / "applications.parquet"
    write(SAMPLE, 20261201, path, applications=True)
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("small") / "applications.parquet"
    write(SMALL, 20261202, path, applications=True)
    return path


def options(data: Path, **extra: Any) -> SimulationOptions:
    return SimulationOptions(**{"policy": POLICY, "data": data, "models_dir": MODELS, "chunk": 250, **extra})


def test_simulated_figures_equal_a_direct_loop_over_decide(population: Path) -> None:
    """Every row (outcome, PD, points, grade, limit, rate, best offer, expected profit) and the
    portfolio figures of the batch engine equal what DecisionService.decide() - the serving path, one
    application at a time - gives for the same 2,000 applications."""
    rows: list[Row] = []
    result = simulate(options(population), InProcessPool(), rows_sink=lambda arm, r, ids: rows.extend(r))
    overall = result.summary()["results"]["baseline"]["overall"]
    service = DecisionService(ROOT / "policies", MODELS)
    names = frozenset(load_policy(POLICY).inputs)
    lgd = Decimal("0.45")
    want = Portfolio()
    index = 0
    for chunk in iter_chunks(population, 500):
        for application in chunk:
            try:
                decided: Any = service.decide(
                    "consumer_loan", declared_only(application, names), f"sim-{index}"
                )
            except CredoError as exc:
                decided = Undecided(exc.code, str(exc))
            expected = row_of(index, decided, lgd)
            assert rows[index] == expected, index
            want.add(expected)
            index += 1
    assert index == len(rows) == SAMPLE
    outcomes = overall["outcomes"]
    assert outcomes["APPROVE"] > 100 and outcomes["DECLINE"] > 100 and outcomes["REFER"] > 10
    assert overall == want.overall.to_dict()
    approved = [r for r in rows if r.outcome == "APPROVE"]
    assert overall["booked_volume"] == str(sum((r.amount or 0 for r in approved), Decimal(0)))


def test_a_two_worker_dask_cluster_gives_byte_identical_figures(small: Path) -> None:
    run = options(small, scenarios=STRESS, chunk=100)
    one = simulate(run, InProcessPool()).summary()
    pool = DaskPool("local:2")
    try:
        assert pool.width == 2
        two = simulate(run, pool).summary()
    finally:
        pool.close()
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)


def test_local_processes_give_the_same_figures_as_one_process(small: Path) -> None:
    run = options(small, challenger=POLICY, chunk=100)
    one = simulate(run, InProcessPool()).summary()
    pool = LocalPool(2)
    try:
        two = simulate(run, pool).summary()
    finally:
        pool.close()
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
    assert (
        one["swap_matrices"]["challenger"]["matrix"]["APPROVE"]["APPROVE"]
        == (one["results"]["baseline"]["overall"]["outcomes"]["APPROVE"])
    )  # the same policy as challenger swaps nothing


def test_stress_scenarios_move_the_figures_the_way_they_say(small: Path) -> None:
    summary = simulate(options(small, scenarios=STRESS), InProcessPool()).summary()
    results = summary["results"]
    base = results["baseline"]["overall"]
    names = ["income_down_20", "bureau_drift", "recession", "unemployment_up"]
    assert [a["name"] for a in summary["arms"]] == ["baseline", *names]
    for name in names:
        assert results[name]["overall"]["approval_rate"] < base["approval_rate"], name
        assert results[name]["overall"]["count"] == base["count"]
    assert Decimal(results["bureau_drift"]["overall"]["avg_pd"]) > Decimal(base["avg_pd"])
    recession = results["recession"]["overall"]
    assert recession["approval_rate"] < results["income_down_20"]["overall"]["approval_rate"]
    swaps = summary["swap_matrices"]["recession"]["matrix"]
    assert swaps["APPROVE"]["DECLINE"] > 0 and swaps["DECLINE"]["APPROVE"] == 0


def test_the_unemployed_share_is_seeded_and_chunking_does_not_move_it() -> None:
    policy = load_policy(POLICY)
    (recession,) = [s for s in load_scenarios(STRESS, policy) if s.name == "recession"]
    app = {"applicant": {"employment_type": "salaried", "income_monthly": "10000"}, "bureau": {"score": 320}}
    shocked = [recession.shock(app, row, policy) for row in range(4000)]
    unemployed = sum(1 for s in shocked if s["applicant"]["employment_type"] == "unemployed")
    assert 150 < unemployed < 250  # 5% of 4,000
    assert shocked[0]["applicant"]["income_monthly"] == "8000.0"
    assert shocked[0]["bureau"]["score"] == 300  # 320 - 40, kept at the declared minimum
    assert app["bureau"]["score"] == 320  # the row itself is left as it was
    assert [share_draw(19, r) for r in (7, 8)] == [share_draw(19, r) for r in (7, 8)]


def test_a_bad_scenario_file_is_refused_with_every_problem_located(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "scenarios:\n"
        "  slump:\n"
        "    inputs:\n"
        "      applicant.incme_monthly: {multiply: 0.8}\n"
        "      applicant.employment_type: {set: jobless, share: 1.5}\n"
        "    model: {pd_multiplyer: 2}\n"
        "  ../../escape:\n"
        "    model: {pd_multiplier: 2}\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenarios(bad, load_policy(POLICY))
    shown = [str(d) for d in caught.value.diagnostics]
    assert any(
        s.startswith(f"{bad}:4:7: SCENARIO_INPUT") and "did you mean 'applicant.income_monthly'" in s
        for s in shown
    )
    assert any(s.startswith(f"{bad}:5:") and "takes one of" in s for s in shown)
    assert any(s.startswith(f"{bad}:5:") and "`share` must be within [0, 1]" in s for s in shown)
    assert any(s.startswith(f"{bad}:6:") and "did you mean 'pd_multiplier'" in s for s in shown)
    assert any(s.startswith(f"{bad}:7:3: SCENARIO_NAME") for s in shown)  # the name names a file


def test_preapproval_lists_each_customers_best_offer(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "campaign"
    args = ["simulate", str(POLICY), "--data", str(small), "--mode", "preapproval", "--workers", "1"]
    args += ["--models", str(MODELS), "--report", str(report), "--id-field", "applicant.id_number", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = pq.read_table(report / "rows-baseline.parquet").to_pylist()
    assert len(rows) == SMALL and rows[0]["id"] == "SYN0000000000"
    offered = [r for r in rows if r["outcome"] == "APPROVE"]
    campaign = summary["campaign"]
    assert campaign["pre_approved"] == len(offered) > 0
    assert all(
        r["product"] and r["limit"] and r["rate"] and r["expected_profit"] is not None for r in offered
    )
    assert Decimal(campaign["credit_offered"]) == sum(r["amount"] for r in offered)
    assert sum(p["customers"] for p in campaign["by_product"].values()) == len(offered)
    assert (report / "report.html").read_text(encoding="utf-8").count("<svg") >= 2


def test_the_cli_refuses_a_bad_scenario_and_unknown_data_with_exit_2(
    small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenarios:\n  slump:\n    model: {pd_multiplier: -1}\n", encoding="utf-8")
    base = ["simulate", str(POLICY), "--models", str(MODELS), "--workers", "1"]
    assert main([*base, "--data", str(small), "--scenario", str(bad)]) == 2
    assert f"{bad}:3:" in capsys.readouterr().err
    assert main([*base, "--data", str(tmp_path / "apps.xlsx")]) == 2
    assert "unknown data format" in capsys.readouterr().err
    assert main([*base, "--data", str(small), "--cluster", "local:0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_parquet_csv_and_json_lines_of_the_same_rows_give_the_same_figures(tmp_path: Path) -> None:
    parquet, csv = tmp_path / "apps.parquet", tmp_path / "apps.csv"
    write(200, 5, parquet, applications=True)
    write(200, 5, csv, applications=True)
    jsonl = tmp_path / "apps.jsonl"
    with jsonl.open("w", encoding="utf-8") as out:
        for chunk in iter_chunks(parquet, 64):  # nested JSON, as a caller would send it
            out.writelines(json.dumps(application) + "\n" for application in chunk)
    summaries = [
        simulate(options(path, chunk=64), InProcessPool()).summary()["results"]
        for path in (parquet, csv, jsonl)
    ]
    assert summaries[0] == summaries[1] == summaries[2]
    assert summaries[0]["baseline"]["overall"]["count"] == 200
    assert summaries[0]["baseline"]["errors"] == {}
