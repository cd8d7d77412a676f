"""Items 1 and 4 of issue #16 end to end: a real guard process, a real database, GitHub's
step files; hostile text and awkward secrets through every channel guard echoes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from tests.fakes import FakeAdmin
from tests.hostile.hostile import FORGERIES, forged, leaks
from tests.support import Project, Result, clean_env, run_guard

ALL = " | ".join(FORGERIES)


def _github(project: Project) -> dict[str, str]:
    files = {name: project.root / f"gh-{name}" for name in ("summary", "output")}
    for path in files.values():
        path.write_text("")
    return {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(files["summary"]),
            "GITHUB_OUTPUT": str(files["output"])}


def _everything(project: Project, result: Result, env: dict[str, str]) -> str:
    """Every text the run left: streams, step files, JSON report, the journal."""
    parts = [result.stdout, result.stderr, json.dumps(result.report or {}, ensure_ascii=False)]
    parts += [Path(env[k]).read_text() for k in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT") if k in env]
    if project.query("SELECT to_regclass('guard.runs') IS NOT NULL")[0][0]:
        parts += [json.dumps(r, ensure_ascii=False, default=str)
                  for r in project.query("SELECT report, reason, actor FROM guard.runs")]
    parts += [json.dumps(r, ensure_ascii=False, default=str)
              for r in project.query("SELECT reason, created_by, metadata FROM public.backup_logs")]
    return "\n".join(parts)


def _streams_clean(result: Result, env: dict[str, str]) -> None:
    """Nothing the runner reads as a command but guard's own; no traceback."""
    assert forged(result.stdout + "\n" + result.stderr) == [], result.output
    assert "Traceback" not in result.output
    assert result.code in (0, 1, 2, 3, 4)


def _as(project: Project, url: str, *args: str, **env: str) -> Result:
    """guard with ``url`` as its database (GUARD_DATABASE_URL, which wins over DATABASE_URL)."""
    return run_guard(*args, cwd=project.root, env=clean_env(GUARD_DATABASE_URL=url, **env))


def _dollar(text: str) -> str:
    return f"$hostile${text}$hostile$"


def test_server_error_message_forges_nothing(ready: Project) -> None:
    ready.add("20240101000000_raise.sql", f"do $g$ begin raise exception '%', {_dollar(ALL)}; end $g$;\n")
    env = _github(ready)
    result = ready.guard("run", **env)
    assert result.code == 1, result.output
    _streams_clean(result, env)
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert annotations and "file=supabase/migrations/20240101000000_raise.sql,line=1" in annotations[0]


@pytest.mark.parametrize("name", [
    "20240101000000_a\r::error::FORGED.sql",
    "20240101000000_b\n::add-mask::FORGED.sql",
    "20240101000000_c\x1b[2K::warning::FORGED.sql",
])
def test_file_names_forge_nothing(ready: Project, name: str) -> None:
    (ready.migrations).mkdir(parents=True, exist_ok=True)
    (ready.migrations / name).write_text("select 1/0;\n")
    env = _github(ready)
    for args in (("run",), ("lint", "--format", "github"), ("check",)):
        result = ready.guard(*args, **env)
        _streams_clean(result, env)


def test_reason_with_newlines_forges_nothing(ready: Project) -> None:
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    env = _github(ready)
    result = ready.guard("run", "--reason", ALL, **env)
    assert result.code == 0, result.output
    _streams_clean(result, env)
    assert ready.manual_entries()[0]["reason"] == ALL  # recorded as given, only shown escaped


def test_backup_log_reason_in_backup_status_forges_nothing(ready: Project) -> None:
    ready.query("INSERT INTO public.backup_logs (kind, reason, created_by, created_at, metadata) "
                "VALUES ('automated', %s, %s, now() - interval '30 hours', %s)",
                (ALL, ALL, json.dumps({"source": ALL, "location": ALL})))
    env = _github(ready)
    result = ready.guard("backup", "status", "--max-age", "1h", **env)
    assert result.code == 3, result.output
    _streams_clean(result, env)
    assert forged(Path(env["GITHUB_STEP_SUMMARY"]).read_text()) == []


