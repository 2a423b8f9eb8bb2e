"""`curator report`: the data model equals what the store and `shift` say, the page is self-contained and
plots exactly those numbers, and it renders in headless Chromium without errors."""
from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from tests.report_fixture import ARMS, HELDOUT, build_store


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    return build_store(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def data(store_path):
    from curator.report import collect

    return collect(store_path)


@pytest.fixture(scope="module")
def page(data) -> str:
    from curator.report import render

    return render(data)


def _con(store_path):
    from curator.store import Store
    from curator.store.query import connect

    return connect(Store(store_path))


# --------------------------------------------------------------------------- the data model

def test_arms_rounds_and_heldout_perplexity_follow_the_loop(data):
    assert [a.name for a in data.arms] == list(ARMS)
    assert data.loop["name"] == "t" and data.loop["rounds"] == 2
    for i, arm in enumerate(data.arms, start=1):
        assert [(r.round, r.generation) for r in arm.rounds] == [(0, 0), (1, 100 * i + 1), (2, 100 * i + 2)]
        assert [r.samples for r in arm.rounds] == [300, 200, 200]
        assert arm.rounds[0].heldout_ppl == HELDOUT[("base", 0)]
        assert [r.heldout_ppl for r in arm.rounds[1:]] == [HELDOUT[(arm.name, 1)], HELDOUT[(arm.name, 2)]]


def test_metrics_equal_shift_report_and_round_zero_is_the_human_data(store_path, data):
    from curator.shift import shift_report

    con = _con(store_path)
    for arm in data.arms:
        for r in arm.rounds:
            rows = shift_report(con, r.generation, 0)
            direct = {m.metric: m.value for m in rows}
            assert list(r.metrics) == list(direct)
            for m, v in direct.items():  # equal up to the order of DuckDB's parallel float sums
                assert r.metrics[m] == (None if v is None else pytest.approx(v, rel=1e-9, abs=1e-12)), m
            assert r.status == {m.metric: m.status for m in rows}
    human = data.arms[0].rounds[0].metrics
    totals = {row["n"]: row for row in con.sql(
        "SELECT n, \"distinct\", total FROM ngram_totals WHERE generation = 0 AND origin = '*'").to_arrow_table().to_pylist()}
    for n in (1, 2, 3, 4):
        assert human[f"distinct_{n}"] == pytest.approx(totals[n]["distinct"] / totals[n]["total"])
        assert human[f"js_divergence_{n}"] == pytest.approx(0.0, abs=1e-12)
    # the synthetic arm that repeats itself is the one that collapses
    last = {a.name: a.rounds[-1].metrics for a in data.arms}
    assert last["replace"]["distinct_2"] < human["distinct_2"] < last["curated"]["distinct_2"] * 1.5
    assert last["replace"]["js_divergence_2"] > last["curated"]["js_divergence_2"]


def test_pass_rate_equals_the_verifier_table(store_path, data):
    con = _con(store_path)
    rates = dict(con.sql("SELECT x.generation, avg(s.correct::INT) FROM scores_regex_v1 s JOIN samples x "
                         "USING (sample_id) GROUP BY 1").fetchall())
    for arm in data.arms:
        for r in arm.rounds:
            assert r.metrics["pass_rate_regex_v1"] == pytest.approx(rates[r.generation])


def test_perplexity_histograms_count_every_scored_sample_in_shared_bins(store_path, data):
    con = _con(store_path)
    values = con.sql("SELECT x.generation, s.perplexity FROM scores_perplexity_v1 s JOIN samples x "
                     "USING (sample_id)").fetchnumpy()
    gens, ppl = values["generation"], values["perplexity"]
    edges = {tuple(r.ppl_hist.edges) for a in data.arms for r in a.rounds}
    assert len(edges) == 1  # one config, so one set of bins for every panel
    edge = np.array(next(iter(edges)))
    assert edge[0] == ppl.min() and edge[-1] == ppl.max()
    for arm in data.arms:
        for r in arm.rounds:
            h = r.ppl_hist
            assert h.counts == np.histogram(ppl[gens == r.generation], edge)[0].tolist()
            assert h.human == np.histogram(ppl[gens == 0], edge)[0].tolist()
            assert sum(h.counts) == r.samples


def test_overrepresented_bigrams_of_the_last_round(store_path, data):
    from curator.shift import overrepresented

    con = _con(store_path)
    for arm in data.arms:
        assert arm.overrepresented == overrepresented(con, arm.rounds[-1].generation, 0, n=2, limit=15).to_pylist()
    top = data.arms[0].overrepresented[0]
    assert top["ngram"] in ("the mill", "mill is", "is good") and top["ratio"] > 10


def test_summary_rows(data):
    from curator.report import summary_rows

    rows = summary_rows(data)
    assert [(r["arm"], r["generation"], r["store_generation"]) for r in rows] == [
        ("replace", 0, 0), ("replace", 1, 101), ("replace", 2, 102), ("curated", 0, 0), ("curated", 1, 201),
        ("curated", 2, 202)]
    for r in rows:
        assert {"heldout_ppl", "distinct_2", "distinct_3", "js_divergence_2", "top_bucket_mass_2"} <= set(r)
    assert rows[2]["heldout_ppl"] == HELDOUT[("replace", 2)]
    assert rows[2]["distinct_3"] == data.arms[0].rounds[2].metrics["distinct_3"]


def test_lineage_groups_the_loop_runs_by_arm_and_round(data):
    keyed = {(x.arm, x.round): x for x in data.lineage}
    assert set(keyed) == {("base", 0), *((a, r) for a in ARMS for r in (1, 2))}
    assert keyed[("replace", 1)].steps == ["generate", "eval"] and keyed[("replace", 1)].generation == 101
    assert keyed[("base", 0)].steps == ["eval", "score"]


def test_a_store_without_a_loop_is_one_arm(tmp_path):
    from curator.ingest.pipeline import ingest
    from curator.report import collect, render
    from curator.store import Store
    from tests.conftest import write_jsonl

    store = Store(tmp_path / "st", create=True)
    for g, text in ((0, "the river runs past the mill {i}"), (3, "the mill the mill {i}"), (1, "a river {i}")):
        path = write_jsonl(tmp_path / f"{g}.jsonl", [{"text": text.format(i=i)} for i in range(20)])
        ingest(store, [path], generation=g, origin="human" if g == 0 else "synthetic")
    data = collect(store)
    assert data.loop is None and [a.name for a in data.arms] == ["store"]
    assert [(r.round, r.generation) for r in data.arms[0].rounds] == [(0, 0), (1, 1), (2, 3)]
    assert all(r.heldout_ppl is None and r.ppl_hist is None for r in data.arms[0].rounds)
    assert [x.steps for x in data.lineage] == [["init"]] + [["ingest"]] * 3
    html = render(data)
    assert 'data-series="store"' in html and "Held-out perplexity</h2>" not in html  # no eval: no chart


def test_unknown_loop_name_is_a_usage_error(store_path):
    from curator.errors import UsageError
    from curator.report import collect

    with pytest.raises(UsageError, match="no loop named 'nope'.*loops: t"):
        collect(store_path, loop="nope")


# --------------------------------------------------------------------------- the page

class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.json_text: list[str] = []
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "script":
            self.scripts.append(a)
        self.stack.append(a.get("id") or tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()

    def handle_data(self, text):
        if self.stack and self.stack[-1] == "report-data":
            self.json_text.append(text)


def _parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    return p


def test_page_is_self_contained(page):
    p = _parse(page)
    assert page.startswith("<!DOCTYPE html>")
    for tag, attrs in p.tags:
        for key in ("src", "href", "srcset", "action", "data", "poster"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "ftp:")), (tag, key, value)
            if key == "href" and value:
                assert value.startswith("#"), (tag, value)  # in-page links only
        assert tag not in ("link", "iframe", "img", "object", "embed"), tag
    assert "@import" not in page and "url(" not in page
    assert [s.get("type") for s in p.scripts] == ["application/json"]  # data only, nothing to execute
    assert sum(1 for t, _ in p.tags if t == "svg") >= 15


def test_embedded_json_equals_collect(page, data):
    from curator.report import json_safe, summary_rows

    p = _parse(page)
    payload = json.loads("".join(p.json_text))
    assert payload["report"] == data.to_dict()
    assert payload["summary"] == json_safe(summary_rows(data))


def test_plotted_values_equal_the_store(page, data):
    """Every line-chart point, histogram bar and n-gram bar carries the number it plots."""
    p = _parse(page)
    points: dict[tuple[str, str, int], float] = {}
    hist: dict[tuple[str, str, int], list[int]] = {}
    bars: dict[tuple[str, str], float] = {}
    chart = None
    for tag, a in p.tags:
        if tag == "svg":
            chart = a
        if "pt" in (a.get("class") or "").split():
            points[(a["data-metric"], a["data-series"], int(a["data-x"]))] = float(a["data-value"])
        elif a.get("data-bin") is not None:
            hist.setdefault((chart["data-series"], chart["data-metric"], a["data-series"]), []).append(
                int(a["data-count"]))
        elif chart is not None and chart.get("data-metric") == "overrepresented_2" and a.get("data-label") \
                and "gen" in a.get("class", ""):
            bars[(a["data-series"], a["data-label"])] = float(a["data-value"])
    plotted_metrics = {m for m, _, _ in points}
    assert {"heldout_ppl", "distinct_2", "distinct_3", "top_bucket_mass_2", "js_divergence_2", "tail_loss_2",
            "pass_rate_regex_v1", "ppl_p50"} <= plotted_metrics
    for arm in data.arms:
        for r in arm.rounds:
            assert points[("heldout_ppl", arm.name, r.round)] == r.heldout_ppl
            for m in plotted_metrics - {"heldout_ppl"}:
                assert points[(m, arm.name, r.round)] == r.metrics[m], (m, arm.name, r.round)
        for o in arm.overrepresented:
            assert bars[(arm.name, o["ngram"])] == o["gen_freq"]
    # histogram panels: the rounds after 0, each bar count equal to the model's
    panels = [(a.name, r) for a in data.arms for r in a.rounds[1:]]
    got = {k: v for k, v in hist.items()}
    n_panels = sum(1 for t, a in p.tags if t == "svg" and a.get("data-metric") == "ppl_hist")
    assert n_panels == len(panels)
    counts_by_series = {}
    for (arm, _, series), counts in got.items():
        counts_by_series.setdefault((arm, series), []).append(counts)
    for name, r in panels:
        bins = len(r.ppl_hist.counts)
        gen_runs = [c[i:i + bins] for c in counts_by_series[(name, name)] for i in range(0, len(c), bins)]
        assert r.ppl_hist.counts in gen_runs
        human_runs = [c[i:i + bins] for c in counts_by_series[(name, "human")] for i in range(0, len(c), bins)]
        assert r.ppl_hist.human in human_runs


def test_alarm_points_are_marked(page, data):
    p = _parse(page)
    alarmed = {(a["data-metric"], a["data-series"], int(a["data-x"])) for _, a in p.tags
               if "alarm" in (a.get("class") or "").split() and a.get("data-x") is not None}
    expected = {("distinct_2", arm.name, r.round) for arm in data.arms for r in arm.rounds
                if r.status["distinct_2"] == "alarm"}
    assert expected and {x for x in alarmed if x[0] == "distinct_2"} == expected


def test_cli_writes_the_report_and_summary(store_path, tmp_path):
    from click.testing import CliRunner

    from curator.cli import cli

    out, summary = tmp_path / "sub" / "report.html", tmp_path / "summary.json"
    result = CliRunner().invoke(cli, ["--store", str(store_path), "report", "--out", str(out), "--summary",
                                      str(summary)], obj={})
    assert result.exit_code == 0, result.output
    assert "2 arm(s), 4 round(s)" in result.output
    assert "<svg" in out.read_text()
    rows = json.loads(summary.read_text())
    assert rows[5]["arm"] == "curated" and rows[5]["generation"] == 2 and rows[5]["heldout_ppl"] == 43.5
    bad = CliRunner().invoke(cli, ["--store", str(store_path), "report", "--loop", "nope", "--out",
                                   str(tmp_path / "x.html")], obj={})
    assert bad.exit_code == 2 and "no loop named 'nope'" in bad.output


# --------------------------------------------------------------------------- in a browser

def test_report_renders_in_headless_chromium(page, tmp_path):
    from tests.report_browser import find_chromium, read_png, render

    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (set $CHROMIUM, or `apt-get install chromium`; `make test` "
                    "installs it where it can)")
    # The check can fail: a page with a script error is caught.
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><p>x</p><script>undefinedFunction()</script></body></html>")
    assert any("undefinedFunction" in m for m in render(binary, broken, tmp_path / "broken.png", width=300, height=200))

    html = tmp_path / "report.html"
    html.write_text(page, encoding="utf-8")
    png = tmp_path / "report.png"
    messages = render(binary, html, png, width=1200, height=1600)
    assert messages == [], messages
    pixels = read_png(png)[..., :3]
    assert pixels.shape[:2] == (1600, 1200)
    flat = pixels.reshape(-1, 3).astype(np.uint32)
    colours = np.unique(flat @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32))
    inked = (flat < 235).any(axis=1).mean()  # share of pixels that are not (near) white
    assert len(colours) > 200, len(colours)
    assert 0.03 < inked < 0.8, inked
    # The palette's blue and vermillion (the two arms' lines) are on screen.
    for rgb in ((0x00, 0x72, 0xB2), (0xD5, 0x5E, 0x00)):
        near = np.abs(pixels.astype(int) - np.array(rgb)).sum(axis=-1) < 40
        assert near.sum() > 50, rgb
    assert not math.isnan(float(inked))


def test_main_figure_is_a_standalone_svg_of_the_collected_values(data):
    import xml.etree.ElementTree as ET

    from curator.report import main_figure

    root = ET.fromstring(main_figure(data))
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg" and len(root.findall(f"{ns}svg")) == 3
    points = {(e.get("data-metric"), e.get("data-series"), int(e.get("data-x"))): float(e.get("data-value"))
              for e in root.iter() if e.get("data-x") is not None}
    for arm in data.arms:
        for r in arm.rounds:
            assert points[("heldout_ppl", arm.name, r.round)] == pytest.approx(r.heldout_ppl, rel=1e-9)
            assert points[("distinct_2", arm.name, r.round)] == pytest.approx(r.metrics["distinct_2"], rel=1e-9)
            assert points[("js_divergence_2", arm.name, r.round)] == pytest.approx(r.metrics["js_divergence_2"], abs=1e-12)
