#!/usr/bin/env python3
"""Lists the module-level dependencies of each crate src/ given and any cycle among them; exits
1 on a cycle. `--quiet` prints only the cycles and one line per crate. Run by `make lint`.

A module depends on another when its non-test code names it: `use crate::a::b`, `crate::a::b::f`
in an expression or attribute, `super::x`, `self::x`, or a child module by its bare name. Test
modules (`#[cfg(test)] mod ...`) are left out: they may use anything."""
import os, re, sys

def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'):
                continue
            p = os.path.join(root, f)
            rel = os.path.relpath(p, src)[:-3].split(os.sep)
            if rel[-1] in ('lib', 'main', 'mod'):
                rel = rel[:-1]
            if rel and rel[0] == 'bin':
                continue
            if p.endswith('main.rs'):
                continue
            mods[tuple(rel)] = p
    return mods

def strip_tests(text):
    m = re.search(r'#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod \w+\s*(\{|;)', text)
    return text[:m.start()] if m else text

def resolve(path, here, mods):
    """The longest known module prefix of `path` (a list of segments) seen from `here`."""
    segs = list(path)
    if segs[0] == 'crate':
        base = []
        segs = segs[1:]
    elif segs[0] in ('super', 'self'):
        base = list(here)
        while segs and segs[0] in ('super', 'self'):
            if segs[0] == 'super':
                base = base[:-1]
            segs = segs[1:]
    else:
        base = list(here)  # a child module named bare
        if tuple(base + segs[:1]) not in mods:
            return None
    best = None
    for n in range(len(segs) + 1):
        cand = tuple(base + segs[:n])
        if cand in mods:
            best = cand
    return best

def deps(mods):
    graph = {m: set() for m in mods}
    for m, p in mods.items():
        text = strip_tests(open(p).read())
        text = re.sub(r'//[^\n]*', '', text)
        # expand `use a::{b, c::d}` one level
        for use in re.finditer(r'\buse\s+((?:crate|super|self)(?:::\w+)*)::\{([^;]*)\};', text):
            for item in re.split(r',', use.group(2)):
                item = item.strip().split(' as ')[0].strip()
                if not item or '{' in item:
                    continue
                full = use.group(1).split('::') + item.split('::')
                t = resolve(full, m, mods)
                if t is not None and t != m:
                    graph[m].add(t)
        for ref in re.finditer(r'\b((?:crate|super|self)(?:::\w+)+)', text):
            t = resolve(ref.group(1).split('::'), m, mods)
            if t is not None and t != m:
                graph[m].add(t)
        for ref in re.finditer(r'(?<![:\w])(\w+(?:::\w+)+)', text):
            segs = ref.group(1).split('::')
            if segs[0] in ('crate', 'super', 'self'):
                continue
            t = resolve(segs, m, mods)
            if t is not None and t != m:
                graph[m].add(t)
    return graph

def cycles(graph):
    index, low, stack, on, out, i = {}, {}, [], set(), [], [0]
    def strong(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1:
                out.append(comp)
    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    return out

name = lambda m: '::'.join(('crate',) + m)
status = 0
quiet = '--quiet' in sys.argv
for src in [a for a in sys.argv[1:] if a != '--quiet']:
    g = deps(modules(src))
    print(f'== {src}')
    for m in sorted(g) if not quiet else []:
        print(f'  {name(m)} -> {", ".join(sorted(name(t) for t in g[m])) or "-"}')
    found = cycles(g)
    for c in found:
        print('  CYCLE:', ' <-> '.join(sorted(name(m) for m in c)))
        status = 1
    if not found:
        print('  no cycles')
sys.exit(status)
