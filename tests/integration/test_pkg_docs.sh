#!/bin/bash
# test_pkg_docs: the man pages render without a warning and stay true to the code:
# every option notegwd's usage lists, every key of the core's configuration table and
# every notegw subcommand of the contract is documented, and bash completion offers
# the same subcommands the page lists.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
: "${top_srcdir:?}"
man=$top_srcdir/man
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# 1. Render each page; groff's warnings (-ww) and mdoc's complaints go to stderr.
if command -v groff >/dev/null 2>&1; then
	for page in notegwd.8 notegw.1 notegw.conf.5 notecard-sim.1; do
		err=$(LC_ALL=C.UTF-8 groff -mandoc -ww -z -Tutf8 "$man/$page" 2>&1)
		[ -z "$err" ] || bad "$page: $err"
		head -c 2000 "$man/$page" | grep -q '^\.Dt ' || bad "$page: no .Dt line"
	done
else
	echo "note: groff not installed; pages not rendered"
fi

# 2. notegwd: each long option in the daemon's usage text is in notegwd(8).
opts=$(sed -n '/^static void usage/,/^}/p' "$top_srcdir/src/main.c" |
	grep -oE -- '--[a-z][a-z-]*' | sort -u)
[ -n "$opts" ] || bad "no options found in src/main.c usage()"
page8=$(sed 's/\\//g' "$man/notegwd.8") # "Fl \-check\-config" reads "Fl -check-config"
for o in $opts; do
	printf '%s\n' "$page8" | grep -qF -- "Fl ${o#-}" || bad "notegwd.8 does not document $o"
done

# 3. notegw.conf(5): each key of the core's table, as '.It Cm key' under its section.
keys=$(grep -oE 'NGW_CFG_KEY\(struct cfg_[a-z]+, "[a-z_]+"' "$top_srcdir/src/cfg_core.c" |
	sed -E 's/NGW_CFG_KEY\(struct cfg_([a-z]+), "([a-z_]+)"/\1.\2/' | sort -u)
[ -n "$keys" ] || bad "no keys found in src/cfg_core.c"
for sk in $keys; do
	section=${sk%%.*} key=${sk#*.}
	# the page's section header: [notefile.name] for the per-notefile keys
	hdr="[$section]"
	[ "$section" = notefile ] && hdr="[notefile."
	body=$(awk -v h="$hdr" 'index($0, ".Ss " h) == 1 { on = 1; next } /^\.S[sh] / { on = 0 } on' \
		"$man/notegw.conf.5")
	[ -n "$body" ] || { bad "notegw.conf.5 has no section $hdr"; continue; }
	printf '%s\n' "$body" | grep -qE "^\.It Cm $key( |$)" ||
		bad "notegw.conf.5 does not document $key in $hdr"
done

# 4. notegw(1) and completion: the commands in the CLI's tables (at least the
# contract's, interface.md), in the CLI's order, then help.
subs=$(grep -hE '^\s*\{"[a-z]+", "[^"]*",( "[^"]*", run_[a-z_]+\},?|)$' \
	"$top_srcdir"/src/cli/core.c "$top_srcdir"/src/cli/crypto.c "$top_srcdir"/src/cli/update.c |
	sed -E 's/^\s*\{"([a-z]+)".*/\1/' | xargs)
subs="$subs help"
for s in status queue send req sync keys decrypt audit update; do
	case " $subs " in *" $s "*) ;; *) bad "the CLI has no '$s' command (interface.md)" ;; esac
done
comp=$top_srcdir/tools/completion/notegw
for s in $subs; do
	grep -qE "^\.It Cm $s( |$)" "$man/notegw.1" || bad "notegw.1 does not document '$s'"
done

# Drive the completion function. _init_completion and _filedir come from the
# bash-completion package; stand-ins keep the test independent of it.
_init_completion() {
	words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
	cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
}
_filedir() { COMPREPLY=("<files>"); }
complete() { :; }
# shellcheck source=/dev/null
. "$comp" || bad "completion script does not load"
complete_words() { # expected, then the command line words (the last is completed)
	local want=$1
	shift
	COMP_WORDS=("$@") COMP_CWORD=$(($# - 1)) COMPREPLY=()
	_notegw
	local got="${COMPREPLY[*]}"
	[ "$got" = "$want" ] || bad "completing '$*': got '$got', want '$want'"
}
complete_words "$subs" notegw ""
complete_words "status" notegw st
complete_words "status" notegw -s /tmp/x.sock st
complete_words "--json" notegw --j
complete_words "-s --socket --json -h --help --version" notegw -
complete_words "<files>" notegw -s ""
complete_words "status check apply sign verify extract" notegw update ""
complete_words "--key" notegw update sign --k
complete_words "--trusted" notegw update extract --t
complete_words "<files>" notegw update sign --key ""
complete_words "--trusted" notegw update verify --t
# the update verbs the CLI's usage lists are the ones completion offers
verbs=$(sed -n '/^static int usage/,/^}/p' "$top_srcdir/src/cli/update.c" |
	grep -oE 'notegw update [a-z|]+' | sed 's/notegw update //' | tr '|' '\n' | sort -u | xargs)
COMP_WORDS=(notegw update "") COMP_CWORD=2 COMPREPLY=()
_notegw
offered_verbs=$(printf '%s\n' "${COMPREPLY[@]}" | sort -u | xargs)
[ "$verbs" = "$offered_verbs" ] || bad "update verbs: CLI has '$verbs', completion '$offered_verbs'"
for v in $verbs; do
	grep -qE "^\.It Cm update .*\<$v\>" "$man/notegw.1" || bad "notegw.1 does not document 'update $v'"
done
complete_words "generate" notegw keys ""
complete_words "p384 rsa3072" notegw keys generate --type ""
complete_words "-n --json" notegw audit -
complete_words "send" notegw help se
complete_words "--key --json" notegw decrypt -
complete_words "--json" notegw --json queue --
# every subcommand offered is documented, and the other way round
offered=$(COMP_WORDS=(notegw "") COMP_CWORD=1 COMPREPLY=() && _notegw && echo "${COMPREPLY[*]}")
for s in $offered; do
	grep -qE "^\.It Cm $s( |$)" "$man/notegw.1" || bad "completion offers undocumented '$s'"
done

[ $fail = 0 ] && echo "PASS: man pages render and match the code; completion matches notegw(1)"
exit $fail
