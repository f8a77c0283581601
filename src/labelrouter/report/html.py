"""The quality report as one self-contained HTML page: inline CSS, plots as inline SVG (matplotlib, text
kept as text), nothing fetched. Label names are escaped; no message text is in the page."""

from __future__ import annotations

import io
import warnings
from html import escape
from typing import Any

from labelrouter.report.quality import QualityReport, Week

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"]
TOP_LABELS = 8

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
.meta{color:#666}.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.6rem .9rem;min-width:9rem}
.card b{display:block;font-size:1.4rem}.card span{color:#666;font-size:.85rem}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #eee;padding:.25rem .5rem;text-align:right}th{background:#fafafa}
td.l,th.l{text-align:left}.sibling{color:#b15928;font-weight:600}.new{color:#1f78b4;font-weight:600}
figure{margin:1rem 0}figcaption{color:#555;font-size:.9rem}svg{max-width:100%;height:auto}
.empty{color:#888;font-style:italic}
"""


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    with warnings.catch_warnings():  # emoji in label names: matplotlib measures them without the glyph, the
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        fig.savefig(buffer, format="svg", bbox_inches="tight")  # browser draws them (text stays text)
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _plots(weeks: list[Week]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "labelrouter", "font.size": 9})
    x = [w.start for w in weeks]
    plots = {}

    fig, ax = plt.subplots(figsize=(10, 3.4))
    ax.bar(x, [w.labeled for w in weeks], width=5, color="#c6d7ea", label="messages labeled")
    ax.set_ylabel("messages labeled")
    right = ax.twinx()
    right.plot(x, [w.coverage for w in weeks], color=PALETTE[0], marker=".", label="coverage")
    right.plot(x, [None if w.correction_rate is None else 1 - w.correction_rate for w in weeks], color=PALETTE[2],
               marker=".", label="user-visible accuracy")
    right.set_ylim(0, 1.02)
    right.set_ylabel("share of labeled mail")
    for w in weeks:
        if w.new_models:
            ax.axvline(w.start, color="#999", linestyle=":", linewidth=1)
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    names = ax.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    right.legend(handles, names, loc="upper left", bbox_to_anchor=(1.07, 1.0), fontsize=7, frameon=False)
    ax.set_title("Volume, coverage and the accuracy users see, per week (dotted: a new model starts labeling)")
    fig.autofmt_xdate()
    plots["volume"] = _svg(fig)

    fig, ax = plt.subplots(figsize=(10, 2.4))
    ax.plot(x, [w.drift for w in weeks], color=PALETTE[3], marker=".")
    ax.set_ylim(0, 1)
    ax.set_ylabel("JS divergence")
    ax.set_title("Drift of the predicted label distribution from the week before (0: same, 1: disjoint)")
    fig.autofmt_xdate()
    plots["drift"] = _svg(fig)

    totals: dict[str, int] = {}
    for w in weeks:
        for label, n in w.labels.items():
            totals[label] = totals.get(label, 0) + n
    top = sorted(totals, key=lambda n: -totals[n])[:TOP_LABELS]
    fig, ax = plt.subplots(figsize=(10, 3.4))
    bottom = [0.0] * len(weeks)
    series = [(label, [w.labels.get(label, 0) / w.labeled if w.labeled else 0 for w in weeks]) for label in top]
    series.append(("all other labels", [sum(n for lb, n in w.labels.items() if lb not in top) / w.labeled
                                        if w.labeled else 0 for w in weeks]))
    for i, (label, shares) in enumerate(series):
        ax.bar(x, shares, width=5, bottom=bottom, color=PALETTE[i % len(PALETTE)] if i < len(top) else "#ccc",
               label=label)
        bottom = [b + s for b, s in zip(bottom, shares, strict=True)]
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of the week's labels")
    ax.set_title(f"What was predicted: the {len(top)} most used labels' shares per week")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    fig.autofmt_xdate()
    plots["labels"] = _svg(fig)
    return plots


def render_html(report: QualityReport) -> str:
    t = report.totals
    by = "the week the mail arrived (its Date header)" if report.by == "arrived" else "the week it was labeled"
    cards = [
        (f"{t['labeled']:,}", "messages labeled"), (_pct(t["coverage"]), "coverage (a real label)"),
        (_pct(None if t["correction_rate"] is None else 1 - t["correction_rate"]), "user-visible accuracy"),
        (_pct(t["correction_rate"]), "corrected by the user"), (str(t["promotions"]), "models promoted"),
        (f"{t['failed']:,}", "failed (recorded)"),
    ]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>labelrouter quality report</title>", f"<style>{CSS}</style></head><body>",
        "<h1>labelrouter quality report</h1>",
        f'<p class="meta" id="meta">Store: {escape(report.source)} · generated {report.generated_at:%Y-%m-%d %H:%M} UTC · '
        f"{t['weeks']} weeks, each message counted in {by}"
        + (f" · {t['undated']} without any date left out" if t["undated"] else "") + "</p>",
        '<section id="summary" class="cards">',
        *(f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for v, k in cards),
        "</section>",
    ]
    if not report.weeks:
        parts.append('<p class="empty" id="nothing">Nothing labeled yet: run <code>labelrouter run</code> first.</p>')
    else:
        plots = _plots(report.weeks)
        captions = {
            "volume": "Bars: messages labeled. Coverage: the share given a real label rather than the fallback. "
                      "User-visible accuracy: 1 − the share the user corrected or rejected; until a sync has read "
                      "a week's mail back (the weeks table's 'read back'), it counts every label as right.",
            "drift": "A jump means this week's mail was labeled differently from last week's: new kinds of mail, "
                     "or a new model.",
            "labels": "Each bar is one week's predictions.",
        }
        parts.append('<section id="plots"><h2>Week by week</h2>')
        parts += [f'<figure id="plot-{k}">{svg}<figcaption>{escape(captions[k])}</figcaption></figure>'
                  for k, svg in plots.items()]
        parts.append("</section>")
        parts += _weeks_table(report.weeks)
    parts += _pairs_table(report)
    parts += _models_table(report)
    parts.append("</body></html>")
    return "\n".join(parts)


def _weeks_table(weeks: list[Week]) -> list[str]:
    rows = ['<section id="weeks"><h2>Weeks</h2><table id="weeks-table"><thead><tr><th class="l">week</th>'
            "<th>labeled</th><th>coverage</th><th>read back</th><th>corrected</th><th>user-visible accuracy</th><th>drift</th>"
            '<th>failed</th><th>shadow</th><th class="l">models (new in bold)</th></tr></thead><tbody>']
    for w in reversed(weeks):
        models = ", ".join(f'<span class="new">{escape(v)}</span>' if v in w.new_models else escape(v)
                           for v, _ in w.models.most_common())
        accuracy = None if w.correction_rate is None else 1 - w.correction_rate
        rows.append(f'<tr><td class="l">{w.name}</td><td>{w.labeled}</td><td>{_pct(w.coverage)}</td>'
                    f"<td>{_pct(w.read_back_share, 0)}</td><td>{w.corrected + w.rejected}</td><td>{_pct(accuracy)}</td>"
                    f"<td>{'–' if w.drift is None else f'{w.drift:.3f}'}</td><td>{w.failed}</td><td>{w.shadow}</td>"
                    f'<td class="l">{models}</td></tr>')
    rows.append("</tbody></table></section>")
    return rows


def _pairs_table(report: QualityReport) -> list[str]:
    t = report.totals
    rows = ['<section id="pairs"><h2>Most-corrected label pairs</h2>']
    if not report.pairs:
        rows.append('<p class="empty">No message moved from one of our labels to another yet.</p>')
    else:
        rows.append(f"<p>{t['sibling_corrections']} of {t['label_corrections']} corrections from one label to another "
                    f"({_pct(t['sibling_corrections'] / t['label_corrections'])}) were between siblings (labels under "
                    "one parent): the right branch, the wrong leaf.</p>")
        rows.append('<table id="pairs-table"><thead><tr><th class="l">we labeled</th><th class="l">the user filed under</th>'
                    '<th>corrections</th><th class="l">sibling confusion</th></tr></thead><tbody>')
        for p in report.pairs:
            flag = f'<span class="sibling">yes (under {escape(p.parent or "")})</span>' if p.sibling else ""
            rows.append(f'<tr><td class="l">{escape(p.ours)}</td><td class="l">{escape(p.theirs)}</td><td>{p.count}</td>'
                        f'<td class="l">{flag}</td></tr>')
        rows.append("</tbody></table>")
    if report.from_fallback:
        rows.append(f"<h3>Filed by the user out of the fallback ({t['fallback_corrections']})</h3>"
                    "<p>Mail we were not sure of, and where it belonged: labels that keep appearing here want "
                    "more examples or a clearer description.</p>")
        rows.append('<table id="fallback-table"><thead><tr><th class="l">the user filed under</th><th>messages</th>'
                    "</tr></thead><tbody>")
        rows += [f'<tr><td class="l">{escape(label)}</td><td>{n}</td></tr>' for label, n in report.from_fallback]
        rows.append("</tbody></table>")
    rows.append("</section>")
    return rows


def _models_table(report: QualityReport) -> list[str]:
    rows = ['<section id="models"><h2>Models</h2>']
    if not report.models:
        return [*rows, '<p class="empty">No model trained yet: the cold-start head (1.0 for every label) labels.</p>'
                "</section>"]
    rows.append('<table id="models-table"><thead><tr><th class="l">version</th><th class="l">created</th>'
                '<th class="l">promoted</th><th>validation top-1</th><th>training examples</th>'
                '<th class="l">first labeled mail of</th></tr></thead><tbody>')
    for m in report.models:
        state = "current" if m["current"] else "yes" if m["promoted"] else "no"
        if m["error"]:
            state = f"damaged: {m['error']}"
        top1 = f"{m['top1']:.3f}" if isinstance(m["top1"], float) else "–"
        first = m["first_week"].isoformat() if m["first_week"] else "–"
        rows.append(f'<tr><td class="l">{escape(m["version"])}</td><td class="l">{escape(str(m["created_at"] or ""))[:19]}</td>'
                    f'<td class="l">{escape(state)}</td><td>{top1}</td><td>{escape(str(m["n_train"] or "–"))}</td>'
                    f'<td class="l">{first}</td></tr>')
    rows.append("</tbody></table></section>")
    return rows
