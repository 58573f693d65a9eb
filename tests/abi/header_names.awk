# Lists what a C header declares, so the ABI checks can prove they cover all
# of it. Input: the header with comments stripped
# (cc -fpreprocessed -dD -E -P). Output, one per line:
#   struct NAME          a typedef'd struct or union with a body
#   field NAME member    one of its members (nested members as a.b)
#   type NAME            a scalar, pointer or enum typedef (has a size)
#   const NAME GROUP     an enum constant; GROUP is its enum's typedef name,
#                        else its tag, else its first constant
#   macro NAME           an object-like #define with a non-string value
#   pfn NAME             a function-pointer typedef
# With -v mode=pfn, prints instead "NAME<TAB>declaration" for each
# function-pointer typedef, the declaration on one line.
#
# A small tokenizer and a recursive parser of the declarations C headers of
# this kind use (typedef struct/union/enum with bodies, nested and anonymous
# members, arrays, bit-fields, pointer and function-pointer typedefs).

function tokenize(s,    m) {
    while (length(s) > 0) {
        if (match(s, /^[ \t\r\n]+/)) { s = substr(s, RLENGTH + 1); continue }
        if (match(s, /^[A-Za-z_][A-Za-z0-9_]*/) || match(s, /^[0-9][A-Za-z0-9_.]*/) ||
            match(s, /^"[^"]*"/) || match(s, /^'[^']*'/)) {
            tok[++ntok] = substr(s, 1, RLENGTH); s = substr(s, RLENGTH + 1); continue
        }
        tok[++ntok] = substr(s, 1, 1); s = substr(s, 2)
    }
}

function is_ident(t) { return t ~ /^[A-Za-z_][A-Za-z0-9_]*$/ }

# Index of the token closing the bracket opened at i.
function closing(i,    d, o, c) {
    o = tok[i]; c = (o == "{") ? "}" : (o == "(") ? ")" : "]"
    d = 0
    for (; i <= ntok; i++) {
        if (tok[i] == o) d++
        else if (tok[i] == c && --d == 0) return i
    }
    return ntok
}

# First index >= i of token t outside any bracket, before `stop`.
function find_top(i, stop, t) {
    for (; i < stop; i++) {
        if (tok[i] == t) return i
        if (tok[i] == "{" || tok[i] == "(" || tok[i] == "[") i = closing(i)
    }
    return 0
}

# The name a declarator between a and b (exclusive) declares.
function declarator_name(a, b,    i, name) {
    for (i = a; i < b; i++)
        if (tok[i] == "(" && tok[i + 1] == "*" && is_ident(tok[i + 2])) return tok[i + 2]
    name = ""
    for (i = a; i < b; i++) {
        if (tok[i] == "[" || tok[i] == ":" || tok[i] == "=") break
        if (is_ident(tok[i]) && tok[i] != "const" && tok[i] != "volatile") name = tok[i]
    }
    return name
}

function has_bitfield(a, b,    i) {
    for (i = a; i < b; i++) if (tok[i] == ":") return 1
    return 0
}

# Members of the body between braces at a and b, for struct S, under prefix.
function members(S, a, b, prefix,    i, end, br, cb, comma, name, start) {
    i = a + 1
    while (i < b) {
        end = find_top(i, b, ";")
        if (!end) end = b
        br = 0
        for (start = i; start < end; start++) if (tok[start] == "{") { br = start; break }
        if (br) {
            cb = closing(br)
            name = declarator_name(cb + 1, end)
            if (name == "") members(S, br, cb, prefix)        # anonymous member
            else {
                print "field " S " " prefix name
                members(S, br, cb, prefix name ".")
            }
        } else {
            start = i
            while (start < end) {
                comma = find_top(start, end, ",")
                if (!comma) comma = end
                name = declarator_name(start, comma)
                # a later declarator's type words belong to the first one
                if (name != "" && !has_bitfield(start, comma)) print "field " S " " prefix name
                start = comma + 1
            }
        }
        i = end + 1
    }
}

function enum_constants(a, b, group,    i, end) {
    if (group == "") group = tok[a + 1]
    i = a + 1
    while (i < b) {
        end = find_top(i, b, ",")
        if (!end) end = b
        if (is_ident(tok[i]) && mode != "pfn") print "const " tok[i] " " group
        i = end + 1
    }
}

# A declaration from i to its ';' at e.
function declaration(i, e,    br, cb, kind, tag, j, start, comma, name, ptr, isfn) {
    br = find_top(i, e, "{")
    if (br) {
        kind = ""; tag = ""
        for (j = i; j < br; j++)
            if (tok[j] == "struct" || tok[j] == "union" || tok[j] == "enum") {
                kind = tok[j]
                if (is_ident(tok[j + 1]) && j + 1 < br) tag = tok[j + 1]
            }
        cb = closing(br)
        if (kind == "enum") {
            name = tok[i] == "typedef" ? declarator_name(cb + 1, e) : ""
            enum_constants(br, cb, name != "" ? name : tag)
        }
        if (tok[i] != "typedef") return
        start = cb + 1
        while (start < e) {
            comma = find_top(start, e, ",")
            if (!comma) comma = e
            name = declarator_name(start, comma)
            ptr = 0
            for (j = start; j < comma; j++) if (tok[j] == "*") ptr = 1
            if (name != "" && mode != "pfn") {
                if (kind == "enum" || ptr) print "type " name
                else { print "struct " name; members(name, br, cb, "") }
            }
            start = comma + 1
        }
        return
    }
    if (tok[i] != "typedef") return
    isfn = 0
    for (j = i; j < e; j++) if (tok[j] == "(" && tok[j + 1] == "*") isfn = 1
    name = declarator_name(i + 1, e)
    if (isfn) {
        if (mode == "pfn") {
            line = ""
            for (j = i; j <= e; j++) line = line (j > i ? " " : "") tok[j]
            print name "\t" line
        } else print "pfn " name
        return
    }
    if (mode == "pfn") return
    ptr = 0
    for (j = i; j < e; j++) if (tok[j] == "*") ptr = 1
    # "typedef struct X_st X;" without a body names an incomplete type: no size
    if ((tok[i + 1] == "struct" || tok[i + 1] == "union") && !ptr) return
    print "type " name
}

# Continuation lines of a multi-line directive are part of it, not C text.
in_directive { in_directive = /\\$/; next }
/^[ \t]*#/ {
    in_directive = /\\$/
    if (mode != "pfn" && $1 == "#define" && $2 ~ /^[A-Za-z_][A-Za-z0-9_]*$/ && NF >= 3 && $3 !~ /^"/)
        print "macro " $2
    next
}
{ text = text " " $0 }
END {
    tokenize(text)
    i = 1
    while (i <= ntok) {
        e = find_top(i, ntok + 1, ";")
        if (!e) break
        declaration(i, e)
        i = e + 1
    }
}
