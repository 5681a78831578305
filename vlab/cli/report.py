"""The index ``vlab reproduce`` writes: every config's figures, headline metrics and closed-form checks."""

from __future__ import annotations

import html
import json
from pathlib import Path

from vlab.harness.launch import headline_metrics
from vlab.harness.loading import builtin_configs, load_config


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list) and len(v) > 6:
        return f"[{len(v)} values]"
    return str(v)


def run_command(config: str | Path, quick: bool) -> str:
    """The command that reruns one config as the index shows it: ``vlab run X`` for a built-in config (``--quick`` added
    for a quick reproduce)."""
    shipped = {str(path): name for name, path in builtin_configs().items()}
    return f"vlab run {shipped.get(str(config), config)}" + (" --quick" if quick else "")


def _section(entry: dict, quick: bool) -> dict:
    run = Path(entry["run"])
    metrics = _load(run / "metrics.json")
    status = _load(run / "run.json")
    head = {}
    if metrics:
        try:
            cls, _ = load_config(str(entry["config"]), [], quick=quick)
            head = headline_metrics(cls, metrics)
        except Exception:  # the index still lists a config whose experiment no longer loads
            head = {}
    return {
        "name": Path(entry["config"]).stem,
        "command": run_command(entry["config"], quick),
        "run": run,
        "error": entry["error"],
        "skipped": entry.get("skipped"),
        "seconds": entry["seconds"],
        "headline": head,
        "checks": metrics.get("checks", []),
        "figures": [f for f in status.get("figures", []) if (run / f).exists()],
    }


def write_index(root: Path, entries: list[dict], *, quick: bool = False) -> tuple[Path, Path]:
    """Write ``root/index.md`` and ``root/index.html`` (self-contained, opens from disk) and return both paths."""
    sections = [_section(e, quick) for e in entries]
    md = [f"# vlab reproduce{' --quick' if quick else ''}\n"]
    for s in sections:
        md.append(f"## {s['name']}\n\n`{s['command']}` ({s['seconds']:.1f} s)\n")
        if s["error"]:
            md.append(f"**failed:** {s['error']}\n")
        if s["skipped"]:
            md.append(f"**skipped:** {s['skipped']}\n")
        for k, v in s["headline"].items():
            md.append(f"- {k}: {_fmt(v)}")
        if s["checks"]:
            md.append("\n| check | value | reference | tol | ok |\n|---|---|---|---|---|")
            for c in s["checks"]:
                name = c["name"].replace("|", "\\|")
                md.append(f"| {name} | {c['value']:.6g} | {c['reference']:.6g} | {c['tol']:.1g} | "
                          f"{'yes' if c['ok'] else 'NO'} |")
        md.append("")
        for f in s["figures"]:
            md.append(f"![{f}]({s['run'].name}/{f})")
        md.append("")
    md_path = root / "index.md"
    md_path.write_text("\n".join(md) + "\n")

    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>vlab reproduce</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "section{border-top:1px solid #ddd;padding:1em 0}code{background:#f4f4f4;padding:2px 4px}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}"
        ".ok{background:#d8f3dc}.bad{background:#ffd6d6}img{max-width:100%;margin:.5em 0;display:block}"
        ".err{color:#b00020}.skip{color:#8a6d00}</style></head><body>",
        f"<h1>vlab reproduce{' --quick' if quick else ''}</h1><ul>",
    ]
    tag = lambda s: " (failed)" if s["error"] else " (skipped: data not installed)" if s["skipped"] else ""
    parts += [f"<li><a href='#{e(s['name'])}'>{e(s['name'])}</a>{tag(s)}</li>" for s in sections]
    parts.append("</ul>")
    for s in sections:
        parts.append(f"<section id='{e(s['name'])}'><h2>{e(s['name'])}</h2>"
                     f"<p><code>{e(s['command'])}</code> ({s['seconds']:.1f} s)</p>")
        if s["error"]:
            parts.append(f"<p class='err'>failed: {e(s['error'])}</p>")
        if s["skipped"]:
            parts.append(f"<p class='skip'>skipped: {e(s['skipped'])}</p>")
        if s["headline"]:
            parts.append("<table><tr><th>metric</th><th>value</th></tr>")
            parts += [f"<tr><td>{e(k)}</td><td>{e(_fmt(v))}</td></tr>" for k, v in s["headline"].items()]
            parts.append("</table>")
        if s["checks"]:
            parts.append("<table><tr><th>check</th><th>value</th><th>reference</th><th>tol</th></tr>")
            for c in s["checks"]:
                cls = "ok" if c["ok"] else "bad"
                parts.append(f"<tr class='{cls}'><td>{e(c['name'])}</td><td>{c['value']:.6g}</td>"
                             f"<td>{c['reference']:.6g}</td><td>{c['tol']:.1g}</td></tr>")
            parts.append("</table>")
        parts += [f"<img src='{e(s['run'].name)}/{e(f)}' alt='{e(f)}'>" for f in s["figures"]]
        parts.append("</section>")
    parts.append("</body></html>")
    html_path = root / "index.html"
    html_path.write_text("\n".join(parts))
    return md_path, html_path
