#!/usr/bin/env python3
"""Import circles between files of one crate.

For each crate (a directory with Cargo.toml and src/), every .rs file is a
module; a file depends on another when it names it in a path (`use
super::x`, `crate::a::b::C`, `self::m::f`). Paths are resolved to the
longest module prefix that is a file. Strongly connected components of
more than one file are printed; the exit status is 1 when there is one.
A parent's `mod x;` declaration is not a dependency (it is the tree).
"""
import os
import re
import sys

PATH = re.compile(r'(?<!\bin )\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)')


def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'):
                continue
            p = os.path.join(root, f)
            rel = os.path.relpath(p, src)[:-3].split(os.sep)
            if rel[-1] in ('lib', 'main') and len(rel) == 1:
                rel = []
            elif rel[-1] == 'mod':
                rel = rel[:-1]
            elif rel[0] == 'bin':
                continue
            mods[tuple(rel)] = p
    return mods


def strip(text):
    text = re.sub(r'//[^\n]*', '', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    # An inline test module (`#[cfg(test)] mod tests { … }`, at the end of
    # a file) only uses its own file.
    m = re.search(r'#\[cfg\(test\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+\w+\s*\{', text)
    if m:
        text = text[:m.start()]
    return text


def deps(mod, text, mods):
    """The modules `mod` names, each with the first path that names it."""
    out = {}
    for m in PATH.finditer(text):
        parts = m.group(1).split('::')
        if parts[0] == 'crate':
            base, rest = [], parts[1:]
        else:
            base = list(mod)
            rest = parts
            while rest and rest[0] in ('super', 'self'):
                if rest[0] == 'super':
                    base = base[:-1]
                rest = rest[1:]
        path = tuple(base + rest)
        while path and path not in mods:
            path = path[:-1]
        if path in mods and path != mod:
            out.setdefault(path, m.group(1))
    return out


def sccs(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main(roots):
    bad = 0
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in ('target', '.git', 'tests')]
            if 'Cargo.toml' in files and os.path.isdir(os.path.join(dirpath, 'src')):
                mods = modules(os.path.join(dirpath, 'src'))
                graph = {}
                for mod, p in mods.items():
                    with open(p) as f:
                        graph[mod] = deps(mod, strip(f.read()), mods)
                for comp in sccs(graph):
                    bad += 1
                    print('circle in %s:' % dirpath)
                    for a in sorted(comp):
                        for b, why in sorted(graph[a].items()):
                            if b in comp:
                                print('  %s -> %s  (%s)' % (mods[a], mods[b], why))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:] or ['agent', 'pkg', 'bench', 'linuxkit', 'tests']))
