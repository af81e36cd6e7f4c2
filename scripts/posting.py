#!/usr/bin/python3
"""Build the posting form of the series as commits (run by format-series.sh).

The repository keeps new libvirt files whole, in their final state, and
patches/ edits existing files only.  The posting form is what would be
mailed: each patch adds the new files it uses, and the new C sources grow
patch by patch.

  posting.py GIT_DIR BASE ROOT MAP NEW_FILES_LIST

applies ROOT/patches/*.patch one by one onto the commit BASE in GIT_DIR
(an index of its own, no work tree), adds to each the new files and parts
of new files it uses, commits it with the patch's author, date and message
and prints the last commit.  Stdlib only.

Which new files a patch gets (the rules of check-series.sh, except for
private headers):
  - src/**.c             once a meson.build lists it; its .h with it
  - src/**priv.h         once a file other than its .c includes it (a test)
  - tests/*.c            once tests/meson.build names the test
  - tests/qemuxmlconfdata/*   once tests/qemuxmlconftest.c names its stem
  - other tests/*        once a test program names its stem

Which parts of a new C file (.c, .h under src/) a patch gets: the file is
split into top-level chunks (a function with its comment, a prototype, a
typedef, a #define, an #include, VIR_LOG_INIT).  A chunk is in a patch
once something calls it: the tree as patched (comments left out, new
source files left out), a present new test, a chunk already in
(transitively), or an 'add' line of the map.  A prototype comes with its
function; an #include once a chunk of its file (or of a file including
it) uses a name its header declares (or one the map lists for it).  Until
a private header is there, the functions it declares are static and the C
file includes the public header instead.  Where a patch changes a
function that an earlier patch added, the map says how (see posting.map).

It fails, saying why, on what it cannot place: a construct it cannot
split, a map hunk that does not match, a chunk that would go away, and a
last patch whose new files are not exactly the repository's.
"""

import os
import re
import subprocess
import sys


def die(msg):
    sys.stderr.write("posting.py: %s\n" % msg)
    sys.exit(1)


GIT_DIR = None
INDEX = None


