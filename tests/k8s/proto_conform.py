#!/usr/bin/python3
"""Checks gpumem's own .proto files against facts about the kubelet's APIs.

A facts table (tests/data/k8s-proto-facts/*.txt) is written by us, from
reading upstream's api.proto: one line per field,
    PACKAGE MESSAGE FIELD NUMBER LABEL TYPE
(LABEL: singular, optional, repeated or map; a message without fields is
one line with "-" in the last four columns), and one line per method,
    PACKAGE.SERVICE METHOD REQUEST RESPONSE STREAMING
(STREAMING: none, client, server or bidi). '#' starts a comment.

usage:
  proto_conform.py check OURS.proto FACTS [--package P] [--methods-in C...]
      FACTS is a facts table or an upstream .proto (read the same way).
      Every message of ours and of FACTS is in the other with the same
      fields (name, number, label, type). Our package must be FACTS's, or P
      when given (a package is not on the wire; gRPC paths are, and those
      are checked by --methods-in: each method of FACTS must appear as
      "/PACKAGE.SERVICE/METHOD" in one of the C files, adjacent string
      literals and "#define NAME "..."" string macros joined).
      One problem per line on stdout; exit 1 if any.
  proto_conform.py facts FILE.proto
      The facts of a .proto, in the table's format (for comparing by eye).
  proto_conform.py goproto OURS.proto FACTS GO_PACKAGE
      OURS with option go_package = GO_PACKAGE and, when FACTS's package is
      ours, FACTS's services declared: what protoc-gen-go needs to build
      the stand-in kubelets' grpc-go code from our own messages.
"""

import re
import sys

FIELD = re.compile(r"^\s*(repeated\s+|optional\s+)?(map\s*<\s*\w+\s*,\s*[\w.]+\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*(\[[^\]]*\])?\s*$")
RPC = re.compile(r"\brpc\s+(\w+)\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*returns\s*\(\s*(stream\s+)?([\w.]+)\s*\)")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def streaming(client, server):
    return {(False, False): "none", (True, False): "client", (False, True): "server", (True, True): "bidi"}[(client, server)]


def proto_facts(path):
    """(package, {message: {field: (number, label, type)}}, [(service, method, req, resp, streaming)])"""
    text = strip_comments(open(path).read())
    pkg = re.search(r"^\s*package\s+([\w.]+)\s*;", text, re.M)
    pkg = pkg.group(1) if pkg else ""
    msgs, rpcs = {}, []
    for m in re.finditer(r"\bmessage\s+(\w+)\s*\{([^{}]*)\}", text):
        fields = {}
        for stmt in m.group(2).split(";"):
            if not stmt.strip() or re.match(r"\s*(option|reserved)\b", stmt):
                continue
            f = FIELD.match(stmt)
            if not f:
                raise SystemExit("%s: message %s: cannot read %r" % (path, m.group(1), stmt.strip()))
            typ, label = re.sub(r"\s+", "", f.group(2)), (f.group(1) or "singular").strip()
            if typ.startswith("map<"):
                label = "map"
            fields[f.group(3)] = (int(f.group(4)), label, typ)
        msgs[m.group(1)] = fields
    for s in re.finditer(r"\bservice\s+(\w+)\s*\{", text):
        depth, i = 1, s.end()
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        for r in RPC.finditer(text[s.end():i]):
            rpcs.append((pkg + "." + s.group(1), r.group(1), r.group(3), r.group(5),
                         streaming(bool(r.group(2)), bool(r.group(4)))))
    return pkg, msgs, sorted(rpcs)


def table_facts(path):
    pkgs, msgs, rpcs = set(), {}, []
    for n, line in enumerate(open(path), 1):
        w = line.split("#", 1)[0].split()
        if not w:
            continue
        if len(w) == 6:
            pkgs.add(w[0])
            fields = msgs.setdefault(w[1], {})
            if w[2] != "-":
                if w[4] not in ("singular", "optional", "repeated", "map") or not w[3].isdigit():
                    raise SystemExit("%s:%d: bad field line %r" % (path, n, line.strip()))
                fields[w[2]] = (int(w[3]), w[4], w[5])
        elif len(w) == 5 and w[4] in ("none", "client", "server", "bidi"):
            rpcs.append(tuple(w))
        else:
            raise SystemExit("%s:%d: neither a field (6 words) nor a method (5) line: %r" % (path, n, line.strip()))
    if len(pkgs) != 1:
        raise SystemExit("%s: one package expected, found %s" % (path, sorted(pkgs) or "none"))
    return pkgs.pop(), msgs, sorted(rpcs)


