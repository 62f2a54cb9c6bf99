// Package meridian holds what the binary embeds from the repository root:
// the default Caddyfile of the edge. Nothing else lives here; the code is
// in edge/ (the binary), tiles/, control/, workers/, caddy-modules/ and
// internal/.
package meridian

import _ "embed"

// Caddyfile is the edge's default configuration (the file ./Caddyfile).
//
//go:embed Caddyfile
var Caddyfile []byte
