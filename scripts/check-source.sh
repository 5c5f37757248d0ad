#!/usr/bin/env bash
# Source checks for the code rules in ../shared/STYLE.md and issue 14, run by
# scripts/test.sh before the build. Each finding is one "file:line: rule: text"
# line; the exit status is 1 when there is any (0 with --report, which only
# lists them).
#
#   banned     strcat, strncat, strcpy, stpcpy, sprintf, vsprintf, gets, atoi,
#              atol, atoll, strtok in src/ and tests/ (use snprintf, toro_strbuf,
#              memcpy with a checked length, toro_parse_long, strtok_r)
#   layers     every #include "dir/file.h" between src/ folders is allowed by
#              the layer map in README.md ("Source layout" table, parsed from
#              there, so the README and this check cannot disagree); a folder
#              missing from the map is a finding; no include cycle among src/ files
#   length     no function in src/ longer than 80 lines, from the line of its
#              name to its closing brace (generated files are skipped)
#   copies     no run of 6 or more identical lines (comments, blank lines,
#              braces, lines that are only a string literal, preprocessor lines
#              and white space ignored) inside function bodies
#              in two places of src/; tables at file scope (option tables, ops
#              tables) are outside functions and so never count. Only exact
#              copies: `duplicates` from the developer library also finds blocks
#              alike but for names, where it is installed (it is not in CI).
#
# Usage: scripts/check-source.sh [--report] [--only banned,layers,length,copies]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import os, re, sys
from collections import defaultdict

MAX_FUNC_LINES = 80
MIN_COPY_LINES = 6
BANNED = ["strcat", "strncat", "strcpy", "stpcpy", "sprintf", "vsprintf", "gets",
          "atoi", "atol", "atoll", "strtok"]
CHECKS = ["banned", "layers", "length", "copies"]

args = sys.argv[1:]
report_only = False
only = CHECKS
while args:
    a = args.pop(0)
    if a == "--report":
        report_only = True
    elif a == "--only" and args:
        only = args.pop(0).split(",")
        bad = [c for c in only if c not in CHECKS]
        if bad:
            sys.exit("check-source: unknown check %s (known: %s)" % (",".join(bad), ",".join(CHECKS)))
    elif a in ("-h", "--help"):
        print("usage: scripts/check-source.sh [--report] [--only %s]" % ",".join(CHECKS))
        sys.exit(0)
    else:
        sys.exit("check-source: unknown argument %s (see --help)" % a)

findings = []  # (check, path, line, text)


def find(check, path, line, text):
    findings.append((check, path, line, text))


