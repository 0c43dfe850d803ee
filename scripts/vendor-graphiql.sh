#!/usr/bin/env bash
# Re-fetches the pinned GraphiQL and React browser bundles from the npm registry
# (with `npm pack`, which checks each tarball against the registry's integrity
# hash) and copies them, with their licenses, into assets/graphiql/. Rewrites
# assets/graphiql/SOURCES.md with the sha256 of every vendored file.
#
#   scripts/vendor-graphiql.sh          refresh the files
#   scripts/vendor-graphiql.sh --check  verify the files against SOURCES.md (offline)
#
# To move to other versions, change the pins below, run the script, then load
# /graphql in a browser and run e2e/graphiql.mjs: the page must work under the
# server's Content-Security-Policy.
set -euo pipefail

# graphiql 4.1.2 is the last release that ships the UMD bundle (graphiql.min.js,
# which reads React and ReactDOM from globals); 5.x is ESM only. React 18 is the
# last major with UMD builds.
GRAPHIQL_VERSION=4.1.2
REACT_VERSION=18.3.1
REACT_DOM_VERSION=18.3.1
# The graphql-transport-ws client, for subscriptions (its UMD bundle
# defines the global graphqlWs).
GRAPHQL_WS_VERSION=6.4.2

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/assets/graphiql"

if [ "${1:-}" = "--check" ]; then
    cd "$dest"
    sed -n '/^```sha256sum$/,/^```$/p' SOURCES.md | sed '1d;$d' | sha256sum --check --strict
    exit
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# package@version | file inside the package | name in assets/graphiql
files=(
    "graphiql@$GRAPHIQL_VERSION|graphiql.min.js|graphiql.min.js"
    "graphiql@$GRAPHIQL_VERSION|graphiql.min.css|graphiql.min.css"
    "graphiql@$GRAPHIQL_VERSION|LICENSE|LICENSE.graphiql"
    "react@$REACT_VERSION|umd/react.production.min.js|react.production.min.js"
    "react@$REACT_VERSION|LICENSE|LICENSE.react"
    "react-dom@$REACT_DOM_VERSION|umd/react-dom.production.min.js|react-dom.production.min.js"
    "react-dom@$REACT_DOM_VERSION|LICENSE|LICENSE.react-dom"
    "graphql-ws@$GRAPHQL_WS_VERSION|umd/graphql-ws.min.js|graphql-ws.min.js"
    "graphql-ws@$GRAPHQL_WS_VERSION|LICENSE.md|LICENSE.graphql-ws"
)

for spec in "graphiql@$GRAPHIQL_VERSION" "react@$REACT_VERSION" "react-dom@$REACT_DOM_VERSION" \
    "graphql-ws@$GRAPHQL_WS_VERSION"; do
    mkdir -p "$work/$spec"
    tarball="$(cd "$work" && npm pack --silent "$spec")"
    tar -xzf "$work/$tarball" -C "$work/$spec"
done

mkdir -p "$dest"
previous=""
if [ -f "$dest/SOURCES.md" ]; then
    previous=$(sed -n '/^```sha256sum$/,/^```$/p' "$dest/SOURCES.md" | sed '1d;$d')
fi
table=""
sums=""
for entry in "${files[@]}"; do
    IFS='|' read -r spec inner name <<<"$entry"
    cp "$work/$spec/package/$inner" "$dest/$name"
    sum="$(sha256sum "$dest/$name" | cut -d' ' -f1)"
    table+="| \`${spec%@*}\` | ${spec##*@} | \`$inner\` | \`$name\` | \`$sum\` |"$'\n'
    sums+="$sum  $name"$'\n'
done

cat >"$dest/SOURCES.md" <<MD
# Vendored files

The GraphiQL page served at \`GET /graphql\` (browsers) loads only these files,
from \`/graphiql/\`, so it works offline and under the server's
Content-Security-Policy (\`script-src 'self'; style-src 'self'\`, nothing inline).

Written by \`scripts/vendor-graphiql.sh\`, which fetches the pinned packages from
the npm registry with \`npm pack\`. Check the files with
\`scripts/vendor-graphiql.sh --check\`.

| package | version | file in the package | file here | sha256 |
|---|---|---|---|---|
$table
The project's own files, not vendored: \`index.html\`, \`init.js\` (renders
GraphiQL), \`page.css\` (page layout).

\`\`\`sha256sum
$sums\`\`\`
MD

echo "vendored into $dest:"
printf '%s' "$sums"
if [ -n "$previous" ] && [ "$previous" != "$(printf '%s' "$sums")" ]; then
    echo "the vendored files changed; review the difference and rerun e2e/graphiql.mjs"
elif [ -n "$previous" ]; then
    echo "identical to the files listed before"
fi