def test_wrapped_command_output_forges_nothing(ready: Project) -> None:
    env = _github(ready)
    script = f"import sys; print({ALL!r}); print({ALL!r}, file=sys.stderr)"
    result = ready.guard("run", "--", sys.executable, "-c", script, **env)
    _streams_clean(result, env)


def test_shadow_dry_run_of_pull_request_sql_forges_nothing(ready: Project) -> None:
    shadow_name = ready.db_url.rsplit("/", 1)[1] + "_sh"
    with psycopg.connect(ready.db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(shadow_name)))
    shadow = ready.db_url.rsplit("/", 1)[0] + "/" + shadow_name
    try:
        ready.add("20240101000000_pr.sql", f"do $g$ begin raise exception '%', {_dollar(ALL)}; end $g$;\n")
        env = _github(ready)
        result = ready.guard("check", "--shadow", shadow, **env)
        assert result.code != 0, result.output
        _streams_clean(result, env)
    finally:
        with psycopg.connect(ready.db_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(shadow_name)))


def test_config_and_usage_errors_forge_nothing(ready: Project) -> None:
    env = _github(ready)
    (ready.root / "guard.yml").write_text(json.dumps({ALL: 1, "migrations": {ALL: ALL}}))
    _streams_clean(ready.guard("check", **env), env)
    (ready.root / "guard.yml").unlink()
    _streams_clean(ready.guard("run", "--bogus" + FORGERIES[0], **env), env)
    _streams_clean(ready.guard("run", "--max-age", ALL, **env), env)
    _streams_clean(ready.guard("restore-plan", ALL, **env), env)


class EchoingAdmin(FakeAdmin):
    """An admin endpoint that answers 400 with the token (in repr) and forged commands."""

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        return 400, {"message": f"bad token {self.token!r} {json.dumps(self.token)} {FORGERIES[0]}"}


TOKENS = ["tok'en\"-quote-token-123456", "ü-unicode-token-123456", "back\\slash-token-98765",
          "sp ace-token-12345"]


@pytest.mark.parametrize("token", TOKENS, ids=range(len(TOKENS)))
def test_api_answer_echoing_the_token_leaks_nothing(ready: Project, token: str) -> None:
    fake = EchoingAdmin(token=token).start()
    try:
        ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
        (ready.root / "guard.yml").write_text(
            "log:\n  sinks:\n    - type: table\n    - type: http\n"
            f"      url: {fake.url}/api/admin/backup\n      token: ${{ADMIN_API_KEY}}\n      required: true\n"
        )
        env = _github(ready)
        result = ready.guard("run", ADMIN_API_KEY=token, **env)
        assert result.code == 3, result.output
        # A token no HTTP header can carry is refused before sending (exit 3, not a crash).
        assert bool(fake.requests) == token.isascii()
        _streams_clean(result, env)
        assert leaks(_everything(ready, result, env), token) == []
    finally:
        fake.stop()


# ------------------------------------------------------------ awkward database passwords

E2E_PASSWORDS = ["pässwörd-ü-2024", 'quote"inside"pw', "back\\slash\\pw9", "single'quote'pw",
                 "with spaces in it", "at@sign@inside", "colon:in:the:pw", "slash/in/the/pw",
                 "percent%41%zz%", "日本語のパスワード"]


