#!/usr/bin/env python3
"""Lists the source files over 600 lines and the functions over 80 lines in
the given folders (default: runtime). A function is found by its definition
line (a signature ending in '{', at any indentation, lambdas inside counting
toward their enclosing function) and measured by brace counting; good enough
for this code base's style, not a C++ parser.

    python3 scripts/structure-report.py [runtime actors ...]
"""
import os
import re
import sys

KEYWORDS = ('if', 'for', 'while', 'switch', 'catch', 'else', 'do', 'return', 'namespace',
            'struct', 'class', 'enum', 'union', 'try', 'case', 'template')
SIGNATURE = re.compile(r'^(\s*)([A-Za-z_~][\w:<>,~&*\s]*?)\s*\(.*\)\s*(const)?\s*(noexcept)?\s*'
                       r'(override)?\s*(->\s*[\w:<>, ]+)?\s*(:.*)?\{\s*$')


def functions(path):
    lines = open(path, encoding='utf-8', errors='replace').read().split('\n')
    i = 0
    while i < len(lines):
        m = SIGNATURE.match(lines[i])
        head = m.group(2).split()[0] if m else ''
        if not m or head in KEYWORDS or '=' in lines[i].split('(')[0]:
            i += 1
            continue
        depth, j = 0, i
        while j < len(lines):
            depth += lines[j].count('{') - lines[j].count('}')
            if depth <= 0:
                break
            j += 1
        yield j - i + 1, i + 1, lines[i].strip()[:90]
        i = j + 1


def main(roots):
    long_files, long_functions = [], []
    for root in roots:
        for folder, _, files in os.walk(root):
            for f in sorted(files):
                if not f.endswith(('.cpp', '.hpp')):
                    continue
                p = os.path.join(folder, f)
                n = sum(1 for _ in open(p, encoding='utf-8', errors='replace'))
                if n > 600:
                    long_files.append((n, p))
                for length, line, sig in functions(p):
                    if length > 80:
                        long_functions.append((length, '%s:%d' % (p, line), sig))
    print('files over 600 lines: %d' % len(long_files))
    for n, p in sorted(long_files, reverse=True):
        print('  %5d %s' % (n, p))
    print('functions over 80 lines: %d' % len(long_functions))
    for n, where, sig in sorted(long_functions, reverse=True):
        print('  %5d %s  %s' % (n, where, sig))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:] or ['runtime']))
