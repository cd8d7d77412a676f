"""Item 2 of issue #16: connection strings read as libpq reads them; ambiguous ones refused
with exit 2 before connecting, in one line that never holds the string nor its password."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from guard import conninfo
from guard.cli import cli
from guard.errors import UsageError
from tests.hostile.hostile import PASSWORDS

SECRET = "Sup3r-secret-pw"
# (connection string, why libpq and a reader disagree or libpq refuses)
REFUSED = [
    (f"postgres://u:{SECRET}@[::1/db", "IPv6 host without ]"),
    (f"postgresql://u:abc@{SECRET}@host/db", "two @: libpq ends the password at the first"),
    (f"postgresql://u:{SECRET}@def@host/db", "two @"),
    (f"postgresql://u:{SECRET}/x@host/db", "unencoded / in the password"),
    (f"host=db password='{SECRET}", "unterminated quote"),
    (f"host=db password={SECRET} junk", "a word without ="),
    (f"postgresql://u:{SECRET}%zz@h/db", "bad percent-encoding"),
    (f"postgresql://u:{SECRET}%00@h/db", "%00"),
    (f"postgresql://u:{SECRET}@h/db?sslmode", "query without ="),
    (f"postgresql://u:{SECRET}@h/db?a=b=c", "query with two ="),
    (f"mysql://u:{SECRET}@h/db", "another scheme"),
    (f"http://u:{SECRET}@h/db", "another scheme"),
    (f"postgresql://u:{SECRET}@h/db\n::error::x", "a newline"),
    (f"postgresql://u:{SECRET}\r@h/db", "a carriage return"),
    (f"postgresql://u:{SECRET}@[]/db", "empty IPv6 host"),
    (f"postgresql://u:{SECRET}@[::1]x/db", "junk after ]"),
    (f"postgresql://u:{SECRET}@h/db?unknownkey=1", "unknown libpq keyword"),
    (f"postgresql://u:{SECRET}@h:port/db", "non-numeric port"),
    (f"password={SECRET} host=db dbname", "trailing key without ="),
    (f" postgresql://u:{SECRET}@h/db", "a space before the scheme"),
    (f"POSTGRESQL://u:{SECRET}@h/db", "upper-case scheme: libpq reads key=value"),
    (f"postgresql://u:{SECRET}@h:0/db", "port 0"),
    (f"host=h port=99999 password={SECRET}", "port out of range"),
    (f"postgresql://u:{SECRET}@@h/db", "@@"),
    (f"postgresql://h/db?sslmode&password={SECRET}", "a query password beside a malformed pair"),
    ("", "empty"),
    ("   ", "blank"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED, ids=[w for _u, w in REFUSED])
def test_ambiguous_or_invalid_strings_are_refused_without_echo(url: str, why: str) -> None:
    with pytest.raises(UsageError) as caught:
        conninfo.parse(url)
    message = str(caught.value) + (caught.value.hint or "")
    assert SECRET not in message and "\n" not in message
    for shown in (conninfo.redact(url), conninfo.describe(url)):
        assert SECRET not in shown
    if url.strip():
        assert any(SECRET in s or s in SECRET for s in conninfo.secrets(url))


@pytest.mark.parametrize("password", PASSWORDS, ids=range(len(PASSWORDS)))
def test_encoded_awkward_passwords_read_back_exactly(password: str) -> None:
    url = f"postgresql://guard:{quote(password, safe='')}@db.example.com:5432/postgres"
    assert conninfo.password(url) == password
    assert password not in conninfo.redact(url) and quote(password, safe="") not in conninfo.redact(url)
    assert conninfo.describe(url) == "db.example.com:5432/postgres"
    keyvalue = "host=db.example.com password='" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
    assert conninfo.password(keyvalue) == password
    assert "password=***" in conninfo.redact(keyvalue) and password not in conninfo.redact(keyvalue)


@pytest.mark.parametrize(("url", "why"), REFUSED[:14], ids=[w for _u, w in REFUSED[:14]])
def test_cli_refuses_with_exit_2_and_one_clean_line(
    url: str, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "supabase/migrations").mkdir(parents=True)
    (tmp_path / "supabase/migrations/20240101000000_a.sql").write_text("select 1;\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["check", "--database-url", url], env={"GITHUB_ACTIONS": "true"},
                                catch_exceptions=False)
    output = result.output
    assert result.exit_code == 2, output
    assert SECRET not in output
    errors = [line for line in output.splitlines() if line.startswith("guard: error:")]
    assert len(errors) == 1 and "connection string" in errors[0]
    assert "Traceback" not in output
    assert not any(line.lstrip().startswith("::") and "migration-guard" not in line
                   for line in output.splitlines())
