"""Migration files: discover them, read them, split them into statements.

Files follow the Supabase layout, ``<version>_<name>.sql`` with a version of digits. The split
uses PostgreSQL's own parser (pglast), so dollar-quoted bodies, nested comments, ``E''``
strings and ``BEGIN ATOMIC`` bodies are never cut in the wrong place. Each statement's text is
what the Supabase CLI stores in ``schema_migrations.statements``: everything between two
top-level semicolons, leading comments included, surrounding white space trimmed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from msgspec import Struct

from guard.errors import Blocked, MigrationFileError, UsageError
from guard.migrations.regular import read_regular, under  # noqa: F401 - under: imported from here by callers

FILE_PATTERN = re.compile(r"^([0-9]+)_(.*)\.sql$")
_BOM = b"\xef\xbb\xbf"
KEEP_TEXT_BYTES = 1 << 20  # files smaller than this keep their text (MigrationFile.text)
PARSE_PIECE_CHARS = 1 << 20  # files are parsed in pieces of about this size (_parse_spans)
_COPY_FROM_STDIN = re.compile(r"\bcopy\b.*?\bfrom\s+stdin\b", re.IGNORECASE | re.DOTALL)


class Statement(Struct, frozen=True):
    """One statement of a file."""

    sql: str  # as stored in the history: without the trailing ';', leading comments kept
    offset: int  # character offset of ``sql`` in the file
    line: int  # 1-based line of the statement's first token (comments skipped)
    column: int  # 1-based column of that token
    kind: str  # parse node name ("CreateStmt", "DoStmt"...); "" for a comment-only remainder
    start_line: int = 0  # 1-based line of ``offset`` (where ``sql`` starts, maybe a comment)

    def line_at(self, position: int | None) -> int:
        """File line of a 1-based character position inside ``sql`` (PostgreSQL's
        ``statement_position``); the first token's line when position is None."""
        if position is None or position < 1:
            return self.line
        return self.start_line + self.sql.count("\n", 0, position - 1)


class MigrationRef(Struct, frozen=True):
    """A discovered file, not read yet."""

    version: str
    name: str
    path: Path

    @property
    def filename(self) -> str:
        return self.path.name


class MigrationFile(Struct, frozen=True):
    """A migration file read and split into statements, with its SHA-256."""

    ref: MigrationRef
    statements: tuple[Statement, ...]
    sha256: str
    # The decoded text, kept for files under KEEP_TEXT_BYTES (lint reads its pragmas from it);
    # a larger file is read again when needed rather than held twice in memory.
    text: str | None = None

    # The text is not part of what a file is: equal files hash and compare equal whether or
    # not it was kept, and a repr does not print a migration's whole text.
    def __eq__(self, other: object) -> bool:
        if type(other) is not MigrationFile:
            return NotImplemented
        return (self.ref, self.statements, self.sha256) == (other.ref, other.statements, other.sha256)

    def __hash__(self) -> int:
        return hash((self.ref, self.statements, self.sha256))

    def __repr__(self) -> str:
        return f"MigrationFile(ref={self.ref!r}, statements=<{len(self.statements)}>, sha256={self.sha256!r})"

    @property
    def version(self) -> str:
        return self.ref.version

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def path(self) -> Path:
        return self.ref.path


# Which names are migrations, and their order, as the Supabase CLI has them
# (github.com/supabase/cli, apps/cli-go/pkg/migration/list.go, ListLocalMigrations): the
# entries of the folder in file-name order (Go's fs.ReadDir sorts by name, byte-wise), folders
# skipped, names matching FILE_PATTERN (file.go, migrateFilePattern), and a first entry named
# `<14 digits>_init.sql` older than 20211209000000 skipped (shouldSkip, a deprecated layout).
DEPRECATED_INIT = re.compile(r"([0-9]{14})_init\.sql")
DEPRECATED_INIT_BEFORE = 20211209000000
EXPECTED_NAME = "<version>_<name>.sql (version: digits, e.g. 20240101120000_create_notes.sql)"
# Bigger files are refused before reading: the whole file is parsed in memory.
MAX_FILE_BYTES = 256 * 1024 * 1024


