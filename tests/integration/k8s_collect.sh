# The device plugin's collection of the groups it made, after gpumem-runtime
# renamed them after their pods (tests/k8s/collect_renamed.c): kept while the
# kubelet's checkpoint names the allocation, removed once it does not;
# groups that are not the plugin's are never touched.
. tests/integration/lib.sh
prog="$TOP/$BUILD/tests/k8s/collect_renamed"
[ -x "$prog" ] || { fail k8s_collect "$prog not built (make)"; exit 0; }
"$prog" "$T"
