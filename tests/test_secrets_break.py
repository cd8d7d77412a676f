"""Secrets in spellings a database writer or an API could plant: every character percent-encoded
(upper or lower hex), hex, JSON \\uXXXX escapes, HTML character references, only some
characters URL-encoded, invisible characters between them. Planted in a backup_logs reason or
an API answer, none reaches guard's text, JSON, HTML page, step summary, report or journal.
Real CLI, real PostgreSQL, the fake Management API on loopback."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guard.report.mask import Masker
from tests.conftest import TEST_PASSWORD
from tests.fakes import FakeSupabase
from tests.support import Project

TOKEN = "sbp_secrets_break_token_9f8e7d6c5b4a"
SNAPSHOT_KEY = "snap-Key-7Hq2-x9Lw-vv"


def _pct(s: str) -> str:
    return "".join(f"%{b:02X}" for b in s.encode())


def _u16(s: str, form: str = "\\u{:04x}") -> str:
    """Every UTF-16 code unit of ``s`` as an escape (a surrogate pair above U+FFFF, as JSON)."""
    data = s.encode("utf-16-be")
    return "".join(form.format(int.from_bytes(data[i:i + 2], "big")) for i in range(0, len(data), 2))


# How an attacker or a tool spells a secret (each of the issue's, and more of our own).
SPELLINGS: dict[str, Callable[[str], str]] = {
    "percent-every-char-upper": _pct,
    "percent-every-char-lower": lambda s: _pct(s).lower(),
    "percent-some-chars": lambda s: "".join(_pct(c) if i % 3 == 1 else c for i, c in enumerate(s)),
    "percent-twice": lambda s: _pct(s).replace("%", "%25"),
    "hex-lower": lambda s: s.encode().hex(),
    "hex-upper": lambda s: s.encode().hex().upper(),
    "hex-colons": lambda s: s.encode().hex(":"),
    "bytea": lambda s: "\\x" + s.encode().hex(),
    "python-bytes": lambda s: "".join(f"\\x{b:02x}" for b in s.encode()),
    "json-u-lower": _u16,
    "json-u-upper": lambda s: _u16(s, "\\u{:04X}"),
    "js-u-braces": lambda s: "".join(f"\\u{{{ord(c):x}}}" for c in s),
    "js-escape": lambda s: _u16(s, "%u{:04X}"),  # JavaScript's escape()
    "html-decimal": lambda s: "".join(f"&#{ord(c)};" for c in s),
    "html-hex": lambda s: "".join(f"&#x{ord(c):x};" for c in s),
    "html-no-semicolon": lambda s: "".join(f"&#x{ord(c):X}" for c in s),
    "html-escaped-twice": lambda s: "".join(f"&amp;#{ord(c)};" for c in s),
    "html-some-chars": lambda s: "".join(f"&#{ord(c)};" if i % 2 else c for i, c in enumerate(s)),
    "octal": lambda s: "".join(f"\\{b:03o}" for b in s.encode()),  # E'\\160...' and bytea escape format
    "fullwidth": lambda s: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s),
    "markdown-escaped": lambda s: "".join("\\" + c if not c.isalnum() and c != " " else c for c in s),
    "zero-width": lambda s: "\u200b".join(s),
    "soft-hyphens": lambda s: "\u00ad".join(s),
    "mixed": lambda s: "".join((_pct(c), _u16(c), f"&#{ord(c)};", c)[i % 4] for i, c in enumerate(s)),
}
SECRETS = [TEST_PASSWORD, TOKEN, SNAPSHOT_KEY, "Päss wörd/🔑:x#9", 'q"uo\\te&<amp>%41']


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_every_spelling_is_masked_and_the_text_around_kept(secret: str, spelling: str) -> None:
    planted = SPELLINGS[spelling](secret)
    masked = Masker([secret])(f"before {planted} after")
    assert masked in ("before *** after", "before \\x*** after"), (spelling, masked)  # bytea keeps its \\x


@pytest.mark.parametrize("text", [
    "settings in postgresql.conf; 12 migrations applied to the database",
    "%20 &amp; \\u0041 70617373 &#112; %70%77",
    "pw-Zq81 is part of it, and so is secret-tst",
    "the newest backup is 2026-12-01T03:14:20Z (id 12345678)",
])
def test_masking_leaves_ordinary_text_alone(text: str) -> None:
    assert Masker(SECRETS)(text) == text


@pytest.mark.parametrize("word", ["migrations", "database", "snapshot", "Password", "20261201", "2026120104"])
def test_a_password_that_is_a_word_of_guards_output_is_not_masked_there_but_named(word: str) -> None:
    masker = Masker()
    masker.add(word, "the password of database_url")
    text = (f"2 {word.lower()} pending in the database; migrations applied; snapshot taken; "
            "run 20261201041422-b438b at 2026-12-01T04:14:22Z")
    assert masker(text) == text
    assert len(masker.notices()) == 1


@pytest.fixture
def api() -> Iterator[FakeSupabase]:
    fake = FakeSupabase(token=TOKEN).start()
    try:
        yield fake
    finally:
        fake.stop()


def _leaks(text: str, secret: str) -> list[str]:
    return [name for name, spell in SPELLINGS.items() if spell(secret) in text] + (
        ["plain"] if secret in text else [])


def test_a_password_planted_in_backup_reasons_in_every_spelling_never_shows(ready: Project, tmp_path: Path) -> None:
    """A database writer stores the database password, spelled every way, as backup reasons."""
    for name, spell in SPELLINGS.items():
        ready.query("INSERT INTO public.backup_logs (kind, reason, created_by) VALUES ('automated', %s, %s)",
                    (f"{name}: {spell(TEST_PASSWORD)}", spell(TEST_PASSWORD)))
    page, summary = tmp_path / "backups.html", tmp_path / "summary.md"
    outputs = []
    for args in (("backup", "status"), ("backup", "status", "--json"),
                 ("backup", "status", "--html", str(page))):
        result = ready.guard(*args, GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
        assert result.code == 0, result.output
        outputs += [result.stdout, result.stderr]
    outputs += [page.read_text(), summary.read_text()]
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    run = ready.guard("run", "--reason", "reason " + SPELLINGS["mixed"](TEST_PASSWORD), "--summary", str(summary))
    assert run.code == 0, run.output
    outputs += [run.stdout, run.stderr, json.dumps(run.report), summary.read_text()]
    outputs += [str(row) for row in ready.query("SELECT * FROM guard.runs")]
    for text in outputs:
        assert _leaks(text, TEST_PASSWORD) == [], text[:2000]
    assert "percent-every-char-upper: ***" in page.read_text()  # the reason is shown, its secret masked


def test_a_token_echoed_in_an_api_answer_in_every_spelling_never_shows(ready: Project, api: FakeSupabase,
                                                                      tmp_path: Path) -> None:
    """The Management API (or a proxy in front of it) answers with the access token spelled
    every way, in a backup's status; guard says the answer is bad without the token."""
    api.backup_at(dt.timedelta(hours=1))
    for spell in SPELLINGS.values():
        api.backup_at(dt.timedelta(hours=2), status="FAILED " + spell(TOKEN))
    (ready.root / "guard.yml").write_text(
        "backups:\n  providers:\n    - type: supabase\n      project_ref: abcdefghijklmnopqrst\n"
        f"      access_token: ${{SB_TOKEN}}\n      api_url: {api.url}\n")
    page = tmp_path / "backups.html"
    for args in (("backup", "status"), ("backup", "status", "--json"), ("backup", "status", "--html", str(page))):
        result = ready.guard(*args, SB_TOKEN=TOKEN)
        for text in (result.stdout, result.stderr):
            assert _leaks(text, TOKEN) == [], text[:2000]
    if page.exists():
        assert _leaks(page.read_text(), TOKEN) == []