def sources(top, exts=(".c", ".h")):
    out = []
    for d, dirs, files in os.walk(top):
        dirs[:] = sorted(x for x in dirs if x not in ("node_modules", "corpus"))
        out += [os.path.join(d, f) for f in sorted(files) if f.endswith(exts)]
    return out


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def strip_c(text, keep_strings=False):
    """Blanks comments, string and character literals (keeping newlines and the
    quotes), so braces and names inside them are not code."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'" and not keep_strings:
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + (c if j - 1 > i else ""))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def blank_preprocessor(code):
    """Blanks preprocessor lines (with their continuations)."""
    lines = code.split("\n")
    cont = False
    for k, l in enumerate(lines):
        if cont or l.lstrip().startswith("#"):
            cont = l.rstrip().endswith("\\")
            lines[k] = ""
    return "\n".join(lines)


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


# ---------------------------------------------------------------- banned
def check_banned():
    pat = re.compile(r"(?<![\w.>])(%s)\s*\(" % "|".join(BANNED))
    for path in sources("src") + sources("tests"):
        code = strip_c(read(path))
        for m in pat.finditer(code):
            if re.match(r"#\s*define\s+" + m.group(1) + r"\b", code[code.rfind("\n", 0, m.start()) + 1:].lstrip()):
                continue
            find("banned", path, line_of(code, m.start()),
                 "%s() is banned (STYLE.md 11): use snprintf, toro_strbuf, a checked memcpy, "
                 "toro_parse_long or strtok_r" % m.group(1))


# ---------------------------------------------------------------- layers
def layer_map():
    """Parses README.md's "Source layout" table: rows "| `src/X/` | ... | Y, Z |";
    the last cell lists the folders X may include ("—" for none)."""
    text = read("README.md")
    start = text.find("<!-- layer-map -->")
    end = text.find("<!-- /layer-map -->")
    if start < 0 or end < 0:
        find("layers", "README.md", 1, "no layer map (<!-- layer-map --> ... <!-- /layer-map -->) in README.md")
        return None, 0
    lmap = {}
    base = line_of(text, start)
    for k, row in enumerate(text[start:end].split("\n")):
        m = re.match(r"\|\s*`src/(\w+)/?`\s*\|.*\|\s*([^|]*?)\s*\|\s*$", row)
        if not m:
            continue
        may = [x.strip(" `") for x in m.group(2).split(",")]
        lmap[m.group(1)] = {re.sub(r"^src/|/$", "", x) for x in may if x and x not in ("—", "-", "nothing")}
    for folder, may in lmap.items():
        for x in may - set(lmap):
            find("layers", "README.md", base, "layer map: %s may include %s, which is not in the map" % (folder, x))
    cycles = set()

    def below(f, path):
        for x in sorted(lmap.get(f, ())):
            if x in path:
                cyc = path[path.index(x):]
                if frozenset(cyc) not in cycles:
                    cycles.add(frozenset(cyc))
                    find("layers", "README.md", base, "layer map has a cycle: " + " -> ".join(cyc + [x]))
            else:
                below(x, path + [x])

    for folder in lmap:
        below(folder, [folder])
    return lmap, base


def check_layers():
    lmap, map_line = layer_map()
    inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
    files = sources("src")
    graph = defaultdict(list)  # file -> [(included file, line)]
    for path in files:
        text = read(path)
        for m in inc.finditer(text):
            name = m.group(1)
            cands = [os.path.normpath(os.path.join(os.path.dirname(path), name)), os.path.join("src", name)]
            target = next((c for c in cands if os.path.isfile(c)), None)
            if target:
                graph[path].append((target, line_of(text, m.start())))
    if lmap is not None:
        for folder in sorted({p.split(os.sep)[1] for p in files}):
            if folder not in lmap:
                find("layers", "src/" + folder, 1,
                     "folder is not in the layer map of README.md (add a row saying what it may include)")
        for path in files:
            src = path.split(os.sep)[1]
            for target, line in graph[path]:
                dst = target.split(os.sep)[1]
                if src == dst or src not in lmap or dst not in lmap:
                    continue
                if dst not in lmap[src]:
                    find("layers", path, line, "%s/ may not include %s (layer map, README.md:%d)" %
                         (src, target[len("src/"):], map_line))
    # include cycles among files: depth-first search, each cycle reported once
    state, stack, seen = {}, [], set()

    def visit(f):
        state[f] = 1
        stack.append(f)
        for g, line in graph[f]:
            if state.get(g) == 1:
                cyc = stack[stack.index(g):]
                key = frozenset(cyc)
                if key not in seen:
                    seen.add(key)
                    find("layers", f, line, "include cycle: " + " -> ".join(cyc + [g]))
            elif g not in state:
                visit(g)
        stack.pop()
        state[f] = 2

    for f in files:
        if f not in state:
            visit(f)


# ---------------------------------------------------------------- functions
def functions(path):
    """Yields (name, first line, last line, body start offset, body end offset,
    code) for every function definition in a C file."""
    code = blank_preprocessor(strip_c(read(path)))
    depth, head_start = 0, 0
    i, n = 0, len(code)
    while i < n:
        c = code[i]
        if c == "{":
            if depth == 0:
                head = code[head_start:i]
                m = re.search(r"(\w+)\s*\([^;{}]*\)\s*$", head)
                if m and not re.search(r"=\s*$|\b(struct|union|enum)\s+\w*\s*$", head) and \
                        m.group(1) not in ("if", "for", "while", "switch", "return", "sizeof"):
                    name_pos = head_start + m.start(1)
                    j, d = i, 0
                    while j < n:
                        if code[j] == "{":
                            d += 1
                        elif code[j] == "}":
                            d -= 1
                            if d == 0:
                                break
                        j += 1
                    yield m.group(1), line_of(code, name_pos), line_of(code, j), i, j, code
                    i, head_start = j + 1, j + 1
                    continue
            depth += 1
        elif c == "}":
            depth = max(0, depth - 1)
            if depth == 0:
                head_start = i + 1
        elif c == ";" and depth == 0:
            head_start = i + 1
        i += 1


def generated(path):
    """A file whose opening comment says it is generated from or by something."""
    return re.search(r"\bgenerated\s+(from|by)\b", read(path)[:400], re.I) is not None


def check_length():
    for path in sources("src"):
        if generated(path):
            continue
        for name, first, last, _, _, _ in functions(path):
            lines = last - first + 1
            if lines > MAX_FUNC_LINES:
                find("length", path, first, "%s() is %d lines (at most %d)" % (name, lines, MAX_FUNC_LINES))


# ---------------------------------------------------------------- copies
def check_copies():
    runs = []  # per file: [(normalized line, line number)] inside function bodies
    for path in sources("src"):
        if generated(path):
            continue
        text = strip_c(read(path), keep_strings=True).split("\n")
        for name, _, _, a, b, code in functions(path):
            first, last = line_of(code, a), line_of(code, b)
            lines = []
            for k, l in enumerate(text[first - 1:last]):
                if l.lstrip().startswith("#"):
                    continue
                t = " ".join(l.split())
                if not t or re.fullmatch(r"[{}()\[\];,]*|else|else \{|\} else \{|do \{|\} while \(0\);", t) or \
                        re.fullmatch(r'"([^"\\]|\\.)*"[);,]*', t):  # text (usage, SQL), not logic
                    continue
                lines.append((t, first + k))
            runs.append((path, name, lines))
    where = defaultdict(list)
    for ri, (_, _, lines) in enumerate(runs):
        for k in range(len(lines) - MIN_COPY_LINES + 1):
            where[tuple(t for t, _ in lines[k:k + MIN_COPY_LINES])].append((ri, k))
    diag = defaultdict(set)  # (file a, file b, offset) -> starts in a of matching windows
    for places in where.values():
        for x in range(len(places)):
            for y in range(x + 1, len(places)):
                (ra, ka), (rb, kb) = places[x], places[y]
                if ra == rb and abs(ka - kb) < MIN_COPY_LINES:
                    continue
                diag[(ra, rb, kb - ka)].add(ka)
    for (ra, rb, off), starts in sorted(diag.items()):
        starts = sorted(starts)
        k = 0
        while k < len(starts):
            j = k
            while j + 1 < len(starts) and starts[j + 1] == starts[j] + 1:
                j += 1
            ka, n = starts[k], starts[j] - starts[k] + MIN_COPY_LINES
            kb = ka + off
            pa, na, la = runs[ra]
            pb, nb, lb = runs[rb]
            find("copies", pa, la[ka][1], "%d lines (%d-%d, in %s()) repeat %s:%d-%d (in %s()): make one function" %
                 (n, la[ka][1], la[ka + n - 1][1], na, pb, lb[kb][1], lb[kb + n - 1][1], nb))
            k = j + 1


for c in only:
    {"banned": check_banned, "layers": check_layers, "length": check_length, "copies": check_copies}[c]()

for check, path, line, text in sorted(findings, key=lambda f: (CHECKS.index(f[0]), f[1], f[2])):
    print("%s:%d: %s: %s" % (path, line, check, text))
sys.stdout.flush()
counts = {c: sum(1 for f in findings if f[0] == c) for c in only}
summary = ", ".join("%s %d" % (c, counts[c]) for c in only)
if findings:
    print("check-source: %d finding%s (%s)%s" % (len(findings), "" if len(findings) == 1 else "s", summary,
          "; --report: not failing" if report_only else ""), file=sys.stderr)
    sys.exit(0 if report_only else 1)
print("check-source: clean (%s)" % summary, file=sys.stderr)
PY