def git(*args, stdin=None, env_extra=None, check=True):
    env = dict(os.environ)
    env["GIT_DIR"] = GIT_DIR
    env["GIT_INDEX_FILE"] = INDEX
    if env_extra:
        env.update(env_extra)
    p = subprocess.run(["git"] + list(args), input=stdin, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and p.returncode != 0:
        die("git %s failed: %s" % (" ".join(args[:3]),
                                   p.stderr.decode(errors="replace").strip()))
    return p


def git_out(*args, **kw):
    return git(*args, **kw).stdout.decode()


# --- C text ---------------------------------------------------------------

def strip_c(text):
    """Blanks comments and the contents of string and character literals,
    keeping newlines (and so line numbers) and the quotes."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                die("unterminated comment")
            out.append("".join("\n" if ch == "\n" else " " for ch in text[i:j + 2]))
            i = j + 2
        elif c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                if text[j] == "\\":
                    j += 1
                j += 1
            out.append(c + "".join("\n" if ch == "\n" else " "
                                   for ch in text[i + 1:j]) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


IDENT = re.compile(r"\b[A-Za-z_]\w*\b")


def idents(code):
    return set(IDENT.findall(code))


def strip_pp(code):
    """Removes preprocessor lines (with continuations) from stripped code."""
    out = []
    cont = False
    for line in code.split("\n"):
        if cont or line.lstrip().startswith("#"):
            cont = line.rstrip().endswith("\\")
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


TOKEN = re.compile(r"[A-Za-z_]\w*|\d\w*|\S")


def declared_names(text):
    """The names a header declares itself: macros, functions, types, enum
    constants, variables (not the ones it merely mentions)."""
    code = strip_c(text)
    names = set(re.findall(r"^\s*#\s*define\s+(\w+)", code, re.M))
    toks = TOKEN.findall(strip_pp(code))
    stmt = []
    depth = 0
    for t in toks:
        stmt.append(t)
        if t == "{":
            depth += 1
        elif t == "}":
            depth -= 1
        elif t == ";" and depth == 0:
            names |= statement_names(stmt)
            stmt = []
    return names


def statement_names(st):
    names = set()
    # enum constants
    for i, t in enumerate(st):
        if t == "enum":
            j = i + 1
            while j < len(st) and st[j] != "{" and st[j] != ";":
                j += 1
            if j < len(st) and st[j] == "{":
                d = 0
                expect = True
                for t2 in st[j:]:
                    if t2 in "{(":
                        d += 1
                        if d == 1:
                            expect = True
                            continue
                    elif t2 in "})":
                        d -= 1
                    elif t2 == "," and d == 1:
                        expect = True
                        continue
                    if expect and d == 1 and IDENT.fullmatch(t2):
                        names.add(t2)
                    expect = False
    # struct/union/enum tags with a body
    for i in range(len(st) - 2):
        if st[i] in ("struct", "union", "enum") and IDENT.fullmatch(st[i + 1]) \
           and st[i + 2] == "{":
            names.add(st[i + 1])
    top = []
    d = 0
    for t in st:
        if t == "{":
            d += 1
        elif t == "}":
            d -= 1
        elif d == 0:
            top.append(t)
    if not top:
        return names
    if top[0] == "typedef":
        for i in range(len(top) - 3):
            if top[i] == "(" and top[i + 1] == "*" and IDENT.fullmatch(top[i + 2]):
                names.add(top[i + 2])
                return names
        ids = [t for t in top if IDENT.fullmatch(t)]
        if ids:
            names.add(ids[-1])
        return names
    if "(" in top:
        i = top.index("(")
        if i > 0 and IDENT.fullmatch(top[i - 1]):
            names.add(top[i - 1])
        return names
    ids = [t for t in top[:top.index("=")] if IDENT.fullmatch(t)] if "=" in top \
        else [t for t in top if IDENT.fullmatch(t)]
    if ids:
        names.add(ids[-1])
    return names


# --- splitting the new C files into chunks -----------------------------------

# What VIR_LOG_INIT() is for.
LOG_MACROS = {"VIR_DEBUG", "VIR_INFO", "VIR_WARN", "VIR_ERROR"}


class Chunk:
    def __init__(self, path, kind, lines, sep, name=None):
        self.path = path
        self.kind = kind        # always, include, def, decl, type, macro, log
        self.lines = lines      # its text (comment included), final version
        self.sep = sep          # blank lines before it in the final file
        self.name = name        # def/decl/type/macro: its name; include: header
        self.provides = set()
        self.static = False
        self.versions = {}      # patch index -> lines, where they differ

    def text_at(self, k):
        for p in sorted(self.versions):
            if k < p:
                return self.versions[p]
        return self.lines

    def __repr__(self):
        return "%s:%s" % (os.path.basename(self.path), self.name or self.kind)


def split_c(path, text):
    if not text.endswith("\n"):
        die("%s: no newline at the end" % path)
    lines = text[:-1].split("\n")
    slines = strip_c(text[:-1]).split("\n")
    n = len(lines)
    chunks = []
    i = 0
    blank = 0
    comment = None          # pending comment lines attached to the next item

    def add(kind, body, name=None):
        nonlocal comment, blank
        ls = (comment or []) + body
        chunks.append(Chunk(path, kind, ls, blank, name))
        comment = None
        blank = 0

    while i < n:
        raw = lines[i]
        s = slines[i]
        where = "%s:%d" % (path, i + 1)
        if raw.strip() == "":
            if comment is not None:
                if chunks:
                    die("%s: a comment stands alone; attach it to what it is about" % where)
                # the file's first comment: the licence
                chunks.append(Chunk(path, "always", comment, blank, "preamble"))
                comment = None
                blank = 0
            blank += 1
            i += 1
            continue
        if s.strip() == "" and raw.lstrip().startswith("/*"):
            j = i
            while "*/" not in lines[j]:
                j += 1
                if j >= n:
                    die("%s: unterminated comment" % where)
            if comment is not None:
                die("%s: two comments before one item" % where)
            comment = lines[i:j + 1]
            i = j + 1
            continue
        if s.lstrip().startswith("#"):
            j = i
            directive = s.strip()
            if re.match(r"#\s*if", directive):
                nest = 0
                while True:
                    d = slines[j].strip()
                    if re.match(r"#\s*if", d):
                        nest += 1
                    elif re.match(r"#\s*endif", d):
                        nest -= 1
                        if nest == 0:
                            break
                    j += 1
                    if j >= n:
                        die("%s: #if without #endif" % where)
                add("always", lines[i:j + 1], "#if")
                i = j + 1
                continue
            while lines[j].rstrip().endswith("\\"):
                j += 1
            body = lines[i:j + 1]
            m_inc = re.match(r'#\s*include\s+([<"][^>"]+[>"])', raw.strip())
            m_def = re.match(r"#\s*define\s+(\w+)", directive)
            if m_inc:
                hdr = m_inc.group(1)
                add("always" if hdr == "<config.h>" else "include", body, hdr)
            elif m_def and m_def.group(1) == "VIR_FROM_THIS":
                add("always", body, "VIR_FROM_THIS")
            elif m_def and m_def.group(1).endswith("_ALLOW") and \
                    j + 1 < n and re.match(r'#\s*include\s+"', lines[j + 1].strip()):
                # the permission to include a private header goes with it
                hdr = re.match(r'#\s*include\s+("[^"]+")', lines[j + 1].strip()).group(1)
                add("include", body + [lines[j + 1]], hdr)
                j += 1
            elif m_def:
                add("macro", body, m_def.group(1))
                chunks[-1].provides = {m_def.group(1)}
            elif re.match(r"#\s*pragma\s+once", directive):
                add("always", body, "#pragma once")
            else:
                die("%s: cannot place '%s'" % (where, directive))
            i = j + 1
            continue
        # code: up to the line where braces and parentheses close on ; or }
        j = i
        depth = 0
        paren = 0
        while True:
            sj = slines[j]
            depth += sj.count("{") - sj.count("}")
            paren += sj.count("(") - sj.count(")")
            end = sj.rstrip()
            if depth == 0 and paren == 0 and (end.endswith(";") or end.endswith("}")) \
               and not sj.lstrip().startswith("#"):
                break
            j += 1
            if j >= n:
                die("%s: cannot find the end of this item" % where)
        body = lines[i:j + 1]
        code = "\n".join(slines[i:j + 1])
        flat = " ".join(code.split())
        if re.match(r"typedef\b", flat):
            m = re.search(r"\(\s*\*\s*(\w+)\s*\)", flat.split("{")[0]) if "{" not in flat \
                else None
            if m:
                name = m.group(1)
            else:
                name = IDENT.findall(flat.rsplit("}", 1)[-1] if "}" in flat else flat)[-1]
            add("type", body, name)
            chunks[-1].provides = {name}
            m = re.match(r"typedef\s+(?:struct|union|enum)\s+(\w+)\s*\{", flat)
            if m:
                chunks[-1].provides.add(m.group(1))
            continue_i = j + 1
        elif re.match(r"(static\s+)?(struct|union|enum)\s+\w+\s*\{", flat):
            name = re.match(r"(?:static\s+)?(?:struct|union|enum)\s+(\w+)", flat).group(1)
            add("type", body, name)
            chunks[-1].provides = {name}
            continue_i = j + 1
        else:
            brace = flat.find("{")
            head = flat if brace < 0 else flat[:brace]
            m = re.search(r"(\w+)\s*\(", head)
            if not m:
                die("%s: cannot place this item" % where)
            name = m.group(1)
            if brace >= 0:
                add("def", body, name)
                chunks[-1].provides = {name}
                chunks[-1].static = bool(re.match(r"static\b", flat))
            elif name == "VIR_LOG_INIT":
                add("log", body, name)
                chunks[-1].provides = set(LOG_MACROS)
            elif flat.endswith(";"):
                add("decl", body, name)
            else:
                die("%s: cannot place this item" % where)
            continue_i = j + 1
        i = continue_i
    if comment is not None:
        die("%s: a comment at the end of the file" % path)
    return chunks, blank


def join_chunks(chunks, trailer, present):
    """The file with the chunks in @present (with their text), each after
    the blank lines that followed the last chunk kept in the full file."""
    out = []
    pending = None
    for c in chunks:
        if pending is None:
            pending = c.sep
        if c in present:
            out.extend([""] * (pending if out else c.sep))
            out.extend(present[c])
            pending = None
    out.extend([""] * trailer)
    return "\n".join(out) + "\n"


# --- the map ----------------------------------------------------------------

class Hunk:
    def __init__(self, where):
        self.where = where
        self.lines = []

    def sides(self):
        old = [l[1:] for l in self.lines if l[:1] in (" ", "-")]
        new = [l[1:] for l in self.lines if l[:1] in (" ", "+")]
        return old, new


def read_map(path, subjects):
    adds = {}       # patch index -> [names]
    edits = {}      # name -> {patch index: [Hunk]}
    includes = {}   # header -> names
    patch = None
    name = None
    hunk = None
    with open(path) as f:
        lines = f.read().split("\n")

    def end_hunk():
        nonlocal hunk
        if hunk is not None:
            while hunk.lines and hunk.lines[-1] == " ":
                hunk.lines.pop()
            if not any(l[:1] in "+-" for l in hunk.lines):
                die("%s: a hunk that changes nothing" % hunk.where)
            hunk = None

    for no, line in enumerate(lines, 1):
        where = "%s:%d" % (path, no)
        if hunk is not None and (line == "" or line[:1] in (" ", "+", "-")):
            hunk.lines.append(line if line else " ")
            continue
        end_hunk()
        if line.strip() == "" or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == "patch":
            if rest not in subjects:
                die("%s: no patch has the subject '%s'" % (where, rest))
            patch = subjects.index(rest)
            name = None
        elif word == "add":
            if patch is None:
                die("%s: 'add' outside a patch section" % where)
            adds.setdefault(patch, []).extend(rest.split())
        elif word == "in":
            if patch is None:
                die("%s: 'in' outside a patch section" % where)
            name = rest
            edits.setdefault(name, {}).setdefault(patch, [])
        elif word == "@@":
            if name is None:
                die("%s: a hunk before 'in NAME'" % where)
            hunk = Hunk(where)
            edits[name][patch].append(hunk)
        elif word == "include":
            hdr, _, names = rest.partition(" ")
            includes.setdefault(hdr, set()).update(names.split())
        else:
            die("%s: cannot read '%s'" % (where, line))
    end_hunk()
    return adds, edits, includes


def apply_back(lines, hunk, name):
    """The text before the patch of @hunk: its new side replaced by its old."""
    old, new = hunk.sides()
    found = [i for i in range(len(lines) - len(new) + 1) if lines[i:i + len(new)] == new]
    if len(found) != 1:
        die("%s: the ' ' and '+' lines of this hunk are in %s %d times, not once: "
            "update the map to the file" % (hunk.where, name, len(found)))
    i = found[0]
    return lines[:i] + old + lines[i + len(new):]


# --- the series ---------------------------------------------------------------

def mailinfo(patch):
    with open(patch, "rb") as f:
        data = f.read()
    tmp = INDEX + ".msg"
    info = git("mailinfo", tmp, INDEX + ".patch", stdin=data).stdout.decode()
    fields = {}
    for line in info.split("\n"):
        k, _, v = line.partition(": ")
        if k:
            fields[k] = v
    with open(tmp) as f:
        body = f.read()
    os.unlink(tmp)
    os.unlink(INDEX + ".patch")
    return fields, body


def file_rule(path):
    base = os.path.basename(path)
    stem = base.split(".")[0]
    for suffix in ("-in", "-out"):
        if stem.endswith(suffix):
            stem = stem[:-len(suffix)]
    return base, stem


def main():
    global GIT_DIR, INDEX
    if len(sys.argv) != 6:
        die("usage: posting.py GIT_DIR BASE ROOT MAP NEW_FILES_LIST")
    GIT_DIR, base, root, mappath, listpath = sys.argv[1:]
    INDEX = os.path.join(GIT_DIR, "posting-index")

    patches = sorted(os.path.join(root, "patches", p)
                     for p in os.listdir(os.path.join(root, "patches"))
                     if p.endswith(".patch"))
    if not patches:
        die("libvirt/patches/ is empty")
    infos = [mailinfo(p) for p in patches]
    subjects = [i[0]["Subject"] for i in infos]

    with open(listpath) as f:
        newfiles = [l for l in f.read().split("\n") if l]
    content = {}
    for p in newfiles:
        with open(os.path.join(root, p), "rb") as f:
            content[p] = f.read()

    split = [p for p in newfiles if p.startswith("src/") and p.endswith((".c", ".h"))]
    for p in newfiles:
        if p not in split and not p.startswith("tests/"):
            die("no rule for the new file %s: which patch uses it?" % p)
    files = {}          # split path -> (chunks, trailer)
    for p in split:
        try:
            text = content[p].decode()
        except UnicodeDecodeError:
            die("%s is not UTF-8" % p)
        files[p] = split_c(p, text)
    allchunks = [c for p in split for c in files[p][0]]
    privs = [p for p in split if p.endswith("priv.h")]

    def public_of(priv):
        return priv[:-len("priv.h")] + ".h"

    def c_of(h):
        return re.sub(r"(priv)?\.h$", ".c", h)

    adds, edits, map_includes = read_map(mappath, subjects)

    # functions, types and macros by name; what headers declare
    provider = {}
    for c in allchunks:
        for nm in c.provides:
            if nm in provider and provider[nm].kind != "log":
                die("%s and %s both define %s" % (provider[nm], c, nm))
            provider[nm] = c
    decls = {}
    for c in allchunks:
        if c.kind == "decl":
            if c.name not in provider or provider[c.name].kind != "def":
                die("%s declares %s, which no new C file defines" % (c.path, c.name))
            decls.setdefault(c.name, []).append(c)
    exported = {c.name: c for c in allchunks
                if c.path.endswith(".h") and c.kind in ("decl", "type", "macro")}
    privdecl = {c.name: c.path for c in allchunks
                if c.kind == "decl" and c.path in privs}
    for nm in adds.values():
        for x in nm:
            if x not in provider:
                die("%s: 'add %s': no such function, type or macro" % (mappath, x))

    # the earlier versions the map describes, checked all at once
    for nm, bypatch in edits.items():
        if nm not in provider or provider[nm].kind not in ("def", "type", "macro"):
            die("%s: 'in %s': no such function, type or macro" % (mappath, nm))
        c = provider[nm]
        text = c.lines
        for p in sorted(bypatch, reverse=True):
            for h in reversed(bypatch[p]):
                text = apply_back(text, h, nm)
            c.versions[p] = text

    # the series, patch by patch, in an index of its own
    git("read-tree", base)
    parent = base
    present_before = {}             # chunk -> True
    present_files = set()
    header_cache = {}
    present_prev = {}
    files_prev = set()
    for k, patch in enumerate(patches):
        fields, body = infos[k]
        with open(patch, "rb") as f:
            git("apply", "--cached", "--whitespace=nowarn", stdin=f.read())
        tree = git_out("write-tree").strip()

        def cat(path):
            return git("cat-file", "blob", "%s:%s" % (tree, path)).stdout.decode(
                errors="replace")

        def grep(patterns, pathspecs, only_matching=True):
            args = ["grep", "-h", "-F", "--no-color"]
            if only_matching:
                args.append("-o")
            for pat in patterns:
                args += ["-e", pat]
            p = git(*(args + [tree, "--"] + pathspecs), check=False)
            if p.returncode not in (0, 1):
                die("git grep failed: %s" % p.stderr.decode())
            return p.stdout.decode(errors="replace")

        # whole new files: the tests and their data
        present = set()
        listed = set(grep(["'%s'" % os.path.basename(p) for p in split if p.endswith(".c")],
                          ["*meson.build"]).split("\n"))
        for p in split:
            if p.endswith(".c") and "'%s'" % os.path.basename(p) in listed:
                present.add(p)
        for p in split:
            if p.endswith(".h") and p not in privs and c_of(p) in present:
                present.add(p)
        testmeson = cat("tests/meson.build")
        for p in newfiles:
            if p.startswith("tests/") and p.endswith(".c") and os.path.dirname(p) == "tests":
                if "'name': '%s'" % file_rule(p)[1] in testmeson:
                    present.add(p)
        newtests = [content[p].decode(errors="replace") for p in sorted(present)
                    if p.startswith("tests/") and p.endswith(".c")]
        data = [p for p in newfiles if p.startswith("tests/") and
                not (p.endswith(".c") and os.path.dirname(p) == "tests")]
        stems = sorted({'"%s"' % file_rule(p)[1] for p in data})
        named_conf = set(grep(stems, ["tests/qemuxmlconftest.c"]).split("\n"))
        named_any = set(grep(stems, ["tests/*.c"]).split("\n"))
        for t in newtests:
            named_any |= {s for s in stems if s in t}
        for p in data:
            stem = '"%s"' % file_rule(p)[1]
            if p.startswith("tests/qemuxmlconfdata/"):
                if stem in named_conf:
                    present.add(p)
            elif stem in named_any:
                present.add(p)
        for priv in privs:
            inc = '%s"' % os.path.basename(priv)
            users = [t for t in newtests if inc in t]
            if public_of(priv) in present and users:
                present.add(priv)

        # what the tree outside the new source files calls
        roots = set()
        hits = git("grep", "-l", "-F", *sum((["-e", x] for x in sorted(exported)), []),
                   tree, "--", "*.c", "*.h", check=False)
        if hits.returncode not in (0, 1):
            die("git grep failed: %s" % hits.stderr.decode())
        for f in hits.stdout.decode().split("\n"):
            f = f.partition(":")[2]
            if f and f not in content:
                roots |= idents(strip_c(cat(f))) & set(exported)
        for t in newtests:
            roots |= idents(strip_c(t)) & set(exported)
        for p in range(k + 1):
            roots |= set(adds.get(p, []))

        def has_priv(path):
            return any(pv in present for pv in privs if c_of(pv) == path)

        def text_at(c):
            ls = c.text_at(k)
            if c.kind == "def" and c.name in privdecl and privdecl[c.name] not in present:
                # the function is the file's own until a test needs it
                i = next(i for i, l in enumerate(ls)
                         if l.strip() and not l.lstrip().startswith(("/*", "*")))
                ls = ls[:i] + ["static " + ls[i]] + ls[i + 1:]
            if c.kind == "include" and c.name.endswith('priv.h"') and \
               not any(pv in present for pv in privs
                       if c.name == '"%s"' % os.path.basename(pv)):
                ls = ['#include "%s.h"' % c.name.strip('"')[:-len("priv.h")]]
            return ls

        # closure
        have = set()
        todo = []
        for r in roots:
            if r in provider:
                todo.append(provider[r])
            elif r in exported:
                todo.append(exported[r])
        while todo:
            c = todo.pop()
            if c in have or c.path not in present:
                continue
            have.add(c)
            if c.kind == "def":
                todo.extend(d for d in decls.get(c.name, []))
            for nm in idents(strip_c("\n".join(text_at(c)))):
                if nm in provider and provider[nm] is not c:
                    todo.append(provider[nm])
        for c in have:
            if c.kind == "decl" and provider[c.name] not in have:
                die("%s is declared but not defined in %s" % (c.name, subjects[k]))
        for c in allchunks:
            if c.kind == "always" and c.path in present:
                have.add(c)

        # includes
        tree_paths = None
        for c in allchunks:
            if c.kind != "include" or c.path not in present:
                continue
            hdr = c.name.strip('<>"')
            if any(os.path.basename(p) == hdr for p in split):
                have.add(c)
                continue
            users = [c.path]
            if c.path.endswith(".h"):
                users += [p for p in split if p.endswith(".c") and
                          c_of(p) == c_of(c.path)]
                users += [pv for pv in privs if public_of(pv) == c.path]
            used = set()
            for u in allchunks:
                if u.path in users and u in have:
                    used |= idents(strip_c("\n".join(text_at(u))))
            names = set(map_includes.get(c.name, set()))
            if c.name.startswith('"'):
                if tree_paths is None:
                    tree_paths = [l for l in git_out("ls-tree", "-r", "--name-only", tree,
                                                     "--", "src").split("\n") if l]
                cands = [p for p in tree_paths if os.path.basename(p) == hdr]
                same = [p for p in cands if os.path.dirname(p) == os.path.dirname(c.path)]
                if same:
                    cands = same
                if not cands and names:
                    pass    # generated at build time: the map says what it declares
                elif len(cands) != 1:
                    die("%s: cannot tell which header %s is (%d candidates)"
                        % (c.path, c.name, len(cands)))
                else:
                    key = (tree, cands[0])
                    if key not in header_cache:
                        header_cache[key] = declared_names(cat(cands[0]))
                    names |= header_cache[key]
            elif not names:
                die("%s: the map says nothing of what %s declares (an 'include' line)"
                    % (c.path, c.name))
            if used & names:
                have.add(c)

        for c in present_before:
            if c not in have:
                die("%s would go away in '%s'" % (c, subjects[k]))
        for p in present_files:
            if p not in present:
                die("%s would go away in '%s'" % (p, subjects[k]))

        # the new files as this patch leaves them
        out = {}
        for p in newfiles:
            if p not in present:
                continue
            if p in files:
                chunks, trailer = files[p]
                out[p] = join_chunks(chunks, trailer,
                                     {c: text_at(c) for c in chunks if c in have}).encode()
            else:
                out[p] = content[p]
        for p, data_ in out.items():
            blob = git_out("hash-object", "-w", "--stdin", stdin=data_).strip()
            mode = "100755" if os.access(os.path.join(root, p), os.X_OK) else "100644"
            git("update-index", "--add", "--cacheinfo", "%s,%s,%s" % (mode, blob, p))
        tree = git_out("write-tree").strip()
        env = {
            "GIT_AUTHOR_NAME": fields["Author"],
            "GIT_AUTHOR_EMAIL": fields["Email"],
            "GIT_AUTHOR_DATE": fields["Date"],
            "GIT_COMMITTER_NAME": fields["Author"],
            "GIT_COMMITTER_EMAIL": fields["Email"],
            "GIT_COMMITTER_DATE": fields["Date"],
        }
        msg = fields["Subject"] + ("\n\n" + body if body.strip() else "\n")
        parent = git_out("commit-tree", tree, "-p", parent, stdin=msg.encode(),
                         env_extra=env).strip()
        present_before = {c: True for c in have}
        present_files = set(present)
        if os.environ.get("POSTING_VERBOSE"):
            added = [c for c in allchunks if c in have and c not in present_prev and
                     c.kind not in ("always",)]
            changed = [c for c in allchunks if c in have and c in present_prev and
                       text_at(c) != present_prev[c]]
            sys.stderr.write("%04d %s\n" % (k + 1, subjects[k]))
            for p in sorted(present - files_prev):
                sys.stderr.write("  new file %s\n" % p)
            for c in added:
                sys.stderr.write("  + %r\n" % c)
            for c in changed:
                sys.stderr.write("  ~ %r\n" % c)
        present_prev = {c: text_at(c) for c in have}
        files_prev = set(present)
        last_out = out

    # the last patch leaves the new files as the repository has them
    for p in newfiles:
        if p not in last_out:
            die("no patch uses the new file %s" % p)
        if last_out[p] != content[p]:
            missing = [c for c in files.get(p, ([], 0))[0] if c not in present_before]
            die("after the last patch %s is not the repository's: %s"
                % (p, ", ".join(map(repr, missing)) or "(text differs)"))
    os.unlink(INDEX)
    print(parent)


if __name__ == "__main__":
    main()