def discover(directory: Path, *, ignore: Iterable[str] = ()) -> list[MigrationRef]:
    """Migration files of ``directory``, in the order the Supabase CLI applies them.

    Order and naming follow ListLocalMigrations (list.go); versions are compared as strings,
    as the CLI does. Stricter than the CLI on two points, both Blocked (exit 3): two files
    with one version (the CLI would fail on the second history row), and a ``*.sql`` file
    (any case) whose name is not a migration's, unless a glob of ``ignore`` matches it (the
    CLI skips those with a warning, so a misnamed file would silently never deploy). Other
    files (.gitkeep, READMEs) and folders are not migrations and are passed over.
    """
    import fnmatch

    if not directory.exists():
        raise UsageError(f"migrations directory {directory} does not exist",
                         hint="set migrations.dir or --migrations-dir")
    if not directory.is_dir():
        raise UsageError(f"migrations directory {directory} is not a directory")
    entries = sorted(directory.iterdir(), key=lambda p: p.name)
    refs: list[MigrationRef] = []
    strays: list[str] = []
    for index, path in enumerate(entries):
        if path.is_dir():
            continue
        name = path.name
        if index == 0 and _deprecated_init(name):
            continue
        match = FILE_PATTERN.match(name)
        if match:
            refs.append(MigrationRef(match.group(1), match.group(2), path))
        elif name.lower().endswith(".sql") and not any(fnmatch.fnmatchcase(name, g) for g in ignore):
            strays.append(name)
    if strays:
        raise Blocked(
            f"{len(strays)} .sql file(s) in {directory} are not named like migrations and would "
            f"never be applied: {', '.join(strays)}; expected {EXPECTED_NAME}",
            hint="rename them, or list them under migrations.ignore (globs) if they are not migrations",
        )
    seen: dict[str, MigrationRef] = {}
    for ref in refs:
        if ref.version in seen:
            raise Blocked(
                f"duplicate migration version {ref.version}: {seen[ref.version].filename} and {ref.filename}",
                hint="give one of them a new version",
            )
        seen[ref.version] = ref
    return refs


def _deprecated_init(name: str) -> bool:
    """list.go shouldSkip: a first `<timestamp>_init.sql` from CLI versions before 2021-12-09."""
    match = DEPRECATED_INIT.search(name)
    return match is not None and int(match.group(1)) < DEPRECATED_INIT_BEFORE


def load(ref: MigrationRef, *, display_root: Path | None = None) -> MigrationFile:
    """Read and split one file; any problem is a MigrationFileError naming file and line.

    The file must be a regular file (a symbolic link to one is fine) lying inside
    the migrations folder or ``display_root`` (the project) and at most
    MAX_FILE_BYTES: a FIFO, a device or a link leading out of the project is refused
    without blocking on it."""
    display = _display(ref.path, display_root)
    data = read_regular(ref.path, display, (ref.path.parent, *([display_root] if display_root else [])),
                        MAX_FILE_BYTES)
    digest = hashlib.sha256(data).hexdigest()
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    nul = data.find(b"\x00")
    if nul >= 0:  # libpq sends C strings: the rest of the file would never reach the server
        raise MigrationFileError(
            "a NUL byte (0x00): PostgreSQL takes none in a statement or a comment, and the parser "
            "stops reading there", file=display, line=data.count(b"\n", 0, nul) + 1,
            hint="remove it (a file saved as UTF-16 is full of them: save it as UTF-8)",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise MigrationFileError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x})", file=display, line=line,
            hint="save the file as UTF-8",
        ) from None
    keep = len(data) < KEEP_TEXT_BYTES
    del data  # a big file's bytes need not outlive its decoding
    return MigrationFile(ref=ref, statements=tuple(split_statements(text, display)), sha256=digest,
                         text=text if keep else None)


