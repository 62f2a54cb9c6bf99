package main

import (
	_ "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/valyala/fasthttp"
	_ "cloud.google.com/go/pubsub/v2"
	_ "cloud.google.com/go/pubsub/v2/pstest"
	_ "github.com/allegro/bigcache/v3"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/paulmach/orb/encoding/mvt"
	_ "github.com/golang/groupcache"
	_ "github.com/prometheus/client_golang/prometheus"
)
func main() {}