def _role_url(project: Project, password: str, index: int) -> str:
    role = f"hostile_{index}_{project.db_url.rsplit('/', 1)[1][-8:]}"
    with psycopg.connect(project.db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
    host = project.db_url.split("@", 1)[1]
    return f"postgresql://{role}:{quote(password, safe='')}@{host}"


@pytest.mark.parametrize("index", range(len(E2E_PASSWORDS)))
def test_database_password_leaks_through_no_channel(ready: Project, index: int) -> None:
    password = E2E_PASSWORDS[index]
    url = _role_url(ready, password, index)
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    echo = f"raw=% repr=% json=% url=%', {_dollar(password)}, {_dollar(repr(password))}, " \
           f"{_dollar(json.dumps(password))}, {_dollar(quote(password, safe=''))}"
    ready.add("20240102000000_b.sql", f"do $g$ begin raise exception 'echo {echo}; end $g$;\n")
    env = _github(ready)
    summary = ready.root / "summary.md"
    result = _as(ready, url, "run", "--summary", str(summary), "--reason", f"by {password}", **env)
    assert result.code == 4, result.output
    _streams_clean(result, env)
    everything = _everything(ready, result, env) + summary.read_text()
    assert leaks(everything, password) == []
    assert "echo raw=***" in result.stdout + result.stderr  # masked, not dropped


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_wrapped_command_printing_the_password_leaks_nothing(ready: Project, index: int) -> None:
    password = E2E_PASSWORDS[index]
    url = _role_url(ready, password, index)
    script = ("import json, os, urllib.parse as u; from psycopg.conninfo import conninfo_to_dict as c; "
              "p = c(os.environ['DATABASE_URL'])['password']; "
              "print(p); print(repr(p)); print(json.dumps(p)); print(u.quote(p, safe='')); print(u.quote_plus(p))")
    env = _github(ready)
    result = _as(ready, url, "run", "--", sys.executable, "-c", script, **env)
    _streams_clean(result, env)
    assert leaks(_everything(ready, result, env), password) == []
    assert result.stderr.count("***") >= 5, result.output


# ------------------------------------------------- the issue's connection strings, end to end

SECRET = "Sup3r-secret-pw"
ISSUE_URLS = [
    (f"postgres://u:{SECRET}@[::1/db", [SECRET]),
    (f"postgresql://u:abc@{SECRET}@host/db", [SECRET, f"{SECRET}@host"]),
    (f"postgresql://u:{SECRET}@def@host/db", [SECRET, "def@host"]),
    (f"host=127.0.0.1 user=u password='{SECRET} tail-of-it", [SECRET, "tail-of-it"]),
]


@pytest.mark.parametrize(("url", "hidden"), ISSUE_URLS, ids=range(len(ISSUE_URLS)))
def test_issue_connection_strings_are_refused_before_connecting(
        ready: Project, url: str, hidden: list[str]) -> None:
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    env = _github(ready)
    for args in (("run",), ("check",), ("backup", "status")):
        result = _as(ready, url, *args, **env)
        assert result.code == 2, result.output
        everything = result.output + Path(env["GITHUB_STEP_SUMMARY"]).read_text() + json.dumps(result.report)
        assert not [h for h in hidden if h in everything], everything
        assert len([line for line in result.stderr.splitlines() if "error" in line]) == 1
        _streams_clean(result, env)


def test_a_weak_password_is_not_masked_in_free_text_and_said_once(ready: Project) -> None:
    url = _role_url(ready, "postgres", 99)
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    ready.add("20240102000000_b.sql", "select 1/0;\n")
    script = f"print('tool sees postgresql.conf and {url}')"
    result = _as(ready, url, "run")
    assert result.code == 4, result.output
    assert "***" not in result.output  # no "***ql.conf", no role "***"
    assert result.stderr.count("too short or too common") == 1
    wrapped = _as(ready, url, "run", "--", sys.executable, "-c", script)
    assert "tool sees postgresql.conf and postgresql://" in wrapped.stderr
    assert ":postgres@" not in wrapped.output  # a URL is still redacted by its structure


@pytest.mark.parametrize("secret", ["pw-ü-\"q\"-\\b-0042", "tool token with spaces 77"])
def test_wrapped_command_given_a_password_flag_leaks_it_nowhere(ready: Project, secret: str) -> None:
    """`guard run -- tool --password "$PW"`: the value is a secret though guard never saw it before."""
    env = _github(ready)
    script = "import json, sys; p = sys.argv[2]; print(p); print(repr(p)); print(json.dumps(p))"
    result = ready.guard("run", "--", sys.executable, "-c", script, "--password", secret, **env)
    _streams_clean(result, env)
    assert leaks(_everything(ready, result, env), secret) == []
    assert result.stderr.count("***") >= 3, result.output
