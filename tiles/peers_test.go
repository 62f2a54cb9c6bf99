package tiles

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meridian-gis/meridian/internal/cachetag"
	"github.com/meridian-gis/meridian/tiles/internal/geotest"
)

// TestThreeNodes runs three engines sharing tiles through groupcache on
// loopback: every tile is rendered once across the nodes, whichever node
// is asked, and after an invalidation (delivered to every node, as the
// broker fans it out) all nodes serve the new data.
func TestThreeNodes(t *testing.T) {
	db := geotest.New(t)
	is := newIssuer(t)
	const n = 3
	var lns [n]net.Listener
	var selves []string
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		selves = append(selves, "http://"+ln.Addr().String())
	}
	var nodes [n]*env
	for i := range nodes {
		nodes[i] = startEnv(t, db, is, withConfig(func(c *Config) {
			c.Peers.Addr = lns[i].Addr().String()
			c.Peers.Self = selves[i]
			c.Peers.List = selves
			c.Peers.Token = "peer-secret"
		}), func(s *envSetup) { s.peerLn = lns[i] })
	}
	tok := nodes[0].all
	tmpl := nodes[0].tileTemplate(nodes[0].instantiate("table", tok, "name", "places", "columns", "name"), tok)
	path := strings.TrimPrefix(tmpl, nodes[0].base)

	renders := func() float64 {
		var sum float64
		for _, nd := range nodes {
			sum += nd.metric("meridian_tiles_render_seconds")
		}
		return sum
	}
	// Every z2 tile, asked of every node.
	var tiles int
	for x := uint32(0); x < 4; x++ {
		for y := uint32(0); y < 4; y++ {
			tiles++
			var first []byte
			for _, nd := range nodes {
				r := nd.get(expand(path, 2, x, y), bearer(tok), "Accept-Encoding: gzip")
				if r.status != 200 && r.status != 204 {
					t.Fatalf("tile 2/%d/%d on %s: %d %s", x, y, nd.base, r.status, r.body)
				}
				if first == nil {
					first = append([]byte{}, r.body...)
				} else if string(first) != string(r.body) {
					t.Errorf("tile 2/%d/%d differs between nodes", x, y)
				}
			}
		}
	}
	if got := renders(); got != float64(tiles) {
		t.Errorf("%d tiles asked of %d nodes were rendered %v times, want %d", tiles, n, got, tiles)
	}
	var peerLoads float64
	for _, nd := range nodes {
		peerLoads += nd.metric("meridian_tiles_groupcache_peer_loads_total")
	}
	if peerLoads == 0 {
		t.Errorf("no tile came from a peer")
	}

	// New data, then the invalidation reaches every node.
	if _, err := db.Pool.Exec(context.Background(), "INSERT INTO places (name, geom) VALUES ('Point Nemo', ST_SetSRID(ST_MakePoint(-123.39, -48.88), 4326))"); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	for _, nd := range nodes {
		nd.srv.Invalidate(context.Background(), cachetag.Invalidation{Tags: []string{cachetag.Source("pg", "public.places")}}, at)
	}
	before := renders()
	var tmpls []string
	for _, nd := range nodes {
		tmpls = append(tmpls, strings.TrimPrefix(nd.tileTemplate(nd.instantiate("table", tok, "name", "places", "columns", "name"), tok), nd.base))
	}
	if tmpls[0] != tmpls[1] || tmpls[1] != tmpls[2] {
		t.Fatalf("nodes disagree on the new generation:\n%s\n%s\n%s", tmpls[0], tmpls[1], tmpls[2])
	}
	if tmpls[0] == path {
		t.Fatalf("generation unchanged after invalidation")
	}
	for _, nd := range nodes {
		r := nd.get(expand(tmpls[0], 2, 0, 2), bearer(tok))
		if r.status != 200 || !hasFeature(decodeTile(t, r), "name", "Point Nemo") {
			t.Errorf("node %s: new data missing (%d)", nd.base, r.status)
		}
	}
	if got := renders() - before; got != 1 {
		t.Errorf("the new tile was rendered %v times across nodes, want 1", got)
	}

	// Peers refuse requests without the shared token.
	r := nodes[0].get(selves[1] + "/_peers/x/mvt%2F0123456789abcdef%2F1%2F0%2F0%2F0")
	if r.status != 403 {
		t.Errorf("peer request without token: %d, want 403", r.status)
	}
}
