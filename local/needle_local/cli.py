"""The `needle` command: local tools around the normalizers and simulators (never deployed).

Subcommands live in COMMANDS. A new one is a `Command` entry: `configure` adds its arguments
to its subparser, `run` gets the parsed namespace and returns the exit status. A command whose
module is heavy or optional imports it inside `run`, so `needle normalize` never pays for it
(see `replay`, which hands its arguments, unparsed, to `needle_local.replay.main`).

Exit statuses: 0 success, 1 some input was rejected, 2 usage error (argparse's convention).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from needle.model.event import Event, MalformedRecordError, iso
from needle.sources.crowdstrike import normalize as crowdstrike_normalize
from needle.sources.graph import normalize as graph_normalize
from needle.sources.mde import normalize as mde_normalize
from needle.sources.sentinelone import normalize as sentinelone_normalize

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2

# A vendor alert is a few KB; a longer line is corrupt input, and reading it whole would let one
# bad line take all the memory.
MAX_LINE_BYTES = 1 << 20
DEFAULT_S1_CONSOLE = "https://sentinelone.example"
MAX_REASON_CHARS = 300

Normalizer = Callable[[dict[str, Any]], Event]


@dataclass(frozen=True)
class Command:
    """One `needle <name>` subcommand."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    # The command parses its own arguments: everything after its name reaches `run` unparsed,
    # as `args.argv` (a list of strings).
    passthrough: bool = False


class UsageError(Exception):
    """A usage error found after parsing (e.g. the input file is missing): exit status 2."""


# -- needle normalize ----------------------------------------------------------------------


def normalizers(console_url: str | None) -> dict[str, Normalizer]:
    """Source name -> normalizer; only SentinelOne needs the console URL (its deep links)."""
    console = console_url or DEFAULT_S1_CONSOLE
    return {
        "mde": mde_normalize.normalize,
        "graph": graph_normalize.normalize,
        "crowdstrike": crowdstrike_normalize.normalize,
        "sentinelone": lambda raw: sentinelone_normalize.normalize(raw, console),
    }


SOURCES = tuple(normalizers(None))
CONSOLE_URL_SOURCES = frozenset({"sentinelone"})


def output_record(event: Event) -> dict[str, Any]:
    """The OCSF finding plus the fields Needle keys on; the raw payload is left out."""
    return {
        **event.finding,
        "needle": {
            "source": event.source,
            "vendor_id": event.vendor_id,
            "kind": event.kind,
            "time": iso(event.time),
            "updated_at": iso(event.updated_at),
            "console_url": event.console_url,
            "device": {
                "device_id": event.device.device_id,
                "hostname": event.device.hostname,
                "ips": list(event.device.ips),
            },
            "user": event.user,
        },
    }


class _RejectedError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def json_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line without surrounding whitespace) for every non-blank line; None for a
    line over MAX_LINE_BYTES, whose rest is skipped without being held in memory."""
    number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = stream.readline(MAX_LINE_BYTES)
            yield number, None
            continue
        text = line.strip()
        if text:
            yield number, text


def normalize_line(line: bytes | None, normalize: Normalizer) -> dict[str, Any]:
    """One input line to its output record; raises _RejectedError with a one-line reason."""
    if line is None:
        raise _RejectedError(f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        raw = json.loads(line)
    except UnicodeDecodeError:
        raise _RejectedError("not UTF-8 text") from None
    except ValueError as exc:
        raise _RejectedError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise _RejectedError("invalid JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise _RejectedError(f"not a JSON object (a JSON {_json_type(raw)})")
    try:
        event = normalize(raw)
    except MalformedRecordError as exc:
        raise _RejectedError(str(exc)) from None
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        # As the poller does: a shape the normalizer did not foresee is a rejected record.
        raise _RejectedError(f"unexpected record shape ({type(exc).__name__})") from None
    return output_record(event)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def _one_line(text: str) -> str:
    # Reasons may quote record content; keep each on one printable line of bounded length.
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    return flat if len(flat) <= MAX_REASON_CHARS else flat[:MAX_REASON_CHARS] + "…"


def _configure_normalize(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source", required=True, choices=SOURCES, help="the vendor API the objects come from"
    )
    parser.add_argument("file", metavar="FILE.jsonl", help="JSON Lines: one vendor API object per line")
    parser.add_argument(
        "--console-url",
        metavar="URL",
        help=f"SentinelOne console, for deep links (default {DEFAULT_S1_CONSOLE}); sentinelone only",
    )


def run_normalize(args: argparse.Namespace) -> int:
    """Print one OCSF JSON line per input object; report rejected objects on stderr."""
    source: str = args.source
    path: str = args.file
    if args.console_url is not None and source not in CONSOLE_URL_SOURCES:
        raise UsageError(f"--console-url applies to {', '.join(sorted(CONSOLE_URL_SOURCES))} only")
    normalize = normalizers(args.console_url)[source]
    try:
        # Opened outside `with` so that only a failure to open (missing file, a directory, no
        # permission) is a usage error; read errors later are real failures.
        stream = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or type(exc).__name__}") from None
    rejected = 0
    out = sys.stdout
    with stream:
        for number, line in json_lines(stream):
            try:
                record = normalize_line(line, normalize)
            except _RejectedError as rejection:
                rejected += 1
                print(f"{path}:{number}: {source}: {_one_line(rejection.reason)}", file=sys.stderr)
                continue
            out.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
    out.flush()
    return EXIT_REJECTED if rejected else EXIT_OK


# -- needle replay (lives in needle_local.replay) ------------------------------------------


def _configure_replay(parser: argparse.ArgumentParser) -> None:
    del parser  # replay parses its own arguments (see Command.passthrough)


def run_replay(args: argparse.Namespace) -> int:
    try:
        replay = importlib.import_module("needle_local.replay")
    except ModuleNotFoundError as exc:
        if exc.name != "needle_local.replay":
            raise  # replay exists but one of its own imports is missing: show that
        raise UsageError("replay is not available yet") from None
    status: int = replay.main(args.argv)
    return status


# -- the registry --------------------------------------------------------------------------

COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command(
            "normalize",
            "normalize vendor API objects (JSON Lines) to OCSF Detection Findings on stdout",
            _configure_normalize,
            run_normalize,
        ),
        Command(
            "replay",
            "replay recorded alerts (arguments go to needle_local.replay)",
            _configure_replay,
            run_replay,
            passthrough=True,
        ),
    )
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="needle", description="Needle on one machine.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS.values():
        # A passthrough command keeps -h/--help for itself.
        sub = subparsers.add_parser(
            command.name, help=command.help, description=command.help, add_help=not command.passthrough
        )
        command.configure(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The `needle` console script; returns the exit status (usage errors: 2)."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
        command = COMMANDS[args.command]
        if extra and not command.passthrough:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exit_:  # argparse exits on --help (0) and on usage errors (2)
        if exit_.code is None:
            return EXIT_OK
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    args.argv = extra
    try:
        return command.run(args)
    except UsageError as exc:
        print(f"needle {command.name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`needle normalize … | head`): stop quietly, and keep Python's
        # shutdown flush from raising again on the dead pipe.
        # Not possible when stdout is no file descriptor (captured in-process).
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_REJECTED


if __name__ == "__main__":
    sys.exit(main())
