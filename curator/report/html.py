"""The report page: one self-contained HTML file (inline CSS and SVG, no script to run, nothing fetched).

The numbers behind every chart are in the page twice: in the `data-value` attributes of the plotted marks
(see `plots.py`) and in `<script type="application/json" id="report-data">` (the whole data model, plus
the summary rows), so a reader can copy them and a test can check them against the store.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from typing import Any

from .collect import ReportData, json_safe, summary_rows
from .plots import Bar, Series, bar_chart, colour, fmt, histogram, line_chart


@dataclass(frozen=True)
class Chart:
    metric: str
    title: str
    y_label: str
    log_y: bool = False
    baseline: bool = True  # a dashed line at the human (round 0) value
    zero: bool = True  # the y axis starts at 0


@dataclass(frozen=True)
class Section:
    id: str
    heading: str
    about: str
    charts: tuple[Chart, ...]


def _n_charts(family: str, ns: tuple[int, ...], title: str, y_label: str, **kw: Any) -> tuple[Chart, ...]:
    return tuple(Chart(f"{family}_{n}", title.format(n=n), y_label.format(n=n), **kw) for n in ns)


SECTIONS = (
    Section("collapse", "Held-out perplexity",
            "Perplexity of each round's model on held-out human text (token-weighted, never trained on); round 0 "
            "is the base model trained on the human data. A rise round after round is model collapse.",
            (Chart("heldout_ppl", "Held-out perplexity", "perplexity", log_y=True, zero=False),)),
    Section("diversity", "Diversity: distinct-n",
            "Distinct n-grams over all n-grams of each generation (word tokens). Falls as the text repeats itself. "
            "Dashed: the human data. Distinct-n also falls with corpus size, so compare generations of similar size.",
            _n_charts("distinct", (1, 2, 3, 4), "distinct-{n}", "distinct / total {n}-grams")),
    Section("concentration", "Concentration",
            "How much of the n-gram mass sits in a few places: the share of occurrences in the top 1% of hashed "
            "n-gram buckets (rises as stock phrases take over), and the entropy of the bucket histogram in bits "
            "(falls).",
            (*_n_charts("top_bucket_mass", (2, 3), "top-1% bucket mass, {n}-grams", "share of {n}-gram occurrences"),
             *_n_charts("entropy", (2,), "entropy, {n}-grams", "bits", zero=False))),
    Section("divergence", "Divergence from the human reference",
            "Jensen-Shannon divergence (base 2, 0 = the same distribution, 1 = disjoint) between a generation's "
            "hashed n-gram histogram and the human one; tail loss = the share of the human data's (sampled) "
            "n-grams that the generation never uses; length KS = the largest gap between the two document-length "
            "distributions. A ring marks a value in alarm (see `curator shift`).",
            (*_n_charts("js_divergence", (2, 3), "JS divergence, {n}-grams", "JS divergence (bits)", baseline=False),
             *_n_charts("tail_loss", (2,), "tail loss, {n}-grams", "share of human {n}-grams lost", baseline=False),
             Chart("length_ks", "document length, KS statistic", "KS D", baseline=False))),
    Section("verifiers", "Verifier pass rate",
            "Share of judged samples the verifier passes, where a verifier scored the generation.", ()),
    Section("refppl", "Perplexity under the reference model",
            "Each document's perplexity under the scoring model (perplexity_v1). Synthetic text tends to crowd into "
            "a narrow low-perplexity band (low-band share: documents at or below the human data's lower quartile) "
            "or, collapsing, drift to high perplexity. Histograms: every round of each arm (colour) over the human data "
            "(grey), in the same bins, as shares of documents.",
            (Chart("ppl_p50", "median document perplexity", "perplexity", log_y=True, zero=False),
             Chart("ppl_low_band_share", "low-band share", "share of documents"),
             Chart("ppl_ks", "KS statistic vs human", "KS D", baseline=False))),
)

CSS = """
:root { --ink:#1d1d1f; --muted:#5f6368; --rule:#e3e3e6; --bg:#ffffff; --panel:#fafafa; --alarm:#b3261e; }
* { box-sizing:border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","Liberation Sans",sans-serif; }
main { max-width:1180px; margin:0 auto; padding:28px 28px 64px; }
h1 { font-size:26px; margin:0 0 4px; letter-spacing:-0.01em; }
h2 { font-size:20px; margin:40px 0 6px; padding-top:12px; border-top:1px solid var(--rule); }
h3 { font-size:15px; margin:18px 0 6px; }
p.about { color:var(--muted); max-width:820px; margin:0 0 12px; }
.meta { color:var(--muted); margin:0 0 16px; }
.meta code, td code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; }
nav { margin:10px 0 4px; font-size:14px; }
nav a { color:#0a5ca8; margin-right:14px; text-decoration:none; }
.charts { display:flex; flex-wrap:wrap; gap:14px 18px; }
.chart { background:var(--panel); border:1px solid var(--rule); border-radius:6px; max-width:100%; height:auto; }
.chart text { fill:var(--ink); font-family:inherit; }
.chart .ctitle { font-size:13px; font-weight:600; }
.chart .tick { font-size:11px; fill:var(--muted); font-variant-numeric:tabular-nums; }
.chart .label { font-size:11.5px; fill:var(--muted); }
.chart .legend, .chart .note { font-size:11.5px; }
.chart .note { fill:var(--muted); }
.chart .ngram { font-size:12px; font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
.chart .muted { fill:var(--muted); font-size:13px; }
.chart .grid { stroke:#e6e6ea; stroke-width:1; }
.chart .axis { stroke:#8a8a90; stroke-width:1; }
.chart .baseline { stroke:#6b6b6b; stroke-width:1.6; stroke-dasharray:6 4; }
.chart .bar.ref { opacity:0.35; }
.chart.hist .bar.gen { opacity:0.6; }
caption { text-align:left; color:var(--muted); font-size:12.5px; padding-bottom:4px; }
table { border-collapse:collapse; margin:12px 0 4px; font-size:13px; font-variant-numeric:tabular-nums; }
th, td { padding:4px 10px; border-bottom:1px solid var(--rule); text-align:right; white-space:nowrap; }
th { font-weight:600; color:var(--muted); border-bottom:1px solid #bdbdc2; }
th:first-child, td:first-child, td.text, th.text { text-align:left; }
tbody tr:nth-child(even) { background:#f6f6f8; }
td.alarm { color:var(--alarm); font-weight:600; }
td.alarm::after { content:" !"; }
.swatch { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:6px; vertical-align:0; }
.scroll { overflow-x:auto; }
details { margin:8px 0; }
summary { cursor:pointer; color:#0a5ca8; }
pre { background:var(--panel); border:1px solid var(--rule); border-radius:6px; padding:10px; font-size:12.5px;
  overflow-x:auto; }
.empty { color:var(--muted); font-style:italic; }
footer { margin-top:48px; color:var(--muted); font-size:12.5px; }
"""


def _json_block(payload: dict[str, Any]) -> str:
    # '<' escaped as \\u003c, so no text in the data ("</script>") can end the block early.
    text = json.dumps(payload, sort_keys=False, allow_nan=False).replace("<", "\\u003c")
    return f'<script type="application/json" id="report-data">{text}</script>'


def _present(data: ReportData, metric: str) -> bool:
    if metric == "heldout_ppl":
        return any(r.heldout_ppl is not None for a in data.arms for r in a.rounds)
    return metric in data.metrics and any(r.metrics.get(metric) is not None for a in data.arms for r in a.rounds)


def _value(r: Any, metric: str) -> float | None:
    return r.heldout_ppl if metric == "heldout_ppl" else r.metrics.get(metric)


def _series(data: ReportData, metric: str) -> list[Series]:
    return [Series(a.name, [(r.round, _value(r, metric)) for r in a.rounds],
                   frozenset(r.round for r in a.rounds if r.status.get(metric) == "alarm")) for a in data.arms]


def _chart(data: ReportData, c: Chart) -> str:
    base = None
    if c.baseline and data.arms and data.arms[0].rounds and data.arms[0].rounds[0].round == 0:
        base = _value(data.arms[0].rounds[0], c.metric)
    label = "base model" if c.metric == "heldout_ppl" else "human"
    return line_chart(_series(data, c.metric), metric=c.metric, title=c.title, y_label=c.y_label, log_y=c.log_y,
                      baseline=base, baseline_label=label, zero=c.zero)


def _table(data: ReportData, metrics: list[str]) -> str:
    head = "".join(f"<th>{escape(m)}</th>" for m in metrics)
    rows = []
    for i, a in enumerate(data.arms):
        for r in a.rounds:
            cells = []
            for m in metrics:
                v = _value(r, m)
                cls = ' class="alarm"' if r.status.get(m) == "alarm" else ""
                title = f' title="{escape(repr(v))}"' if isinstance(v, float) else ""
                cells.append(f"<td{cls}{title}>{fmt(v)}</td>")
            rows.append(f'<tr><td><span class="swatch" style="background:{colour(i)}"></span>{escape(a.name)}</td>'
                        f"<td>{r.round}</td><td>{r.generation}</td><td>{r.samples:,}</td>{''.join(cells)}</tr>")
    return (f'<div class="scroll"><table><thead><tr><th>arm</th><th>round</th><th>generation</th><th>samples</th>'
            f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def _section(data: ReportData, s: Section) -> str:
    charts = list(s.charts)
    if s.id == "verifiers":
        charts = [Chart(m, f"pass rate, {m.removeprefix('pass_rate_')}", "share passed")
                  for m in data.metrics if m.startswith("pass_rate_")]
    charts = [c for c in charts if _present(data, c.metric)]
    if not charts and s.id != "refppl":
        return ""
    body = [f'<section id="{s.id}"><h2>{escape(s.heading)}</h2><p class="about">{escape(s.about)}</p>']
    if charts:
        body.append('<div class="charts">' + "".join(_chart(data, c) for c in charts) + "</div>")
        body.append(_table(data, [c.metric for c in charts]))
    if s.id == "refppl":
        hists = _histograms(data)
        if not charts and not hists:
            return ""
        body.append(hists)
    body.append("</section>")
    return "".join(body)


def _histograms(data: ReportData) -> str:
    """Small multiples: every scored round of every arm against the human data under the same config."""
    rows = []
    for i, a in enumerate(data.arms):
        panels = [histogram(r.ppl_hist.edges, r.ppl_hist.counts, r.ppl_hist.human, metric="ppl_hist",
                            title=f"{a.name}, round {r.round} (generation {r.generation})", name=a.name,
                            colour_index=i)
                  for r in a.rounds if r.round > 0 and r.ppl_hist is not None]
        if panels:
            rows.append(f'<h3>{escape(a.name)}</h3><div class="charts">{"".join(panels)}</div>')
    return "".join(rows)


def _ngrams(data: ReportData) -> str:
    parts = []
    for i, a in enumerate(data.arms):
        if not a.overrepresented:
            continue
        last = a.rounds[-1]
        bars = []
        for o in a.overrepresented:
            ratio = o["ratio"]
            if ratio is None:
                note = "–"
            elif math.isinf(ratio):
                note = "new"
            else:
                note = ("≥ " if o["ratio_is_lower_bound"] else "") + f"×{fmt(ratio, 3)}"
            bars.append(Bar(o["ngram"], o["gen_freq"], o["baseline_freq"], note))
        parts.append(bar_chart(bars, metric="overrepresented_2", name=a.name, colour_index=i,
                               title=f"{a.name}, round {last.round} (generation {last.generation})"))
    if not parts:
        return ""
    return ('<section id="ngrams"><h2>Over-represented bigrams</h2><p class="about">The last round\'s most frequent '
            "bigrams ranked by how much more often they occur than in the human data (×ratio; “new”: absent from "
            "the human data; ≥: the human count is only bounded, the bigram being outside its top list). Coloured: "
            "share of the generation's bigrams; grey: share of the human data's.</p>"
            f'<div class="charts">{"".join(parts)}</div></section>')


def _glance(data: ReportData) -> str:
    """Per arm: the first and last round of the headline numbers."""
    keys = [("heldout_ppl", "held-out perplexity"), ("distinct_3", "distinct-3"), ("js_divergence_2", "JS divergence-2"),
            ("top_bucket_mass_2", "top-1% mass-2")]
    keys = [k for k in keys if _present(data, k[0])]
    rows = []
    for i, a in enumerate(data.arms):
        first, last = a.rounds[0], a.rounds[-1]
        alarms = sum(1 for s in last.status.values() if s == "alarm")
        cells = "".join(f"<td>{fmt(_value(first, m))} → {fmt(_value(last, m))}</td>" for m, _ in keys)
        rows.append(f'<tr><td><span class="swatch" style="background:{colour(i)}"></span>{escape(a.name)}</td>'
                    f"<td>{last.round}</td>{cells}<td>{alarms}</td></tr>")
    head = "".join(f"<th>{escape(label)}</th>" for _, label in keys)
    return (f'<div class="scroll"><table><caption>round 0 (human data, base model) → last round</caption><thead><tr>'
            f"<th>arm</th><th>rounds</th>{head}<th>alarms, last round</th></tr></thead><tbody>{''.join(rows)}</tbody>"
            "</table></div>")


def _lineage(data: ReportData) -> str:
    if not data.lineage:
        return ""
    loop = data.loop is not None
    rows = []
    for x in data.lineage:
        first = (f"<td>{escape(str(x.arm))}</td><td>{x.round}</td>" if loop else "")
        sel = f"<td>{fmt(x.selected)}</td>" if loop else ""
        rows.append(f"<tr>{first}<td>{'' if x.generation is None else x.generation}</td>"
                    f'<td class="text">{escape(", ".join(x.steps))}</td>{sel}<td>{x.runs}</td><td>{x.seconds:.1f}</td>'
                    f"<td>{x.first_seq}–{x.last_seq}</td></tr>")
    head = ("<th>arm</th><th>round</th>" if loop else "") + '<th>generation</th><th class="text">' + \
           ("steps" if loop else "command") + "</th>" + ("<th>selected</th>" if loop else "") + \
           "<th>runs</th><th>seconds</th><th>store versions</th>"
    about = ("The loop's runs by arm and round: the steps recorded (in order), the size of the round's selection, "
             "and the store versions they wrote (`curator log` lists every run)." if loop else
             "Every run of the store (`curator log` shows their arguments and summaries).")
    return (f'<section id="runs"><h2>Runs</h2><p class="about">{escape(about)}</p><div class="scroll"><table><thead><tr>'
            f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>")


def render(data: ReportData, *, title: str | None = None) -> str:
    """The report as one HTML document (a string)."""
    loop = data.loop
    title = title or (f"curator report: loop {loop.get('name')}" if loop else "curator report")
    arms = ", ".join(a.name for a in data.arms) or "none"
    if loop:
        meta = (f"Loop <b>{escape(str(loop.get('name')))}</b>: {escape(str(loop.get('rounds')))} rounds, arms "
                f"{escape(arms)}.")
    else:
        meta = f"No loop run in this store: its synthetic generations in order, as the rounds of one arm ({escape(arms)})."
    config = ""
    if loop and loop.get("config"):
        config = ("<details><summary>loop configuration</summary><pre>"
                  f"{escape(json.dumps(loop['config'], indent=2, sort_keys=True, default=str))}</pre></details>")
    sections = [_section(data, s) for s in SECTIONS]
    nav_items = [(s.id, s.heading) for s, html in zip(SECTIONS, sections) if html]
    ngrams, lineage = _ngrams(data), _lineage(data)
    nav_items += [(i, h) for i, h, html in (("ngrams", "Over-represented bigrams", ngrams), ("runs", "Runs", lineage))
                  if html]
    nav = "".join(f'<a href="#{i}">{escape(h)}</a>' for i, h in nav_items)
    body = "".join(sections) + ngrams + lineage if data.arms else '<p class="empty">No generations to report.</p>'
    payload = {"report": data.to_dict(), "summary": json_safe(summary_rows(data))}
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>{escape(title)}</h1>
<p class="meta">Store <code>{escape(data.store)}</code> at version {data.store_version} · {data.human_samples:,} human
documents (generation 0) · written {now}</p>
<p>{meta}</p>
{config}
{_glance(data) if data.arms else ""}
<nav>{nav}</nav>
{body}
<footer>Made by <code>curator report</code>. Every plotted number is in the page: hover a mark for its value, or read
the JSON block <code>#report-data</code>.</footer>
</main>
{_json_block(payload)}
</body>
</html>
"""


MAIN_FIGURE = (Chart("heldout_ppl", "held-out perplexity (lower is better)", "perplexity", log_y=True, zero=False),
               Chart("distinct_2", "distinct-2 of the generated text", "distinct / total 2-grams"),
               Chart("js_divergence_2", "JS divergence to the human 2-grams", "JS divergence, bits"))


def main_figure(data: ReportData) -> str:
    """The collapse at a glance, as one standalone SVG file: held-out perplexity, distinct-2 and JS divergence
    per arm and round, side by side (the README's picture of the demo; the page's charts, same data)."""
    charts = [c for c in MAIN_FIGURE if _present(data, c.metric)]
    width, height, gap = 360, 260, 12
    total = len(charts) * width + (len(charts) - 1) * gap
    body = []
    for i, c in enumerate(charts):
        svg = _chart(data, c)
        # Nested <svg> elements keep each chart's own coordinate system; only the position changes.
        body.append(svg.replace("<svg ", f'<svg x="{i * (width + gap)}" y="0" ', 1))
    style = CSS[CSS.index(".chart text"):CSS.index(".chart .bar.ref")]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {total} {height}" width="{total}" height="{height}" '
            f'font-family="system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif">'
            f'<style>:root {{ --ink:#1d1d1f; --muted:#5f6368; }} .chart {{ background:#fafafa; }} {style}</style>'
            f'<rect width="100%" height="100%" fill="#ffffff"/>{"".join(body)}</svg>')
