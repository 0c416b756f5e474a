"""Self-contained HTML reports of a run folder or a sweep folder.

Every image is embedded as a data URI, so the page is one file that can be
mailed or archived. A small script marks ``<body data-images-loaded>`` once
every image has decoded (the browser test reads it). File names come from
:mod:`warpsdf.io.layout`; statuses are read from JSON into
:class:`~warpsdf.fit.RunStatus` and :class:`~warpsdf.sweep.PointStatus`,
and each has a colour here (its CSS class is ``status-VALUE``).
"""

from __future__ import annotations

import base64
import html
import re
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from warpsdf.errors import InputFileError, OutputError
from warpsdf.fit import RunStatus
from warpsdf.io.files import atomic_file, check_new_file
from warpsdf.io.layout import RunFolder, SweepFolder
from warpsdf.io.reading import read_json, read_text, read_toml
from warpsdf.sweep.summary import SUMMARY_METRICS, PointStatus, SweepSummary

_MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg"}

# every status of a run or a point, by the CSS that shows it
_STATUS_STYLES: dict[str, tuple[StrEnum, ...]] = {
    "color: #1a7f37;": (PointStatus.CONVERGED, RunStatus.FINISHED),
    "color: #b35900;": (PointStatus.NOT_CONVERGED, RunStatus.INTERRUPTED),
    "color: #c62828; font-weight: 600;": (
        PointStatus.DIVERGED, PointStatus.FAILED, RunStatus.DIVERGED, RunStatus.LOST,
    ),
}  # fmt: skip


def _status_class(status: StrEnum) -> str:
    return "status-" + re.sub(r"[^a-z-]", "", status.value.replace(" ", "-"))


def _status_css() -> str:
    rules = []
    for style, statuses in _STATUS_STYLES.items():
        selectors = dict.fromkeys(f".{_status_class(s)}" for s in statuses)
        rules.append(f"{', '.join(selectors)} {{ {style} }}\n")
    return "".join(rules)


_STYLE = (
    """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; background: #fafafa; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #e3e3e3; text-align: right; }
th:first-child, td:first-child { text-align: left; }
"""
    + _status_css()
    + """.gallery { display: flex; flex-wrap: wrap; gap: 0.8rem; }
figure { margin: 0; } figcaption { font-size: 0.85rem; color: #555; text-align: center; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; background: #fff; }
pre { background: #f0f0f0; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
.point { margin-top: 1.5rem; }
"""
)