def _display(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies under it (both resolved), else as given."""
    if root is not None:
        # Directories resolved once: a release of a thousand files shares one or two.
        given = os.fspath(path)
        full = os.path.join(_resolved(os.path.dirname(given) or "."), os.path.basename(given))
        relative = under(full, _resolved(os.fspath(root)))
        if relative is not None:
            return relative
    return str(path)


@functools.lru_cache(maxsize=64)
def _resolved(directory: str) -> str:
    return os.path.realpath(directory)


class _Lines:
    """Offset -> (line, column), by bisecting the line starts once computed."""

    def __init__(self, text: str) -> None:
        self.starts = [0]
        start = text.find("\n")
        while start != -1:
            self.starts.append(start + 1)
            start = text.find("\n", start + 1)

    def at(self, offset: int) -> tuple[int, int]:
        from bisect import bisect_right

        index = bisect_right(self.starts, offset) - 1
        return index + 1, offset - self.starts[index] + 1


def split_statements(text: str, display: str = "<sql>") -> list[Statement]:
    """Statements of ``text``, split by PostgreSQL's parser, with CLI-compatible text."""
    from pglast import parser

    lines = _Lines(text)
    _reject_meta_commands(text, lines, display)
    try:
        spans = _parse_spans(text)
    except parser.ParseError as exc:
        raise _parse_error(text, lines, exc, display) from None
    # Top-level semicolons lie in the gaps between statements (with comments and white space).
    terminators: list[int] = []
    cursor = 0
    for start, end, _kind in spans:
        terminators.extend(_semicolons(text, cursor, start))
        cursor = end
    terminators.extend(_semicolons(text, cursor, len(text)))
    kinds = iter(spans)
    pending = next(kinds, None)
    statements: list[Statement] = []
    segment_start = 0
    for segment_end in [*terminators, len(text)]:
        raw = text[segment_start:segment_end]
        stripped = raw.strip()
        kind = ""
        if pending is not None and pending[0] < segment_end:
            kind, pending = pending[2], next(kinds, None)
        if stripped:  # an empty statement (";;") is dropped, as the Supabase CLI does
            offset = segment_start + (len(raw) - len(raw.lstrip()))
            first = _skip_space_and_comments(text, offset) if kind else offset
            line, column = lines.at(first)
            statements.append(
                Statement(stripped, offset, line, column, kind, start_line=lines.at(offset)[0])
            )
        segment_start = segment_end + 1
    return statements


def _parse_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every statement, in characters.

    A big file is parsed in pieces of about PARSE_PIECE_CHARS, each cut just after a ';'
    that ends a line: the parser's memory grows with its input (a 20 MB file took some
    120 MB in one go). A cut inside a string, a comment, a dollar-quoted body or an
    unfinished statement leaves a piece that does not parse, so every cut kept is a real
    top-level end of statement. After a failed cut the next candidate is tried: past the
    dollar-quoted body the parser says is unterminated, else the next ';' at a line end,
    and every eighth failure doubles the piece, so the work stays bounded. A piece that
    runs to the end of the text and still fails is a real syntax error, raised with its
    position in the whole text.
    """
    from pglast import parser

    spans: list[tuple[int, int, str]] = []
    start, n = 0, len(text)
    while start < n:
        search, failures = start + PARSE_PIECE_CHARS, 0
        while True:
            stop = n
            if search < n:
                cut = text.find(";\n", search)
                stop = n if cut == -1 else cut + 1
            piece = text if (start, stop) == (0, n) else text[start:stop]
            try:
                stmts = json.loads(parser.parse_sql_json(piece)).get("stmts", [])
                break
            except parser.ParseError as exc:
                location = exc.args[1] if len(exc.args) > 1 else None
                if stop >= n:
                    if start and isinstance(location, int):
                        raise parser.ParseError(exc.args[0], location + start) from None
                    raise
                failures += 1
                past = _past_dollar_quote(text, start + location) if isinstance(location, int) else None
                if past is not None:
                    search = past
                elif failures % 8 == 0:
                    search = start + 2 * (stop - start)
                else:
                    search = stop + 1
        spans.extend((start + a, start + b, kind) for a, b, kind in _statement_spans(piece, stmts))
        start = stop
    return spans


# Compiled when first used (re caches it): its ranges up to U+10FFFF take ~7 ms to compile,
# which a run whose files all split at once never needs.
_DOLLAR_TAG = r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z_0-9\x80-\U0010ffff]*)?\$"


def _past_dollar_quote(text: str, position: int) -> int | None:
    """Where the dollar-quoted string opening at ``position`` ends (the end of the text when
    it never does), or None when no dollar quote opens there."""
    match = re.compile(_DOLLAR_TAG).match(text, position)
    if match is None:
        return None
    end = text.find(match.group(0), match.end())
    return len(text) if end == -1 else end + len(match.group(0))


def _statement_spans(text: str, stmts: list[dict[str, object]]) -> Iterable[tuple[int, int, str]]:
    """(start, end, kind) of each parsed statement in characters; the parser counts bytes."""
    encoded = None if text.isascii() else text.encode("utf-8")
    byte_cursor = char_cursor = 0
    for item in stmts:
        byte_start = int(item.get("stmt_location", 0))  # type: ignore[call-overload]
        byte_len = int(item.get("stmt_len", 0))  # type: ignore[call-overload]
        node = item.get("stmt")
        kind = next(iter(node), "") if isinstance(node, dict) else ""
        if encoded is None:
            yield byte_start, (byte_start + byte_len if byte_len else len(text)), kind
            continue
        start = char_cursor + len(encoded[byte_cursor:byte_start].decode("utf-8"))
        byte_end = byte_start + byte_len if byte_len else len(encoded)
        end = start + len(encoded[byte_start:byte_end].decode("utf-8"))
        byte_cursor, char_cursor = byte_end, end
        yield start, end, kind


def _semicolons(text: str, pos: int, stop: int) -> list[int]:
    """Positions of ';' in text[pos:stop], a stretch of only white space, comments and ';'."""
    found = []
    while pos < stop:
        pos = _skip_space_and_comments(text, pos)
        if pos < stop and text[pos] == ";":
            found.append(pos)
            pos += 1
        else:
            break
    return found


def _skip_space_and_comments(text: str, pos: int) -> int:
    """First position at or after ``pos`` that is neither white space nor a comment."""
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch.isspace():
            pos += 1
        elif text.startswith("--", pos):
            newline = text.find("\n", pos)
            pos = n if newline == -1 else newline + 1
        elif text.startswith("/*", pos):
            depth, pos = 1, pos + 2
            while pos < n and depth:
                if text.startswith("/*", pos):
                    depth, pos = depth + 1, pos + 2
                elif text.startswith("*/", pos):
                    depth, pos = depth - 1, pos + 2
                else:
                    pos += 1
        else:
            return pos
    return pos


def _find_terminator(text: str, pos: int) -> int | None:
    """Position of the ';' ending the statement that ends at ``pos``, if there is one."""
    pos = _skip_space_and_comments(text, pos)
    if pos < len(text) and text[pos] == ";":
        return pos
    return None


_META_COMMAND = re.compile(r"^[ \t]*(\\(?:[a-zA-Z]+\+?|[!?]))", re.MULTILINE)
_META_NAME = re.compile(r"\\(?:[a-zA-Z]+\+?|[!?])")


def _reject_meta_commands(text: str, lines: _Lines, display: str) -> None:
    """psql meta-commands (``\\i``, ``\\set``, ``... \\gexec``) are not SQL; name the
    command in full, at its line.

    A backslash inside a string literal or function body is legitimate, so a candidate is
    confirmed by the parser failing: at the backslash itself (a meta-command anywhere on a
    line, as ``\\gexec`` ends one), else with one at the start of a line before the error.
    """
    if "\\" not in text:
        return
    from pglast import parser

    try:
        parser.split(text, with_parser=True, only_slices=True)
    except parser.ParseError as exc:
        location = exc.args[1] if len(exc.args) > 1 else None
        found = None
        if isinstance(location, int):
            found = _META_NAME.match(text, location) or _META_NAME.match(text, max(location - 1, 0))
            head = text[: location + 1]
        else:
            head = text
        if found is None:
            at_start = list(_META_COMMAND.finditer(head))
            found = at_start[-1] if at_start else None
            if found is None:
                return  # a plain syntax error: the split reports it with its own message
            start, command = found.start(1), found.group(1)
        else:
            start, command = found.start(), found.group(0)
        raise MigrationFileError(
            f"psql meta-command {command} is not SQL", file=display, line=lines.at(start)[0],
            hint="migration files are plain SQL, run by the server, not by psql: write it in SQL "
            "(a DO block for \\gexec, literal values for \\set variables)",
        ) from None


def _parse_error(text: str, lines: _Lines, exc: Exception, display: str) -> MigrationFileError:
    message = str(exc.args[0]) if exc.args else str(exc)
    # pglast gives (message, location): a 0-based character offset of the error.
    location = exc.args[1] if len(exc.args) > 1 else None
    line = lines.at(min(location, len(text)))[0] if isinstance(location, int) else None
    copy = _copy_from_stdin_before(text, location if isinstance(location, int) else len(text))
    if copy is not None:
        return MigrationFileError(
            "COPY ... FROM stdin is not supported: its data block is not SQL",
            file=display, line=lines.at(copy)[0],
            hint="use INSERT statements, or load the data in a seed file",
        )
    return MigrationFileError(message, file=display, line=line)


def _copy_from_stdin_before(text: str, location: int) -> int | None:
    """Offset of a ``COPY ... FROM stdin`` statement before the parse error, if any."""
    from pglast import parser

    head = text[: max(location, 0)] if location else text
    try:
        slices = parser.split(head, with_parser=False, only_slices=True)
    except parser.ParseError:
        return None
    for piece in slices:
        statement = head[piece]
        first = _skip_space_and_comments(statement, 0)
        if _COPY_FROM_STDIN.match(statement, first):
            return piece.start + first
    return None


def fingerprint(statements: Iterable[str]) -> str:
    """A hash of the statements' tokens, ignoring comments, white space and ';'.

    The same file split differently (or re-commented) gives the same fingerprint; a changed
    identifier, literal or keyword gives another. Used to detect an applied file edited since.
    Line endings are not edits: CRLF counts as LF everywhere (inside a dollar-quoted body
    too: git's core.autocrlf rewrites those), and a byte-order mark is ignored.
    """
    from pglast import parser

    digest = hashlib.sha256()
    for statement in statements:
        statement = statement.replace("\r\n", "\n").lstrip("\ufeff")
        try:
            tokens = parser.scan(statement)
        except Exception:  # noqa: BLE001 - unscannable text: fall back to its normalised form
            digest.update(b"\x00raw\x00" + " ".join(statement.split()).encode("utf-8"))
            continue
        for token in tokens:
            if token.name in ("SQL_COMMENT", "C_COMMENT", "ASCII_59"):
                continue
            digest.update(statement[token.start : token.end + 1].encode("utf-8"))
            digest.update(b"\x00")
    return digest.hexdigest()
