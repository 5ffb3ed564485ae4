"""The simulation's report: the JSON summary (``sbcard simulate --json``) and an HTML page.

``summary(...)`` gives the stable keys scripts rely on: ``seed``, ``population``, ``days``,
``counts`` ({kind: {node: n}}), ``settlement``, ``faults``, ``invariants`` ({name: bool}),
``elapsed_s``, and beside them ``medical``, ``subsidies`` and ``taps_per_hour`` (the
tally's other counts). Everything but ``elapsed_s`` is a function of the seed and options.

``write_html(directory, summary, tally)`` writes ``index.html`` — one self-contained page,
inline SVG charts, no scripts, no external files: taps per hour per region, the settlement
matrix as a heat map, medical spend by region pair, subsidy outcomes, then tables of the
counts, faults and invariants — and ``summary.json`` beside it. The page leaves out the
elapsed time, so the same run gives the same bytes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from sbcard.sim.tally import HOURS, NODES, Tally

REGION_NAMES = {"bj": "北京", "tj": "天津", "he": "河北"}
REGION_COLOURS = {"bj": "#c0392b", "tj": "#2471a3", "he": "#1e8449"}
KIND_NAMES = {
    "apply": "申领 apply", "issue": "制卡 issue", "activate": "启用 activate", "load": "圈存 load",
    "tap": "乘车 tap", "tap_refused": "拒绝 tap refused", "medical_claim": "就医结算 medical claim",
    "medical_refund": "退费 medical refund", "venue_entry": "入馆 venue entry", "library_loan": "借书 library loan",
    "library_return": "还书 library return", "subsidy_paid": "补贴 subsidy paid", "lost": "挂失 lost",
    "replace": "补换 replace", "upload": "上传 upload", "clearing": "清分 clearing",
}
SUMMARY_KEYS = ("seed", "population", "days", "counts", "settlement", "faults", "invariants", "elapsed_s",
                "medical", "subsidies", "taps_per_hour")
INDEX = "index.html"
SUMMARY = "summary.json"


# ----------------------------------------------------------------------------- the summary


def summary(
    seed: int | str,
    population: int,
    days: int,
    tally: Tally,
    settlement: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    invariants: Mapping[str, Any],
    faults: Mapping[str, int] | None,
    elapsed_s: float,
) -> dict[str, Any]:
    """The run's summary with stable keys (see the module doc).

    ``settlement``: a day's ``settlement.day_settlement``, or the list of every day's (added
    up by ``total_settlement``), or any JSON-ready dict with ``matrix`` {payer: {payee: fen}}
    and ``net`` {node: fen}.
    ``invariants``: {name: Result or bool}. ``faults``: {kind: n}; None takes the tally's.
    """
    data = tally.to_json()
    return {
        "seed": seed,
        "population": population,
        "days": days,
        "counts": data["counts"],
        "settlement": _plain(total_settlement(settlement) if isinstance(settlement, (list, tuple))
                             else settlement or {}),
        "faults": dict(sorted((faults if faults is not None else tally.faults).items())),
        "invariants": {name: bool(getattr(v, "ok", v)) for name, v in invariants.items()},
        "elapsed_s": round(float(elapsed_s), 3),
        "medical": data["medical"],
        "subsidies": data["subsidies"],
        "taps_per_hour": data["taps_per_hour"],
    }


def total_settlement(days: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several days' ``day_settlement`` added up (fen).

    ``{"days": [dates], "matrix": {payer: {payee: fen}}, "net": {node: fen}, "operators":
    {party: {kind, node, count, amount_fen, from: {payer: fen}}}, "reconciliation": the last
    day's}`` — the reconciliation is a state (as things stood after the last clearing), not a sum.
    """
    dates: list[str] = []
    matrix: dict[str, dict[str, int]] = {}
    net: dict[str, int] = {}
    operators: dict[str, dict[str, Any]] = {}
    reconciliation: Any = None
    for day in days:
        if day.get("date") is not None:
            dates.append(str(day["date"]))
        for payer, row in (day.get("matrix") or {}).items():
            for payee, fen in row.items():
                matrix.setdefault(payer, {})
                matrix[payer][payee] = matrix[payer].get(payee, 0) + int(fen)
        for node, fen in (day.get("net") or {}).items():
            net[node] = net.get(node, 0) + int(fen)
        for party, info in (day.get("operators") or {}).items():
            total = operators.setdefault(party, {"kind": info.get("kind"), "node": info.get("node"), "count": 0,
                                                 "amount_fen": 0, "from": {}})
            total["count"] += int(info.get("count", 0))
            total["amount_fen"] += int(info.get("amount_fen", 0))
            for payer, fen in (info.get("from") or {}).items():
                total["from"][payer] = total["from"].get(payer, 0) + int(fen)
        if day.get("reconciliation") is not None:
            reconciliation = day["reconciliation"]
    out: dict[str, Any] = {"days": dates, "matrix": _plain(matrix), "net": dict(sorted(net.items())),
                           "operators": _plain(operators)}
    if reconciliation is not None:
        out["reconciliation"] = _plain(reconciliation)
    return out


