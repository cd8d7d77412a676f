"""The Backups page: one self-contained HTML file (inline CSS and SVG, no script, no CDN).

`render` turns BackupFacts into the page. Every text from outside (reasons, file names,
error messages, actors) is masked with the command's Masker and then HTML-escaped, in that
order (a secret is recognised before escaping could change its spelling). The charts have
text alternatives (``<title>``, ``aria-label`` and a table of the same facts), the marks
differ in shape as well as colour, and ``@media print`` lays the page out for A4.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from guard.backups import format_age
from guard.config import format_duration
from guard.report.backup_facts import BackupFacts, DrillFact, Gap, RunFact
from guard.report.model import RestorePlan
from guard.report.svg import esc, gauge, legend_mark, shape, stacked_bar, titled, trend

Mask = Callable[[str], str]

# What each mark means, in the legend and in the timeline: (shape, css class, label).
BACKUP_MARKS = {
    "automated": ("circle", "auto", "automated backup"),
    "manual": ("square", "manual", "manual backup / snapshot"),
    "failed": ("cross", "failed", "failed backup"),
}
RUN_MARKS = {
    "ok": ("triangle", "ok", "run applied (exit 0)"),
    "failed": ("triangle-down", "bad", "run failed, rolled back (exit 1)"),
    "changed": ("diamond", "changed", "run failed after a commit / unknown (exit 4)"),
    "blocked": ("ring", "blocked", "run blocked before any change (exit 2/3)"),
    "running": ("diamond", "changed", "run never finished"),
}
WIDTH, HEIGHT, LEFT, RIGHT = 960, 190, 110, 20
BACKUP_Y, RUN_Y = 62, 132

CSS = """
:root{--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--auto:#0969da;--manual:#8250df;--ink:#1f2328;--muted:#59636e;--line:#d1d9e0}
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);margin:0;padding:24px;max-width:1040px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:16px;margin:0 0 6px}.muted{color:var(--muted)}code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
.verdict{display:inline-block;font-weight:700;padding:2px 10px;border:2px solid currentColor;border-radius:4px}
.good{color:var(--ok)}.poor{color:var(--bad)}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:8px 0}.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:150px}
.card .n{font-size:26px;font-weight:700;display:block}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:13px;color:var(--muted)}
.auto{fill:var(--auto)}.manual{fill:var(--manual)}.bar rect.manual{fill:url(#dots)}.failed,.bad{fill:var(--bad);stroke:var(--bad)}.ok{fill:var(--ok)}
.changed{fill:var(--warn)}.blocked{fill:none;stroke:var(--muted);stroke-width:2}.hollow{fill:#fff}
.stroke{stroke-width:2.5;fill:none}.pass{fill:var(--ok)}.fail{stroke:var(--bad);fill:none}
.gap{fill:url(#hatch);stroke:var(--bad);stroke-width:1.5}.gap-text{fill:var(--bad);font-size:12px;font-weight:700}
.axis{stroke:var(--muted);stroke-width:1}.grid{stroke:var(--line)}.tick{font-size:11px;fill:var(--muted)}
.lane{font-size:12px;fill:var(--ink);font-weight:600}.trend-line{fill:none;stroke:var(--auto);stroke-width:2}
.bar-text{font-size:12px;fill:#fff;font-weight:700}.empty{fill:var(--line)}
.legend{display:flex;flex-wrap:wrap;gap:6px 18px;font-size:13px;margin:4px 0;padding:0;list-style:none}
.legend li{display:flex;align-items:center;gap:5px}svg.mark{flex:none}
.run{border:1px solid var(--line);border-left:6px solid var(--line);border-radius:6px;padding:8px 12px;margin:10px 0}
.run.o-ok{border-left-color:var(--ok)}.run.o-failed{border-left-color:var(--bad)}.run.o-changed,.run.o-running{border-left-color:var(--warn)}
.tag{font-weight:700}.timeline{max-width:100%;height:auto}summary{cursor:pointer;font-weight:600}
@media print{@page{size:A4;margin:14mm}body{padding:0;max-width:none;font-size:11pt}
 .timeline{width:100%}.run{break-inside:avoid}h2{break-after:avoid}a{color:inherit;text-decoration:none}
 details.plan::details-content{content-visibility:visible;display:contents}}
"""

DEFS = ('<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>'
        '<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="6" height="6" fill="#ffebe9"/><line x1="0" y1="0" x2="0" y2="6" stroke="#cf222e" '
        'stroke-width="2"/></pattern>'
        '<pattern id="dots" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" '
        'fill="#8250df"/><circle cx="3" cy="3" r="1.3" fill="#fff"/></pattern></defs></svg>')


def when(moment: dt.datetime | None) -> str:
    """UTC, to the minute: 2026-11-30 05:49 UTC."""
    if moment is None:
        return "never"
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def anchor(run_id: str) -> str:
    """The id of a run's section on the page (run ids are guard's, but never trusted)."""
    return "run-" + re.sub(r"[^A-Za-z0-9_-]", "-", run_id)


class _Text:
    """Masks then escapes (``t(x)``); ``t.mask(x)`` only masks, for helpers that escape."""

    def __init__(self, mask: Mask) -> None:
        self.mask = mask

    def __call__(self, text: object) -> str:
        return esc(self.mask(str(text)))


def render(facts: BackupFacts, mask: Mask) -> str:
    """The whole page as one HTML document (str)."""
    t = _Text(mask)
    body = [
        _header(facts, t), _stats(facts, t), _timeline(facts, t), _drills(facts.drills, t),
        _runs(facts.runs, t),
    ]
    notes = "".join(f"<li>{t(note)}</li>" for note in facts.notes)
    if notes:
        body.append(f'<section aria-labelledby="notes-h"><h2 id="notes-h">Not shown</h2><ul>{notes}</ul></section>')
    page = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Backups: {t(facts.table)} ({when(facts.now)})</title><style>{CSS}</style></head>"
            f"<body>{DEFS}<main>{''.join(body)}</main>"
            f'<footer class="muted"><p>Written by migration-guard at {when(facts.now)} (the database '
            "server's clock). Secrets are masked.</p></footer></body></html>\n")
    return page


def _header(facts: BackupFacts, t: _Text) -> str:
    state = ('<span class="verdict good" id="verdict">Backups confirmed</span>' if facts.ok
             else '<span class="verdict poor" id="verdict">Backups NOT confirmed</span>')
    return (f"<header><h1>Backups</h1><p>{state} <span class=\"muted\">require {t(facts.require)} of "
            f"{len(facts.providers)} provider(s); max_age {t(format_duration(facts.max_age_seconds))}; "
            f"backup log {t(facts.table)}</span></p></header>")


def _stats(facts: BackupFacts, t: _Text) -> str:
    out = ['<section aria-labelledby="stats-h"><h2 id="stats-h">Backup log statistics</h2>']
    stats = facts.stats
    if stats is None:
        out.append(f"<p>get_backup_stats() could not be read: {t(facts.stats_error or 'unknown error')}</p>")
    else:
        total, auto, manual = (int(stats.get(k) or 0) for k in ("total_backups", "automated_backups", "manual_backups"))
        out.append('<div class="cards">')
        for key, label, value in (("total_backups", "total logged", total), ("automated_backups", "automated", auto),
                                  ("manual_backups", "manual", manual)):
            out.append(f'<div class="card"><span class="n" data-stat="{key}">{value}</span>{label}</div>')
        out.append("</div>")
        out.append(stacked_bar([("automated", auto, "auto"), ("manual", manual, "manual")],
                               label=f"{auto} automated and {manual} manual of {total} backups logged"))
    out.append(_last_automated(facts, t))
    out.append(_providers(facts, t))
    out.append("</section>")
    return "".join(out)


def _last_automated(facts: BackupFacts, t: _Text) -> str:
    last = facts.last_automated
    limit = format_duration(facts.max_age_seconds)
    if last is None:
        return f'<p id="last-automated">Last completed automated backup: <b>none logged</b> (max_age {t(limit)}).</p>'
    age = (facts.now - last).total_seconds()
    if age <= -1:  # dated ahead of the server's clock: the provider's verdict says whether it counts
        from guard.backups import FUTURE_SLACK

        counted = "clock skew, counted" if age >= -FUTURE_SLACK else "ahead of the database server's clock, not counted"
        return (f'<p id="last-automated">Last completed automated backup: <b>{when(last)}</b>, '
                f'<span class="{"good" if age >= -FUTURE_SLACK else "poor"} tag">dated {t(format_age(age))}, '
                f"{counted}</span> (max_age {t(limit)}).</p>")
    fresh = age <= facts.max_age_seconds
    verdict = "within max_age" if fresh else "OLDER than max_age"
    bar = gauge(age, facts.max_age_seconds, label=f"age {format_duration(age)} against max_age {limit}")
    return (f'<p id="last-automated">Last completed automated backup: <b>{when(last)}</b>, '
            f'<span class="{"good" if fresh else "poor"} tag">{t(format_duration(age))} ago, {verdict}</span> '
            f"(max_age {t(limit)}).</p>{bar}")


def _providers(facts: BackupFacts, t: _Text) -> str:
    rows = []
    for p in facts.providers:
        pitr = p.pitr or {}
        window = (f"{t(pitr.get('earliest') or '?')} to {t(pitr.get('latest') or '?')}" if pitr else "none")
        age = format_age(p.age_seconds) if p.age_seconds is not None else "-"
        css = "good" if p.status == "ok" else "poor"
        rows.append(f'<tr><td>{t(p.provider)}</td><td class="{css} tag">{t(p.status)}</td>'
                    f"<td>{t(p.newest_backup or '-')}</td><td>{t(age)}</td><td>{window}</td>"
                    f"<td>{t(p.message)}</td></tr>")
    if not rows:
        rows.append('<tr><td colspan="6">No backup provider is configured.</td></tr>')
    return ('<h3>Providers</h3><table id="providers"><thead><tr><th scope="col">provider</th><th scope="col">verdict</th>'
            '<th scope="col">newest backup</th><th scope="col">age</th><th scope="col">PITR window</th>'
            f'<th scope="col">detail</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _x(facts: BackupFacts, moment: dt.datetime) -> float:
    span = (facts.now - facts.window_start).total_seconds() or 1.0
    share = (moment - facts.window_start).total_seconds() / span
    return LEFT + max(0.0, min(1.0, share)) * (WIDTH - LEFT - RIGHT)


def _axis(facts: BackupFacts) -> list[str]:
    out = [f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - 28}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - 28}"/>',
           f'<text class="lane" x="8" y="{BACKUP_Y + 4}">Backups</text>',
           f'<text class="lane" x="8" y="{RUN_Y + 4}">Guarded runs</text>']
    day = facts.window_start.astimezone(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= facts.now:
        if day >= facts.window_start:
            x = _x(facts, day)
            out.append(f'<line class="grid" x1="{x:.1f}" y1="30" x2="{x:.1f}" y2="{HEIGHT - 28}"/>')
            if day.day % 5 == 1 or day.day == 1:
                out.append(f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 12}" text-anchor="middle">{day:%b %d}</text>')
        day += dt.timedelta(days=1)
    return out


def _timeline(facts: BackupFacts, t: _Text) -> str:
    listed = {run.run_id for run in facts.runs[:20]}
    parts = [*_axis(facts)]
    for gap in facts.gaps:
        x1, x2 = _x(facts, gap.start), _x(facts, gap.end)
        text = _gap_text(gap)
        parts.append(f'<g class="gap-mark" data-gap-start="{gap.start.isoformat()}"><title>{t(text)}</title>'
                     f'<rect class="gap" x="{x1:.1f}" y="{BACKUP_Y - 18}" width="{max(x2 - x1, 2):.1f}" height="36"/>'
                     f'<text class="gap-text" x="{x1 + 2:.1f}" y="{BACKUP_Y - 22}">gap {t(format_duration(gap.seconds))}</text></g>')
    for entry in facts.entries:
        kind, css, label = BACKUP_MARKS[entry.mark]
        title = f"{label}, {when(entry.created_at)}: {entry.reason}" + (f" ({entry.file})" if entry.file else "")
        parts.append(titled(shape(kind, _x(facts, entry.created_at), BACKUP_Y, 6, css), t.mask(title)))
    for run in facts.runs:
        if run.started_at < facts.window_start:
            continue
        kind, css, label = RUN_MARKS[run.outcome]
        title = f"{label}: run {run.run_id}, {when(run.started_at)}"
        target = anchor(run.run_id) + ("-plan" if run.plan is not None else "")
        href = f"#{target}" if run.run_id in listed else None
        parts.append(titled(shape(kind, _x(facts, run.started_at), RUN_Y, 7, css), t.mask(title), href=href))
    summary = _timeline_summary(facts)
    svg = (f'<svg class="timeline" role="group" aria-labelledby="tl-title" aria-describedby="tl-desc" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}"><title id="tl-title">Backups and guarded runs, last '
           f'{(facts.now - facts.window_start).days} days</title><desc id="tl-desc">{t(summary)}</desc>'
           f"{''.join(parts)}</svg>")
    legend = "".join(f"<li>{legend_mark(k, c)}{esc(label)}</li>" for k, c, label in
                     [*BACKUP_MARKS.values(), *list(RUN_MARKS.values())[:4]])
    gaps = "".join(f'<li class="gap-item">{t(_gap_text(g))}</li>' for g in facts.gaps)
    gap_list = f'<ul id="gaps">{gaps}</ul>' if gaps else '<p id="gaps">No gap longer than max_age.</p>'
    return (f'<section aria-labelledby="tl-h"><h2 id="tl-h">Last {(facts.now - facts.window_start).days} days</h2>'
            f'<ul class="legend">{legend}<li><svg class="mark" width="14" height="14" aria-hidden="true">'
            f'<rect class="gap" width="14" height="14"/></svg>gap longer than max_age</li></ul>'
            f"{svg}<p>{t(summary)}</p><h3>Gaps</h3>{gap_list}{_timeline_table(facts, t)}</section>")


def _gap_text(gap: Gap) -> str:
    until = "now (ongoing)" if gap.ongoing else when(gap.end)
    return f"No completed automated backup for {format_duration(gap.seconds)}: from {when(gap.start)} to {until}"


def _timeline_summary(facts: BackupFacts) -> str:
    counts = {m: sum(e.mark == m for e in facts.entries) for m in BACKUP_MARKS}
    runs = [r for r in facts.runs if r.started_at >= facts.window_start]
    by_outcome = {o: sum(r.outcome == o for r in runs) for o in RUN_MARKS}
    runs_text = ", ".join(f"{n} {o}" for o, n in by_outcome.items() if n) or "none"
    return (f"{counts['automated']} automated, {counts['manual']} manual and {counts['failed']} failed backups; "
            f"{len(facts.gaps)} gap(s) longer than max_age; {len(runs)} guarded run(s): {runs_text}.")


def _timeline_table(facts: BackupFacts, t: _Text) -> str:
    rows = []
    for entry in reversed(facts.entries):
        _shape, _css, label = BACKUP_MARKS[entry.mark]
        rows.append(f"<tr><td>{when(entry.created_at)}</td><td>{legend_mark(_shape, _css)} {esc(label)}</td>"
                    f"<td>{t(entry.method or '')}</td><td>{t(entry.reason)}</td><td>{t(entry.file or '')}</td>"
                    f"<td>{t(entry.created_by)}</td></tr>")
    return ("<details><summary>The timeline's backups as a table</summary><table id=\"entries\"><thead><tr>"
            '<th scope="col">when</th><th scope="col">kind</th><th scope="col">method</th><th scope="col">reason</th>'
            f'<th scope="col">file</th><th scope="col">by</th></tr></thead><tbody>{"".join(rows)}</tbody></table></details>')


def _drills(drills: list[DrillFact], t: _Text) -> str:
    head = '<section aria-labelledby="drills-h"><h2 id="drills-h">Restore drills</h2>'
    if not drills:
        return head + '<p id="drills">No restore drill recorded yet: run <code>guard drill</code>.</p></section>'
    points = [(f"{when(d.finished_at)}: {'passed' if d.ok else 'FAILED'}"
               + (f", restore {d.restore_seconds:.1f}s" if d.restore_seconds is not None else ""),
               d.restore_seconds, d.ok) for d in drills]
    chart = trend([(t.mask(n), v, ok) for n, v, ok in points],
                  label=f"Restore time of the last {len(drills)} drill(s), oldest first")
    rows = []
    for d in reversed(drills):
        seconds = f"{d.restore_seconds:.1f} s" if d.restore_seconds is not None else "-"
        verdict = ('<span class="good tag">pass</span>' if d.ok
                   else f'<span class="poor tag">FAIL</span> {t(d.reason or "")}')
        rows.append(f"<tr><td>{when(d.finished_at)}</td><td>{t(d.snapshot)}</td><td>{seconds}</td><td>{verdict}</td></tr>")
    return (f"{head}{chart}<table id=\"drills\"><thead><tr><th scope=\"col\">date</th><th scope=\"col\">snapshot</th>"
            f'<th scope="col">restore time</th><th scope="col">result</th></tr></thead><tbody>{"".join(rows)}'
            "</tbody></table></section>")


def _runs(runs: list[RunFact], t: _Text) -> str:
    head = '<section aria-labelledby="runs-h"><h2 id="runs-h">The 20 most recent guarded runs</h2>'
    if not runs:
        return head + "<p>No guarded run in guard's journal (guard.runs) yet.</p></section>"
    return head + "".join(_run(run, t) for run in runs[:20]) + "</section>"


def _run(run: RunFact, t: _Text) -> str:
    kind, css, label = RUN_MARKS[run.outcome]
    target = run.restore_target or {}
    target_text = (f"{t(target.get('timestamp'))} (unix {t(target.get('unix'))}"
                   + (f", LSN {t(target.get('lsn'))}" if target.get("lsn") else "") + ")") if target else "none (nothing changed)"
    committed = ", ".join(run.committed) or "none"
    pending = ", ".join(run.pending) or "none"
    plan = _plan(run.plan, run.run_id, t) if run.plan is not None else "<p class=\"muted\">No restore plan: none needed.</p>"
    exit_text = "never finished" if run.finished_at is None else f"exit {run.exit_code}"
    return (f'<article class="run o-{run.outcome}" id="{anchor(run.run_id)}" data-outcome="{run.outcome}">'
            f"<h3>{legend_mark(kind, css)} {esc(label)}: <code>{t(run.run_id)}</code></h3>"
            f"<p>{when(run.started_at)}, {t(run.command)}, {t(run.status)} ({exit_text}); by {t(run.actor or '?')}"
            + (f"; reason: {t(run.reason)}" if run.reason else "") + "</p>"
            + (f"<p>{t(run.message)}</p>" if run.message else "")
            + f"<p>Versions pending: {t(pending)}; committed: {t(committed)}. Restore target: {target_text}.</p>"
            f"{plan}</article>")


def _plan(plan: RestorePlan, run_id: str, t: _Text) -> str:
    steps = []
    for step in plan.steps:
        commands = "".join(f"<pre><code>{t(c)}</code></pre>" for c in step.commands)
        steps.append(f"<li><b>{t(step.title)}</b><p>{t(step.text)}</p>{commands}</li>")
    support = ""
    if plan.support:
        items = "".join(f"<li>{t(k)}: {t(', '.join(map(str, v)) if isinstance(v, list) else v)}</li>"
                        for k, v in plan.support.items() if v not in (None, [], ""))
        support = f"<p>For support:</p><ul>{items}</ul>"
    return (f'<details class="plan"><summary>Restore plan</summary><div class="plan-body" id="{anchor(run_id)}-plan">'
            f"<p>{t(plan.summary)}</p><ol>{''.join(steps)}</ol>{support}</div></details>")


def write(facts: BackupFacts, path: Path, mask: Mask) -> Path:
    """Write the page to ``path`` atomically (a temporary file renamed); OSError if it cannot."""
    page = mask(render(facts, mask))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path



def write_or_fail(facts: BackupFacts, path: Path, mask: Mask) -> Path:
    """`write`, with an unwritable path as a UsageError (exit 2) naming it."""
    from guard.errors import UsageError

    try:
        return write(facts, path, mask)
    except OSError as exc:
        raise UsageError(f"--html: cannot write {path}: {exc.strerror or exc}") from None
