"""Self-contained HTML reports of a run folder or a sweep folder.

Every image is embedded as a data URI, so the page is one file that can be
mailed or archived. A small script marks ``<body data-images-loaded>`` once
every image has decoded (the browser test reads it).
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

from warpsdf.errors import InputFileError, OutputError
from warpsdf.io.files import atomic_file, read_json
from warpsdf.run import is_run_folder
from warpsdf.sweep import SUMMARY_METRICS

_MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg"}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #222; background: #fafafa; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #e3e3e3; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.status-converged, .status-finished { color: #1a7f37; }
.status-not-converged, .status-interrupted { color: #b35900; }
.status-diverged, .status-failed { color: #c62828; font-weight: 600; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.8rem; }
figure { margin: 0; } figcaption { font-size: 0.85rem; color: #555; text-align: center; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; background: #fff; }
pre { background: #f0f0f0; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
.point { margin-top: 1.5rem; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.imagesTotal = String(imgs.length);
  document.body.dataset.imagesLoaded = String(ok.length);
});
"""


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


def _status(value: str) -> str:
    cls = "status-" + re.sub(r"[^a-z-]", "", str(value).replace(" ", "-"))
    return f'<span class="{cls}">{_e(value)}</span>'


def _metrics_table(metrics: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{_status(v) if k == 'status' else _e(_fmt(v))}</td></tr>"
        for k, v in metrics.items()
        if k != "reason" or v
    )
    return f'<table class="metrics"><tr><th>metric</th><th>value</th></tr>{rows}</table>'


def _run_sections(run: Path) -> str:
    h = "h2"
    parts = []
    metrics_path = run / "metrics.json"
    if metrics_path.is_file():
        metrics = _read_json(metrics_path)
        parts.append(f"<{h}>Metrics</{h}>{_metrics_table(metrics)}")
    parts.append(f"<{h}>Optimisation</{h}>")
    parts.append(
        '<div class="gallery">'
        + _img(run / "loss.png", "loss terms and mask MSE per iteration")
        + _img(run / "optimization.gif", "prediction | target | error, training view 0")
        + "</div>"
    )
    finals = sorted(run.glob("final_*.png"))
    if finals:
        parts.append(f'<{h}>Final renders</{h}><div class="gallery">')
        parts += [_img(f, f.stem.removeprefix("final_")) for f in finals]
        parts.append("</div>")
    return "".join(parts)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}<script>{_SCRIPT}</script></body></html>\n"
    )


def run_report(run: Path) -> str:
    scene_text = (run / "scene.toml").read_text(encoding="utf-8")
    name = run.name
    for line in scene_text.splitlines():
        if line.startswith("name = "):
            name = json.loads(line.split("=", 1)[1].strip())
            break
    body = (
        f"<h1>warpsdf run: {_e(name)}</h1><p>{_e(run.resolve())}</p>"
        + _run_sections(run)
        + f"<h2>Scene</h2><pre>{_e(scene_text)}</pre>"
    )
    return _page(f"warpsdf run {name}", body)


def sweep_report(folder: Path) -> str:
    summary = _read_json(folder / "summary.json")
    points = summary.get("points", [])
    keys = SUMMARY_METRICS
    head = "".join(f"<th>{_e(k)}</th>" for k in ("#", "point", "status", *keys, "seconds"))
    rows = []
    for p in points:
        metrics = p.get("metrics", {})
        cells = [p["index"], _e(p["label"]), _status(p["status"])]
        cells += [_e(_fmt(metrics.get(k))) for k in keys] + [_e(_fmt(p.get("seconds")))]
        reason = ""
        if p.get("reason"):
            span = len(keys) + 3  # every column but the first
            reason = f'<tr><td></td><td colspan="{span}">{_e(p["reason"])}</td></tr>'
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" + reason)
    body = [
        f"<h1>warpsdf sweep: {_e(summary.get('sweep', folder.name))}</h1>",
        f"<p>base scene {_e(summary.get('base', ''))}; "
        f"criteria {_e(summary.get('criteria', {}))}</p>",
        f'<h2>Summary</h2><table class="summary"><tr>{head}</tr>{"".join(rows)}</table>',
        '<div class="gallery">',
        _img(folder / "contact_sheet.png", "final render of every point"),
        _img(folder / "loss_curves.png", "loss of every point"),
        "</div>",
    ]
    for p in points:
        run = Path(p.get("run_dir", ""))
        body.append(
            f'<section class="point"><h2>{p["index"]:03d} {_e(p["label"])} – '
            f"{_status(p['status'])}</h2>"
        )
        if run.is_dir():
            body.append(
                '<div class="gallery">'
                + _img(run / "final_train.png", "final render")
                + _img(run / "loss.png", "loss")
                + _img(run / "optimization.gif", "optimisation")
                + "</div>"
            )
        body.append("</section>")
    return _page(f"warpsdf sweep {summary.get('sweep', '')}", "".join(body))


def write_report(source: str | Path, out: str | Path) -> str:
    """Write the report of a run or sweep folder to ``out``; returns "run" or "sweep"."""
    source, out = Path(source), Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise OutputError(f"{out}: a report must end in .html")
    if (source / "summary.json").is_file():
        text, kind = sweep_report(source), "sweep"
    elif is_run_folder(source):
        text, kind = run_report(source), "run"
    else:
        raise InputFileError(f"{source}: neither a run folder nor a sweep folder")
    with atomic_file(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return kind


def _read_json(path: Path) -> Any:
    return read_json(path, "file")
