#!/usr/bin/python3
"""Checks that gpumem's own .proto describes the same wire format as an
upstream one: every message of ours exists upstream with exactly the same
fields (name, number, type, repeated/map), and every upstream message is in
ours. Prints one problem per line; exit status 1 if any.

usage: proto_conform.py OURS.proto UPSTREAM.proto
"""

import re
import sys

FIELD = re.compile(r"^\s*(repeated\s+)?(map<\s*\w+\s*,\s*\w+\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*(\[[^\]]*\])?\s*;")


def messages(path):
    text = re.sub(r"/\*.*?\*/", "", open(path).read(), flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    out = {}
    for m in re.finditer(r"\bmessage\s+(\w+)\s*\{([^{}]*)\}", text):
        fields = {}
        for line in m.group(2).split(";"):
            f = FIELD.match(line + ";")
            if f:
                typ = re.sub(r"\s+", "", f.group(2))
                fields[f.group(3)] = (int(f.group(4)), typ, bool(f.group(1)))
        out[m.group(1)] = fields
    return out


ours, up = messages(sys.argv[1]), messages(sys.argv[2])
bad = []
if not up:
    bad.append("%s: no messages found" % sys.argv[2])
for name, fields in sorted(up.items()):
    if name not in ours:
        bad.append("message %s: upstream has it, %s does not" % (name, sys.argv[1]))
        continue
    if fields != ours[name]:
        bad.append("message %s: fields %s, upstream %s" % (name, sorted(ours[name].items()), sorted(fields.items())))
for name in sorted(set(ours) - set(up)):
    bad.append("message %s: not upstream" % name)
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