def dumps(data: Mapping[str, Any]) -> str:
    """JSON with sorted keys, as ``simulate --json`` prints it."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, indent=2)


def _plain(value: Any) -> Any:
    """A JSON-ready copy with sorted keys (dicts) — ints stay ints."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------- the page


def write_html(directory: Path | str, summary: Mapping[str, Any], tally: Tally) -> Path:
    """``directory/index.html`` (and ``summary.json``); returns the page's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / SUMMARY, dumps(summary) + "\n")
    page = directory / INDEX
    _write(page, render_html(summary, tally))
    return page


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def render_html(summary: Mapping[str, Any], tally: Tally) -> str:
    """The page as text (deterministic: no time, no randomness)."""
    data = tally.to_json()
    title = (f"sbcard 京津冀社保卡模拟 — seed {summary.get('seed')}, {summary.get('population'):,} people, "
             f"{summary.get('days')} day{'s' if summary.get('days') != 1 else ''}")
    invariants = summary.get("invariants") or {}
    all_ok = bool(invariants) and all(invariants.values())
    verdict = ("✓ every invariant held" if all_ok else
               "✗ invariants violated: " + ", ".join(k for k, v in sorted(invariants.items()) if not v)
               if invariants else "no invariants checked")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="verdict {"ok" if all_ok else "bad"}">{escape(verdict)}</p>',
        _facts_line(summary, tally),
        '<section><h2>1. 各地每小时刷卡 Taps per hour, by region</h2>',
        _taps_chart(data["taps_per_hour"]),
        "</section>",
        '<section><h2>2. 结算矩阵 Settlement matrix (payer → payee)</h2>',
        _settlement_heatmap(summary.get("settlement") or {}),
        _parties_table((summary.get("settlement") or {}).get("operators") or {}),
        "</section>",
        '<section><h2>3. 异地就医 Medical spend by region pair (insured region → hospital region)</h2>',
        _medical_chart(data["medical"]),
        "</section>",
        '<section><h2>4. 补贴发放 Subsidy outcomes</h2>',
        _subsidy_chart(data["subsidies"]),
        "</section>",
        '<section><h2>交易笔数 Transactions by type and region</h2>',
        _counts_table(tally),
        "</section>",
        '<section><h2>故障注入 Faults injected</h2>',
        _pairs_table(summary.get("faults") or {}, ("fault", "count")),
        "</section>",
        '<section><h2>不变量 Invariants</h2>',
        _invariants_table(invariants),
        "</section>",
        '<p class="small">Generated by <code>sbcard simulate</code>; the same seed and options give the same page. '
        "The run's elapsed time is in summary.json.</p>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


_CSS = """
body{font-family:"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:2em auto;max-width:980px;
color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-weight:bold;padding:.4em .8em;border-radius:4px;display:inline-block}
.ok{background:#e8f6ec;color:#1e6b33}.bad{background:#fdecea;color:#a93226}
.small{color:#666;font-size:.85em}svg{display:block;max-width:100%;height:auto}
svg text{font-family:inherit}
""".strip()


def _facts_line(summary: Mapping[str, Any], tally: Tally) -> str:
    taps = tally.total("tap")
    claims = tally.total("medical_claim")
    issued = tally.total("issue")
    return (f'<p>Seed <b>{escape(str(summary.get("seed")))}</b> · population <b>{summary.get("population"):,}</b> · '
            f'days <b>{summary.get("days")}</b> · cards issued <b>{issued:,}</b> · taps <b>{taps:,}</b> · '
            f'medical claims <b>{claims:,}</b></p>')


# --- numbers and scales ---------------------------------------------------------------------


def yuan(fen: int) -> str:
    """12345 → ¥123.45 (with thousands separators)."""
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def _num(x: float) -> str:
    """A coordinate, fixed to one decimal (the same value prints the same)."""
    return f"{x:.1f}"


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 covering ``top`` (at least one step)."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if top >= 1:
        step = max(step, 1.0)  # counts: whole steps
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _tick_label(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


def _text(x: float, y: float, s: str, *, anchor: str = "middle", size: int = 12, weight: str = "normal",
          fill: str = "#222", extra: str = "") -> str:
    return (f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" font-size="{size}" font-weight="{weight}" '
            f'fill="{fill}"{extra}>{escape(s)}</text>')


def _svg(width: int, height: int, title: str, body: Sequence[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
            f"<title>{escape(title)}</title>" + "".join(body) + "</svg>")


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for i, (label, colour) in enumerate(items):
        xi = x + i * 90
        out.append(f'<rect x="{_num(xi)}" y="{_num(y - 10)}" width="14" height="10" fill="{colour}"/>')
        out.append(_text(xi + 20, y, label, anchor="start"))
    return out


def _axes(left: float, top: float, width: float, height: float, ticks: Sequence[float], y_title: str,
          x_title: str) -> list[str]:
    """Frame, horizontal grid lines with their values, axis titles."""
    top_value = ticks[-1] or 1
    out = []
    for t in ticks:
        y = top + height - height * t / top_value
        out.append(f'<line x1="{_num(left)}" y1="{_num(y)}" x2="{_num(left + width)}" y2="{_num(y)}" '
                   f'stroke="#e3e3e3"/>')
        out.append(_text(left - 6, y + 4, _tick_label(t), anchor="end", size=11))
    out.append(f'<line x1="{_num(left)}" y1="{_num(top)}" x2="{_num(left)}" y2="{_num(top + height)}" stroke="#444"/>')
    out.append(f'<line x1="{_num(left)}" y1="{_num(top + height)}" x2="{_num(left + width)}" '
               f'y2="{_num(top + height)}" stroke="#444"/>')
    out.append(_text(left + width / 2, top + height + 38, x_title, size=12))
    cx, cy = 16, top + height / 2
    out.append(_text(cx, cy, y_title, size=12, extra=f' transform="rotate(-90 {_num(cx)} {_num(cy)})"'))
    return out


# --- chart 1: taps per hour -----------------------------------------------------------------


def _taps_chart(taps: Mapping[str, Sequence[int]]) -> str:
    width, height = 900, 340
    left, top, plot_w, plot_h = 70, 40, 800, 230
    title = "Taps per hour per region (Beijing time)"
    top_value = max((max(h) for h in taps.values() if h), default=0)
    ticks = nice_ticks(top_value)
    body = _axes(left, top, plot_w, plot_h, ticks, "taps 刷卡次数", "hour of day 小时 (北京时间)")
    step = plot_w / HOURS
    for hour in range(HOURS):
        x = left + step * hour + step / 2
        if hour % 2 == 0:
            body.append(_text(x, top + plot_h + 16, f"{hour:02d}", size=11))
    nodes = [n for n in NODES if n in taps]
    bar_w = step * 0.8 / max(len(nodes), 1)
    for i, node in enumerate(nodes):
        for hour, n in enumerate(taps[node]):
            if not n:
                continue
            h = plot_h * n / ticks[-1]
            x = left + step * hour + step * 0.1 + bar_w * i
            body.append(f'<rect x="{_num(x)}" y="{_num(top + plot_h - h)}" width="{_num(bar_w)}" height="{_num(h)}" '
                        f'fill="{REGION_COLOURS[node]}"><title>{escape(REGION_NAMES[node])} {hour:02d}:00 '
                        f'{n:,} taps</title></rect>')
    if not nodes:
        body.append(_text(left + plot_w / 2, top + plot_h / 2, "no taps 无刷卡记录", size=14, fill="#888"))
    body += _legend(left + 10, 24, [(f"{REGION_NAMES[n]} {n}", REGION_COLOURS[n]) for n in NODES])
    totals = ", ".join(f"{REGION_NAMES[n]} {sum(taps.get(n, [])):,}" for n in NODES)
    return _svg(width, height, title, body) + f'<p class="small">Taps in all: {escape(totals)}.</p>'


# --- chart 2: settlement heat map -----------------------------------------------------------


def _heat_colour(fraction: float) -> str:
    """White (0) to deep orange (1)."""
    f = max(0.0, min(1.0, fraction))
    r = round(255 - (255 - 211) * f)
    g = round(255 - (255 - 84) * f)
    b = round(255 - (255 - 0) * f)
    return f"#{r:02x}{g:02x}{b:02x}"


def _settlement_heatmap(settlement: Mapping[str, Any]) -> str:
    matrix = settlement.get("matrix") or {}
    cell_w, cell_h = 170, 64
    left, top = 150, 70
    width, height = left + cell_w * 3 + 190, top + cell_h * 3 + 80
    title = "Settlement matrix: what each payer region owes each payee region"
    values = [int((matrix.get(a) or {}).get(b, 0)) for a in NODES for b in NODES]
    biggest = max((abs(v) for v in values), default=0)
    body = [_text(left + cell_w * 1.5, top - 36, "payee 收款方 (operator's / hospital's region)", size=12,
                  weight="bold"),
            _text(24, top + cell_h * 1.5, "payer 付款方 (issuer / insured)", size=12, weight="bold",
                  extra=f' transform="rotate(-90 24 {_num(top + cell_h * 1.5)})"')]
    for j, payee in enumerate(NODES):
        body.append(_text(left + cell_w * j + cell_w / 2, top - 10, f"{REGION_NAMES[payee]} {payee}", size=13))
    for i, payer in enumerate(NODES):
        body.append(_text(left - 10, top + cell_h * i + cell_h / 2 + 5, f"{REGION_NAMES[payer]} {payer}", anchor="end",
                          size=13))
        for j, payee in enumerate(NODES):
            v = int((matrix.get(payer) or {}).get(payee, 0))
            x, y = left + cell_w * j, top + cell_h * i
            fill = "#f4f4f4" if payer == payee and not v else _heat_colour(abs(v) / biggest if biggest else 0)
            body.append(f'<rect x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" fill="{fill}" stroke="#999">'
                        f'<title>{escape(REGION_NAMES[payer])} → {escape(REGION_NAMES[payee])}: {escape(yuan(v))}'
                        f'</title></rect>')
            dark = biggest and abs(v) / biggest > 0.6
            label = "—" if payer == payee and not v else yuan(v)
            body.append(_text(x + cell_w / 2, y + cell_h / 2 + 5, label, size=13, fill="#fff" if dark else "#222"))
    # the colour scale
    sx, sy = left + cell_w * 3 + 40, top
    for k in range(10):
        body.append(f'<rect x="{sx}" y="{_num(sy + (9 - k) * cell_h * 3 / 10)}" width="18" '
                    f'height="{_num(cell_h * 3 / 10)}" fill="{_heat_colour((k + 0.5) / 10)}"/>')
    body.append(_text(sx + 24, sy + 10, yuan(biggest), anchor="start", size=11))
    body.append(_text(sx + 24, sy + cell_h * 3, "¥0.00", anchor="start", size=11))
    body.append(_text(sx - 4, sy + cell_h * 3 + 22, "colour: amount", anchor="start", size=11))
    net = settlement.get("net") or {}
    net_text = " · ".join(f"{REGION_NAMES[n]} {yuan(int(net.get(n, 0)))}" for n in NODES)
    body.append(_text(left + cell_w * 1.5, top + cell_h * 3 + 30, f"net position 净额 (+ receives): {net_text}",
                      size=12))
    days = settlement.get("days")
    note = f" over {len(days)} day(s)" if isinstance(days, list) else (
        f" for {settlement['date']}" if settlement.get("date") else "")
    return (_svg(width, height, title, body)
            + f'<p class="small">Each cell is what the row\'s region owes the column\'s region{escape(note)} '
              "(transit purchases its cards made on the column's operators, medical claims of its insured at the "
              "column's hospitals); the diagonal is settled within a region.</p>")


# --- chart 3: medical spend by region pair --------------------------------------------------


def _medical_chart(medical: Mapping[str, Mapping[str, Mapping[str, int]]]) -> str:
    pairs = [(a, b, medical.get(a, {}).get(b, {"claims": 0, "fen": 0})) for a in NODES for b in NODES]
    width, bar_h, gap = 900, 22, 8
    left, top = 200, 30
    plot_w = 560
    height = top + (bar_h + gap) * len(pairs) + 60
    title = "Medical spend by region pair"
    biggest = max((int(v["fen"]) for _, _, v in pairs), default=0)
    ticks = nice_ticks(biggest / 100) if biggest > 0 else [0, 1]
    scale = plot_w / (ticks[-1] * 100)
    body = []
    plot_h = (bar_h + gap) * len(pairs)
    for t in ticks:
        x = left + t * 100 * scale
        body.append(f'<line x1="{_num(x)}" y1="{top - 4}" x2="{_num(x)}" y2="{_num(top + plot_h)}" stroke="#e3e3e3"/>')
        body.append(_text(x, top + plot_h + 16, _tick_label(t), size=11))
    body.append(_text(left + plot_w / 2, top + plot_h + 38, "spend 医疗费用 (¥, yuan)", size=12))
    for i, (insured, hospital, v) in enumerate(pairs):
        y = top + i * (bar_h + gap)
        cross = insured != hospital
        body.append(_text(left - 10, y + bar_h / 2 + 5,
                          f"{REGION_NAMES[insured]} → {REGION_NAMES[hospital]}{' 异地' if cross else ''}",
                          anchor="end", size=12))
        w = int(v["fen"]) * scale
        body.append(f'<rect x="{left}" y="{y}" width="{_num(max(w, 0))}" height="{bar_h}" '
                    f'fill="{REGION_COLOURS[insured]}" fill-opacity="{"1" if cross else "0.55"}">'
                    f'<title>{int(v["claims"]):,} claims, {escape(yuan(int(v["fen"])))}</title></rect>')
        claims = int(v["claims"])
        body.append(_text(left + max(w, 0) + 6, y + bar_h / 2 + 5,
                          f"{yuan(int(v['fen']))} · {claims:,} claim{'' if claims == 1 else 's'}", anchor="start",
                          size=11))
    body.append(f'<line x1="{left}" y1="{top - 4}" x2="{left}" y2="{_num(top + plot_h)}" stroke="#444"/>')
    return (_svg(width, height, title, body)
            + '<p class="small">Bars are coloured by the insured region (参保地); the lighter ones are treatment at '
              "home, the darker ones cross-region (异地就医).</p>")


# --- chart 4: subsidy outcomes --------------------------------------------------------------


_OUTCOME_COLOURS = {"paid": "#1e8449", "failed": "#c0392b", "invalid": "#b9770e", "reversed": "#7d3c98"}


def _subsidy_chart(outcomes: Mapping[str, int]) -> str:
    names = sorted(outcomes, key=lambda k: (k not in _OUTCOME_COLOURS, list(_OUTCOME_COLOURS).index(k)
                                            if k in _OUTCOME_COLOURS else 0, k))
    width, height = 900, 300
    left, top, plot_w, plot_h = 70, 30, 780, 200
    title = "Subsidy rows by outcome"
    ticks = nice_ticks(max(outcomes.values(), default=0))
    body = _axes(left, top, plot_w, plot_h, ticks, "rows 笔数", "outcome 结果")
    if not names:
        body.append(_text(left + plot_w / 2, top + plot_h / 2, "no subsidy batch paid 本次未发放补贴", size=14,
                          fill="#888"))
    slot = plot_w / max(len(names), 1)
    bar_w = min(120.0, slot * 0.6)
    for i, name in enumerate(names):
        n = outcomes[name]
        h = plot_h * n / ticks[-1]
        x = left + slot * i + (slot - bar_w) / 2
        body.append(f'<rect x="{_num(x)}" y="{_num(top + plot_h - h)}" width="{_num(bar_w)}" height="{_num(h)}" '
                    f'fill="{_OUTCOME_COLOURS.get(name, "#5d6d7e")}"><title>{escape(name)}: {n:,}</title></rect>')
        body.append(_text(x + bar_w / 2, top + plot_h - h - 5, f"{n:,}", size=11))
        body.append(_text(x + bar_w / 2, top + plot_h + 16, name, size=12))
    return _svg(width, height, title, body)


# --- tables -----------------------------------------------------------------------------------


def _counts_table(tally: Tally) -> str:
    head = "".join(f'<th class="n">{escape(REGION_NAMES[n])} {n}</th>' for n in NODES)
    rows = []
    for kind in tally.kinds():
        cells = "".join(f'<td class="n">{tally.of(kind, n):,}</td>' for n in NODES)
        rows.append(f"<tr><td>{escape(KIND_NAMES.get(kind, kind))}</td>{cells}"
                    f'<td class="n"><b>{tally.total(kind):,}</b></td></tr>')
    if not rows:
        rows.append(f'<tr><td colspan="{len(NODES) + 2}">nothing counted</td></tr>')
    return f'<table><tr><th>type 类型</th>{head}<th class="n">total</th></tr>{"".join(rows)}</table>'


def _parties_table(parties: Mapping[str, Mapping[str, Any]]) -> str:
    """Per operator / hospital: what it is owed, by whom."""
    if not parties:
        return ""
    rows = []
    for party, info in sorted(parties.items(), key=lambda kv: (-int(kv[1].get("amount_fen", 0)), kv[0])):
        node = str(info.get("node", ""))
        payers = sorted((info.get("from") or {}).items())
        paid_by = ", ".join(f"{REGION_NAMES.get(k, k)} {yuan(int(v))}" for k, v in payers)
        rows.append(f"<tr><td>{escape(party)}</td><td>{escape(str(info.get('kind', '')))}</td>"
                    f"<td>{escape(REGION_NAMES.get(node, node))}</td><td class=\"n\">{int(info.get('count', 0)):,}</td>"
                    f"<td class=\"n\">{escape(yuan(int(info.get('amount_fen', 0))))}</td><td>{escape(paid_by)}</td></tr>")
    head = ("<tr><th>operator / hospital 运营单位 / 医院</th><th>kind</th><th>region</th><th class=\"n\">count</th>"
            "<th class=\"n\">owed 应收</th><th>by payer region</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _pairs_table(values: Mapping[str, Any], headers: tuple[str, str]) -> str:
    rows = "".join(f'<tr><td>{escape(str(k))}</td><td class="n">{v:,}</td></tr>' for k, v in sorted(values.items()))
    if not rows:
        rows = '<tr><td colspan="2">none</td></tr>'
    return f'<table><tr><th>{escape(headers[0])}</th><th class="n">{escape(headers[1])}</th></tr>{rows}</table>'


def _invariants_table(invariants: Mapping[str, bool]) -> str:
    order = [k for k in _INVARIANT_NAMES if k in invariants] + sorted(k for k in invariants if k not in
                                                                       _INVARIANT_NAMES)
    rows = "".join(
        f'<tr><td><code>{escape(k)}</code></td><td>{escape(_INVARIANT_NAMES.get(k, ""))}</td>'
        f'<td class="{"ok" if invariants[k] else "bad"}">{"✓ held" if invariants[k] else "✗ violated"}</td></tr>'
        for k in order)
    if not rows:
        rows = '<tr><td colspan="3">none checked</td></tr>'
    return f"<table><tr><th>invariant</th><th>meaning</th><th>result</th></tr>{rows}</table>"


_INVARIANT_NAMES = {
    "money_conserved": "every region's ledger: each transaction sums to 0",
    "hub_conserved": "settlement nets to zero across regions; the hub's record equals the clearing lines",
    "purse_float_reconciled": "each issuer's purse float = balances on its cards + purchases not yet cleared",
    "no_record_cleared_twice": "each purchase record is in one clearing at most",
    "no_debit_without_record": "every purse debit on a card has a terminal record",
    "counters_forward": "each card's offline counters only go forward",
    "blacklist_honoured": "no purchase accepted on a card the terminal's list already named",
}