_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.imagesTotal = String(imgs.length);
  document.body.dataset.imagesLoaded = String(ok.length);
});
"""

_Status = TypeVar("_Status", RunStatus, PointStatus)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _img(path: Path, caption: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{_e(caption)}" '
        f'data-name="{_e(path.name)}"><figcaption>{_e(caption)}</figcaption></figure>'
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def _status(status: RunStatus | PointStatus) -> str:
    return f'<span class="{_status_class(status)}">{_e(status.value)}</span>'


def _parse_status(kind: type[_Status], value: Any, path: Path) -> _Status:
    """A status read from JSON; a one-line error naming the file if unknown."""
    try:
        return kind(value)
    except ValueError:
        raise InputFileError(f"{path}: unknown status {value!r}") from None


def _metrics_table(metrics: dict[str, Any], path: Path) -> str:
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td>"
        + (_status(_parse_status(RunStatus, v, path)) if k == "status" else _e(_fmt(v)))
        + "</td></tr>"
        for k, v in metrics.items()
        if k not in ("reason", "warning") or v
    )
    return f'<table class="metrics"><tr><th>metric</th><th>value</th></tr>{rows}</table>'


def _run_sections(run: RunFolder) -> str:
    h = "h2"
    parts = []
    if run.metrics.is_file():
        metrics = read_json(run.metrics, "run metrics")
        if not isinstance(metrics, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
            got = kind.get(type(metrics), "a number")
            raise InputFileError(f"{run.metrics}: expected a JSON object of metrics, got {got}")
        parts.append(f"<{h}>Metrics</{h}>{_metrics_table(metrics, run.metrics)}")
    parts.append(f"<{h}>Optimisation</{h}>")
    parts.append(
        '<div class="gallery">'
        + _img(run.loss_plot, "loss terms and mask MSE per iteration")
        + _img(run.animation, "prediction | target | error, training view 0")
        + "</div>"
    )
    finals = run.finals()
    if finals:
        parts.append(f'<{h}>Final renders</{h}><div class="gallery">')
        parts += [_img(path, name) for name, path in finals]
        parts.append("</div>")
    return "".join(parts)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}<script>{_SCRIPT}</script></body></html>\n"
    )


def run_report(run: str | Path) -> str:
    """The HTML page of a run folder: metrics, plots, final renders, the scene."""
    folder = RunFolder(run)
    scene_text = read_text(folder.scene, "run scene")
    name = read_toml(folder.scene, "run scene").get("name") or folder.path.name
    body = (
        f"<h1>warpsdf run: {_e(name)}</h1><p>{_e(folder.path.resolve())}</p>"
        + _run_sections(folder)
        + f"<h2>Scene</h2><pre>{_e(scene_text)}</pre>"
    )
    return _page(f"warpsdf run {name}", body)


def _read_summary(folder: SweepFolder) -> SweepSummary:
    data = read_json(folder.summary_json, "sweep summary")
    try:
        return SweepSummary.from_json(data)
    except (ValueError, KeyError, TypeError) as err:
        raise InputFileError(f"{folder.summary_json}: not a sweep summary ({err})") from None


def sweep_report(folder: str | Path) -> str:
    """The HTML page of a sweep folder: the summary table and plots, then
    every point's final render, loss and optimisation GIF."""
    sweep = SweepFolder(folder)
    summary = _read_summary(sweep)
    points = summary.points
    keys = SUMMARY_METRICS
    head = "".join(f"<th>{_e(k)}</th>" for k in ("#", "point", "status", *keys, "seconds"))
    rows = []
    for p in points:
        cells = [p.index, _e(p.label), _status(p.status)]
        cells += [_e(_fmt(p.metrics.get(k))) for k in keys] + [_e(_fmt(p.seconds))]
        reason = ""
        if p.reason:
            span = len(keys) + 3  # every column but the first
            reason = f'<tr><td></td><td colspan="{span}">{_e(p.reason)}</td></tr>'
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" + reason)
    body = [
        f"<h1>warpsdf sweep: {_e(summary.sweep or sweep.path.name)}</h1>",
        f"<p>base scene {_e(summary.base)}; criteria {_e(summary.criteria)}</p>",
        f'<h2>Summary</h2><table class="summary"><tr>{head}</tr>{"".join(rows)}</table>',
        '<div class="gallery">',
        _img(sweep.contact_sheet, "final render of every point"),
        _img(sweep.loss_curves, "loss of every point"),
        "</div>",
    ]
    for p in points:
        run = RunFolder(p.run_dir)
        body.append(
            f'<section class="point"><h2>{p.index:03d} {_e(p.label)} – {_status(p.status)}</h2>'
        )
        if run.path.is_dir():
            body.append(
                '<div class="gallery">'
                + _img(run.final_train, "final render")
                + _img(run.loss_plot, "loss")
                + _img(run.animation, "optimisation")
                + "</div>"
            )
        body.append("</section>")
    return _page(f"warpsdf sweep {summary.sweep}", "".join(body))


def write_report(source: str | Path, out: str | Path, force: bool = False) -> str:
    """Write the report of a run or sweep folder to ``out`` (an existing file
    only with ``force``); returns "run" or "sweep"."""
    source, out = Path(source), Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise OutputError(f"{out}: a report must end in .html")
    check_new_file(out, force)
    if SweepFolder(source).summary_json.is_file():
        text, kind = sweep_report(source), "sweep"
    elif RunFolder(source).is_run():
        text, kind = run_report(source), "run"
    else:
        raise InputFileError(f"{source}: neither a run folder nor a sweep folder")
    with atomic_file(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return kind
