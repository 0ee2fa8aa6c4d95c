#!/usr/bin/env bash
# Regenerates the generated parts of tests/README.md from the hub tests' names:
#   - the "tests naming it" column of every coverage table row,
#   - the summary line,
#   - the list of rows that have neither a test nor a reason for leaving them out, and
#   - the list of items named by tests that have no row.
#
# A test "names" an item when the part of its name before the first ": " carries reqN, negN or
# 5a-N (e.g. test('req84 req92 5a-12: a 409 answer ...')). Every tests/hub/*.test.mjs is read. A row's first cell holds the
# item's key ("req 45", "neg 7", "§5a-9"); several keys separated by " / " collect the tests of
# all of them. The 4th cell ("tests naming it") is generated; the 5th ("left out because") is
# written by hand and only read: a row with no test and an empty 5th cell is a gap.
#
# Usage: scripts/hub-coverage.sh          rewrite tests/README.md in place
#        scripts/hub-coverage.sh --check  exit 1 (and show the diff) if tests/README.md is stale
set -euo pipefail

cd "$(dirname "$0")/.."
doc=tests/README.md
out=$(mktemp)
trap 'rm -f "$out"' EXIT

perl -e '
  use strict; use warnings;
  my ($doc, @files) = @ARGV;
  my (%tests, %seen, %named);
  for my $f (sort @files) {
    (my $short = $f) =~ s{.*/}{}; $short =~ s/\.test\.mjs$//;
    open my $fh, "<:encoding(UTF-8)", $f or die "$f: $!";
    local $/; my $src = <$fh>; close $fh;
    while ($src =~ /\btest\(\s*([\x27"`])((?:\\.|(?!\1).)*)\1/gs) {
      (my $name = $2) =~ s/\\(.)/$1/g;
      my ($prefix, $desc) = $name =~ /^(.*?):\s+(.*)$/s ? ($1, $2) : ($name, $name);
      $desc =~ s/\|/\\|/g;
      my $label = "`$short` \x{203a} $desc";
      while ($prefix =~ /\b(?:(req|neg)(\d+)|5a-(\d+))\b/g) {
        my $key = defined $1 ? "$1 $2" : "\x{a7}5a-$3";
        $named{$key} = 1;
        next if $seen{"$key\t$label"}++;
        push @{ $tests{$key} }, $label;
      }
    }
  }
  open my $in, "<:encoding(UTF-8)", $doc or die "$doc: $!";
  my @lines = <$in>; close $in;
  my ($intable, $skip, @rowkeys, @gaps) = (0, 0);
  my ($rows, $tested, $leftout) = (0, 0, 0);
  my @outl;
  for my $line (@lines) {
    if ($line =~ /<!-- coverage:begin -->/) { $intable = 1; push @outl, $line; next }
    if ($line =~ /<!-- coverage:end -->/) { $intable = 0; push @outl, $line; next }
    if ($line =~ /<!-- (summary|gaps|unlisted):begin -->/) { push @outl, $line, "\@\@$1\@\@\n"; $skip = 1; next }
    if ($line =~ /<!-- (summary|gaps|unlisted):end -->/) { $skip = 0; push @outl, $line; next }
    next if $skip;
    if ($intable && $line =~ /^\|/) {
      my @c = split /(?<!\\)\|/, $line, -1;   # "", item, tag, what, tests, reason, "\n"
      my $key = $c[1]; $key =~ s/^\s+|\s+$//g;
      if ($key eq "item" || $key =~ /^-+$/) { push @outl, $line; next }
      my (%dup, @list);
      for my $k (split m{ / }, $key) {
        $k =~ s/^\s+|\s+$//g; push @rowkeys, $k;
        push @list, grep { !$dup{$_}++ } @{ $tests{$k} // [] };
      }
      $c[4] = " " . join("<br>", @list) . " ";
      my $reason = $c[5] // ""; $reason =~ s/^\s+|\s+$//g;
      $rows++;
      if (@list) { $tested++ } elsif ($reason ne "") { $leftout++ } else { my $what = $c[3]; $what =~ s/^\s+|\s+$//g; push @gaps, "- $key: $what" }
      push @outl, join("|", @c);
      next;
    }
    push @outl, $line;
  }
  my %listed = map { $_ => 1 } @rowkeys;
  my @unlisted = map { "- $_: " . join("; ", @{ $tests{$_} }) } grep { !$listed{$_} } sort keys %named;
  my $summary = "$rows items listed: $tested named by a test, $leftout left out with a reason, gaps: " . scalar(@gaps) . ".";
  binmode STDOUT, ":encoding(UTF-8)";
  for (@outl) {
    if (/^\@\@summary\@\@$/) { print "$summary\n"; next }
    if (/^\@\@gaps\@\@$/) { print @gaps ? join("\n", @gaps) . "\n" : "- (none)\n"; next }
    if (/^\@\@unlisted\@\@$/) { print @unlisted ? join("\n", @unlisted) . "\n" : "- (none)\n"; next }
    print;
  }
  print STDERR "$summary\n";
' "$doc" tests/hub/*.test.mjs >"$out" 2>"$out.summary"
summary=$(cat "$out.summary")
rm -f "$out.summary"

if [[ "${1:-}" == "--check" ]]; then
  if ! diff -u "$doc" "$out"; then
    echo "tests/README.md is stale: run scripts/hub-coverage.sh" >&2
    exit 1
  fi
  echo "tests/README.md is up to date ($summary)"
else
  cp "$out" "$doc"
  echo "tests/README.md: $summary"
fi
