"""Read a STILTS taplint text report: messages per stage and level, and the Totals line.

Report lines look like ``E-QGE-QERR-1 text``: level (E error, W warning, I info, S summary,
F validator failure), stage, message code, repeat count. A message continues on following
lines indented by spaces. ``python -m conformance.taplint_report FILE`` prints the per-stage
table and every error and warning.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

LEVELS = "EWFSI"
_LINE = re.compile(r"^([EWISF])-([A-Z]{3})-([A-Za-z0-9]+)-(\d+)\s?(.*)$")
_SECTION = re.compile(r"^Section ([A-Z]{3}):\s*(.*)$")
_TOTALS = re.compile(r"^Totals:\s*(.*)$")


@dataclass
class Message:
    level: str
    stage: str
    code: str
    n: int
    text: str

    def label(self) -> str:
        return f"{self.level}-{self.stage}-{self.code}-{self.n}"


@dataclass
class Report:
    messages: list[Message]
    sections: dict[str, str]  # stage code -> title, in run order
    totals: dict[str, int]  # from the "Totals:" line; empty if taplint did not finish

    def of(self, level: str, stage: str | None = None) -> list[Message]:
        return [m for m in self.messages if m.level == level and (stage is None or m.stage == stage)]

    def counts(self) -> dict[str, dict[str, int]]:
        """{stage: {level: count}} for every stage seen, in run order."""
        out: dict[str, dict[str, int]] = {s: dict.fromkeys(LEVELS, 0) for s in self.sections}
        for m in self.messages:
            out.setdefault(m.stage, dict.fromkeys(LEVELS, 0))[m.level] += 1
        return out

    def table(self) -> str:
        rows = [f"{'stage':<6}" + "".join(f"{lv:>6}" for lv in LEVELS) + "  title"]
        for stage, c in self.counts().items():
            rows.append(f"{stage:<6}" + "".join(f"{c[lv]:>6}" for lv in LEVELS)
                        + "  " + self.sections.get(stage, ""))
        if self.totals:
            rows.append("Totals: " + "; ".join(f"{k}: {v}" for k, v in self.totals.items()))
        else:
            rows.append("Totals: missing (taplint did not finish)")
        return "\n".join(rows)

    def to_json(self) -> str:
        return json.dumps({
            "totals": self.totals,
            "stages": self.counts(),
            "errors": [asdict(m) for m in self.of("E")],
            "warnings": [asdict(m) for m in self.of("W")],
            "failures": [asdict(m) for m in self.of("F")],
        }, indent=2)


def parse(text: str) -> Report:
    messages: list[Message] = []
    sections: dict[str, str] = {}
    totals: dict[str, int] = {}
    current: Message | None = None
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            current = Message(m[1], m[2], m[3], int(m[4]), m[5].rstrip())
            messages.append(current)
            continue
        s = _SECTION.match(line)
        if s:
            sections[s[1]] = s[2].strip()
            current = None
            continue
        t = _TOTALS.match(line)
        if t:
            for part in t[1].split(";"):
                key, _, value = part.partition(":")
                if value.strip().isdigit():
                    totals[key.strip()] = int(value.strip())
            current = None
            continue
        if current is not None and line.startswith(" ") and line.strip():
            current.text += "\n" + line.strip()
        else:
            current = None
    return Report(messages, sections, totals)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m conformance.taplint_report TAPLINT_REPORT.txt", file=sys.stderr)
        return 2
    report = parse(Path(argv[0]).read_text(errors="replace"))
    print(report.table())
    for level in "EWF":
        for m in report.of(level):
            print(f"{m.label()} {m.text}")
    return 1 if report.of("E") else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