def facts(path):
    return proto_facts(path) if path.endswith(".proto") else table_facts(path)


def served_paths(files):
    """The string literals of C files, macros expanded, adjacent ones joined."""
    out = []
    for f in files:
        text = strip_comments(open(f).read())
        macros = dict(re.findall(r'^\s*#\s*define\s+(\w+)\s+"([^"\n]*)"', text, re.M))
        text = re.sub(r'^\s*#\s*define[^\n]*', "", text, flags=re.M)
        for name, val in macros.items():
            text = re.sub(r"\b%s\b" % name, '"%s"' % val, text)
        text = re.sub(r'"\s*"', "", text)
        out += re.findall(r'"([^"\n]*)"', text)
    return set(out)


def check(ours_path, facts_path, package, methods_in):
    opkg, ours, _ = proto_facts(ours_path)
    upkg, up, rpcs = facts(facts_path)
    bad = []
    if not up:
        bad.append("%s: no messages found" % facts_path)
    want = package or upkg
    if opkg != want:
        bad.append("package %s, expected %s" % (opkg, want))
    for name in sorted(set(up) | set(ours)):
        if name not in ours:
            bad.append("message %s: in %s, not in %s" % (name, facts_path, ours_path))
        elif name not in up:
            bad.append("message %s: in %s, not in %s" % (name, ours_path, facts_path))
        elif up[name] != ours[name]:
            for f in sorted(set(up[name]) | set(ours[name])):
                if up[name].get(f) != ours[name].get(f):
                    bad.append("message %s field %s: ours %s, %s %s" % (
                        name, f, ours[name].get(f, "missing"), facts_path, up[name].get(f, "missing")))
    if methods_in:
        have = served_paths(methods_in)
        for svc, method, _, _, _ in rpcs:
            if "/%s/%s" % (svc, method) not in have:
                bad.append("method /%s/%s: not in %s" % (svc, method, " ".join(methods_in)))
    return bad


def goproto(ours_path, facts_path, go_package):
    opkg, _, _ = proto_facts(ours_path)
    upkg, _, rpcs = facts(facts_path)
    text = open(ours_path).read()
    text, n = re.subn(r"^(\s*package\s+[\w.]+\s*;)", r'\1\noption go_package = "%s";' % go_package, text, count=1, flags=re.M)
    if n != 1:
        raise SystemExit("%s: no package statement" % ours_path)
    if upkg == opkg:
        services = {}
        for svc, method, req, resp, st in rpcs:
            services.setdefault(svc.rsplit(".", 1)[1], []).append("  rpc %s(%s%s) returns (%s%s) {}" % (
                method, "stream " if st in ("client", "bidi") else "", req,
                "stream " if st in ("server", "bidi") else "", resp))
        for name, lines in sorted(services.items()):
            text += "\nservice %s {\n%s\n}\n" % (name, "\n".join(lines))
    return text


def main(argv):
    if len(argv) >= 3 and argv[0] == "check":
        package, methods, rest = None, [], argv[3:]
        while rest:
            if rest[0] == "--package" and len(rest) > 1:
                package, rest = rest[1], rest[2:]
            elif rest[0] == "--methods-in" and len(rest) > 1:
                methods, rest = rest[1:], []
            else:
                raise SystemExit("proto_conform.py: unknown option %r" % rest[0])
        bad = check(argv[1], argv[2], package, methods)
        for b in bad:
            print(b)
        return 1 if bad else 0
    if len(argv) == 2 and argv[0] == "facts":
        pkg, msgs, rpcs = proto_facts(argv[1])
        for m, fields in msgs.items():
            if not fields:
                print(pkg, m, "-", "-", "-", "-")
            for f, (num, label, typ) in sorted(fields.items(), key=lambda x: x[1][0]):
                print(pkg, m, f, num, label, typ)
        for r in rpcs:
            print(*r)
        return 0
    if len(argv) == 4 and argv[0] == "goproto":
        sys.stdout.write(goproto(argv[1], argv[2], argv[3]))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
