package maps_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/control/maps"
	"github.com/meridian-gis/meridian/internal/grant"
	"github.com/meridian-gis/meridian/internal/identity"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

// layer is a minimal layer of a keplerMapConfig.
func layer(id, typ, dataID string) map[string]any {
	return map[string]any{"id": id, "type": typ, "config": map[string]any{"dataId": dataID, "label": id, "isVisible": true,
		"visConfig": map[string]any{"opacity": 0.8, "filled": true}}, "visualChannels": map[string]any{}}
}

func config(layers ...map[string]any) map[string]any {
	ls := []any{}
	for _, l := range layers {
		ls = append(ls, l)
	}
	return map[string]any{"version": "v1", "config": map[string]any{
		"filters":  map[string]any{},
		"mapState": map[string]any{"latitude": 40, "longitude": -75, "zoom": 6, "pitch": 0, "bearing": 0},
		"mapStyle": map[string]any{"styleType": "custom:meridian-light"},
		"visState": map[string]any{"layers": ls, "layerBlending": "normal",
			"interactionConfig": map[string]any{"tooltip": map[string]any{"enabled": true, "fieldsToShow": map[string]any{}}}},
	}}
}

// setup starts a control plane with a data connection "warehouse" on a
// real PostGIS database holding public.places.
func setup(t *testing.T) (*controltest.Env, *controltest.User, *pgtest.DB) {
	t.Helper()
	data := pgtest.Data(t)
	ctx := context.Background()
	if _, err := data.Pool.Exec(ctx, `CREATE TABLE public.places (id int PRIMARY KEY, name text, kind text, pop int, geom geometry(Point, 4326));
		INSERT INTO public.places VALUES (1, 'Dover', 'town', 39000, ST_SetSRID(ST_MakePoint(-75.52, 39.16), 4326)),
			(2, 'Newark', 'city', 31000, ST_SetSRID(ST_MakePoint(-75.75, 39.68), 4326))`); err != nil {
		t.Fatal(err)
	}
	e := controltest.Start(t, nil)
	ed := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	res, raw := ed.Do(t, "POST", "/api/v3/connections", map[string]any{"name": "warehouse", "provider_id": "postgres", "privacy": "shared",
		"credentials": map[string]any{"url": data.URL}})
	controltest.Want(t, "connection", res, raw, 201)
	return e, ed, data
}

func TestMapsAPI(t *testing.T) {
	e, ed, data := setup(t)
	ctx := context.Background()
	ed2 := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	viewer := e.NewUser(t, identity.DefaultOrg, identity.RoleViewer)
	guest := e.NewUser(t, identity.DefaultOrg, identity.RoleGuest)
	orgB := e.NewOrg(t, "B")
	adminB := e.NewUser(t, orgB, identity.RoleAdmin)

	tableDS := map[string]any{"id": "places", "type": "table", "source": "public.places", "connectionName": "warehouse", "geoColumn": "geom", "columns": []string{"name", "pop"}}
	res, raw := viewer.Do(t, "POST", "/workspace-api/maps", map[string]any{"title": "v"})
	controltest.Want(t, "viewer creates", res, raw, 403)
	res, raw = ed.Do(t, "POST", "/workspace-api/maps", map[string]any{"title": "Delaware", "tags": []string{"de"}, "datasets": []any{tableDS}})
	m := controltest.Want(t, "create", res, raw, 201)
	id := m["id"].(string)
	if m["canEdit"] != true || m["privacy"].(map[string]any)["privacy"] != "private" || m["publishedAt"] != nil {
		t.Errorf("created: %s", raw)
	}
	if !strings.Contains(string(raw), `"styleType":"custom:meridian-light"`) {
		t.Errorf("a new map does not use the offline basemap: %s", raw)
	}

	// Bad input: nothing saved half.
	bad := []struct {
		what   string
		body   any
		status int
		msg    string
	}{
		{"outdated layer type", map[string]any{"title": "changed", "keplerMapConfig": config(layer("l1", "geojson", "places"))}, 400, "fetchMap rejects"},
		{"unknown dataset", map[string]any{"keplerMapConfig": config(layer("l1", "mvt", "nope"))}, 400, "not a dataset of this map"},
		{"wrong version", map[string]any{"keplerMapConfig": map[string]any{"version": "v2", "config": map[string]any{}}}, 400, "must be"},
		{"not an object", map[string]any{"keplerMapConfig": []int{1}}, 400, "keplerMapConfig"},
		{"bad mapState", map[string]any{"keplerMapConfig": func() map[string]any {
			c := config()
			c["config"].(map[string]any)["mapState"] = map[string]any{"latitude": 200, "longitude": 0, "zoom": 3}
			return c
		}()}, 400, "latitude"},
		{"oversized", map[string]any{"keplerMapConfig": map[string]any{"version": "v1", "config": map[string]any{"pad": strings.Repeat("x", 2*maps.MaxConfigBytes)}}}, 413, "bytes"},
		{"empty title", map[string]any{"title": "  "}, 400, "title"},
	}
	for _, b := range bad {
		res, raw = ed.Do(t, "PATCH", "/workspace-api/maps/"+id, b.body)
		controltest.Want(t, b.what, res, raw, b.status)
		if !strings.Contains(string(raw), b.msg) {
			t.Errorf("%s: %s, want a message with %q", b.what, raw, b.msg)
		}
	}
	res, raw = ed.Do(t, "GET", "/workspace-api/maps/"+id, nil)
	if got := controltest.Want(t, "get", res, raw, 200); got["title"] != "Delaware" {
		t.Errorf("a refused PATCH changed the map: %s", raw)
	}

	// Datasets: checked on the data connection.
	for _, c := range []struct {
		ds  map[string]any
		msg string
	}{
		{map[string]any{"type": "table", "source": "public.missing", "connectionName": "warehouse"}, "does not exist"},
		{map[string]any{"type": "query", "source": "SELEC 1", "connectionName": "warehouse"}, "syntax error"},
		{map[string]any{"type": "table", "source": "public.places", "connectionName": "warehouse", "columns": []string{"nope"}}, "no column"},
		{map[string]any{"type": "table", "source": "public.places", "connectionName": "warehouse", "geoColumn": "h3:name"}, ""},
		{map[string]any{"type": "table", "source": "public.places", "connectionName": "elsewhere"}, "no connection"},
		{map[string]any{"type": "tileset", "source": "a.b", "connectionName": "warehouse"}, "not served"},
	} {
		res, raw = ed.Do(t, "POST", "/workspace-api/maps/"+id+"/datasets", c.ds)
		if c.msg == "" {
			controltest.Want(t, "h3 dataset", res, raw, 201)
			var d map[string]any
			json.Unmarshal(raw, &d)
			res, raw = ed.Do(t, "DELETE", "/workspace-api/maps/"+id+"/datasets/"+d["id"].(string), nil)
			controltest.Want(t, "remove unused dataset", res, raw, 204)
			continue
		}
		controltest.Want(t, "bad dataset "+c.ds["source"].(string), res, raw, 400)
		if !strings.Contains(string(raw), c.msg) {
			t.Errorf("dataset %v: %s, want %q", c.ds, raw, c.msg)
		}
	}
	const q = "SELECT id, name, kind, geom FROM public.places WHERE pop > 1000"
	res, raw = ed.Do(t, "POST", "/workspace-api/maps/"+id+"/datasets", map[string]any{"id": "towns", "type": "query", "source": q, "connectionName": "warehouse"})
	controltest.Want(t, "query dataset", res, raw, 201)
	res, raw = ed.Do(t, "PATCH", "/workspace-api/maps/"+id, map[string]any{"keplerMapConfig": config(layer("l1", "mvt", "places"), layer("l2", "mvt", "towns"))})
	controltest.Want(t, "save layers", res, raw, 200)
	res, raw = ed.Do(t, "DELETE", "/workspace-api/maps/"+id+"/datasets/towns", nil)
	controltest.Want(t, "remove a dataset a layer uses", res, raw, 409)

	// The Builder saves datasets and config together, or nothing: a new
	// dataset naming a dropped table, or a config whose layer names a
	// dataset not in the list, leaves the map as it was.
	res, raw = ed.Do(t, "GET", "/workspace-api/maps/"+id, nil)
	var before struct {
		Datasets []map[string]any `json:"datasets"`
	}
	json.Unmarshal(raw, &before)
	gone := map[string]any{"id": "gone", "type": "query", "source": "SELECT geom FROM public.dropped_table", "connectionName": "warehouse"}
	for _, c := range []struct {
		what string
		body map[string]any
		msg  string
	}{
		{"dataset of a dropped table", map[string]any{"datasets": append(slices.Clone(before.Datasets), gone),
			"keplerMapConfig": config(layer("l1", "mvt", "places"), layer("l2", "mvt", "towns"), layer("l3", "mvt", "gone"))}, "dropped_table"},
		{"config naming a removed dataset", map[string]any{"datasets": before.Datasets[:1],
			"keplerMapConfig": config(layer("l1", "mvt", "places"), layer("l2", "mvt", "towns"))}, "not a dataset of this map"},
		{"datasets without the config's", map[string]any{"datasets": before.Datasets[:1]}, "not a dataset of this map"},
	} {
		res, raw = ed.Do(t, "PATCH", "/workspace-api/maps/"+id, c.body)
		controltest.Want(t, c.what, res, raw, 400)
		if !strings.Contains(string(raw), c.msg) {
			t.Errorf("%s: %s, want %q", c.what, raw, c.msg)
		}
	}
	res, raw = ed.Do(t, "GET", "/workspace-api/maps/"+id+"/datasets", nil)
	if !strings.Contains(string(raw), `"towns"`) || strings.Contains(string(raw), `"gone"`) {
		t.Errorf("a refused PATCH changed the datasets: %s", raw)
	}
	res, raw = ed.Do(t, "PATCH", "/workspace-api/maps/"+id, map[string]any{"datasets": before.Datasets[:1],
		"keplerMapConfig": config(layer("l1", "mvt", "places"))})
	controltest.Want(t, "remove a dataset with its layer in one save", res, raw, 200)
	res, raw = ed.Do(t, "PATCH", "/workspace-api/maps/"+id, map[string]any{"datasets": before.Datasets,
		"keplerMapConfig": config(layer("l1", "mvt", "places"), layer("l2", "mvt", "towns"))})
	controltest.Want(t, "add it back with its layer in one save", res, raw, 200)

	// Private: nobody else sees it, another org least of all.
	for _, u := range []*controltest.User{ed2, viewer, guest, adminB} {
		res, raw = u.Do(t, "GET", "/workspace-api/maps/"+id, nil)
		controltest.Want(t, "someone else opens a private map", res, raw, 404)
		res, raw = u.Do(t, "GET", "/workspace-api/maps?scope=org", nil)
		if strings.Contains(string(raw), id) {
			t.Errorf("a private map is listed to %s", u.Email)
		}
	}
	res, raw = e.Do(t, "GET", "/api/v3/maps/public/"+id, nil, nil)
	controltest.Want(t, "public doc of an unpublished map", res, raw, 404)

	// Share with the viewer by name: that publishes it.
	res, raw = ed.Do(t, "PATCH", "/workspace-api/maps/"+id, map[string]any{"privacy": map[string]any{"privacy": "shared", "sharingScope": "users", "users": []string{viewer.ID}}})
	if m := controltest.Want(t, "share", res, raw, 200); m["publishedAt"] == nil {
		t.Errorf("sharing did not publish: %s", raw)
	}
	res, raw = ed.Do(t, "PATCH", "/workspace-api/maps/"+id, map[string]any{"privacy": map[string]any{"privacy": "shared", "sharingScope": "users", "users": []string{adminB.ID}}})
	controltest.Want(t, "share with another org's user", res, raw, 400)
	res, raw = ed.Do(t, "PATCH", "/workspace-api/maps/"+id, map[string]any{"title": "Delaware draft"})
	controltest.Want(t, "edit draft", res, raw, 200)
	res, raw = viewer.Do(t, "GET", "/workspace-api/maps/"+id, nil)
	if v := controltest.Want(t, "viewer opens", res, raw, 200); v["canEdit"] != false || v["draft"] != false || v["title"] != "Delaware" {
		t.Errorf("the viewer sees %s; want the published snapshot, read-only", raw)
	}
	res, raw = viewer.Do(t, "GET", "/workspace-api/maps?scope=shared", nil)
	if !strings.Contains(string(raw), id) {
		t.Errorf("shared map not listed to the viewer: %s", raw)
	}
	res, raw = viewer.Do(t, "PATCH", "/workspace-api/maps/"+id, map[string]any{"title": "mine now"})
	controltest.Want(t, "viewer edits", res, raw, 403)
	res, raw = ed2.Do(t, "GET", "/workspace-api/maps/"+id, nil)
	controltest.Want(t, "editor not shared with", res, raw, 404)
	res, raw = guest.Do(t, "GET", "/workspace-api/maps/"+id, nil)
	controltest.Want(t, "guest not shared with", res, raw, 404)

	// The document of a shared map: only to those it is shared with, never stored.
	res, raw = e.Do(t, "GET", "/api/v3/maps/public/"+id, nil, nil)
	controltest.Want(t, "anonymous, shared map", res, raw, 404)
	res, raw = ed2.DoToken(t, "GET", "/api/v3/maps/public/"+id, nil)
	controltest.Want(t, "not shared with", res, raw, 404)
	res, raw = viewer.DoToken(t, "GET", "/api/v3/maps/public/"+id, nil)
	doc := controltest.Want(t, "viewer's fetchMap", res, raw, 200)
	if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("shared map document Cache-Control %q", cc)
	}
	if doc["title"] != "Delaware" || doc["token"] == "" {
		t.Errorf("doc: %s", raw)
	}
	tok1 := doc["token"].(string)
	checkGrants(t, e, tok1, grant.Grant{Connection: "warehouse", Source: "public.places"}, grant.Grant{Connection: "warehouse", Source: q})

	// Public: anyone, cacheable, tagged.
	res, raw = ed.Do(t, "POST", "/workspace-api/maps/"+id+"/publish", map[string]any{"privacy": map[string]any{"privacy": "public"}})
	controltest.Want(t, "publish public", res, raw, 200)
	res, raw = e.Do(t, "GET", "/api/v3/maps/public/"+id+"?v=3.4&client=deck-gl-carto", nil, nil)
	doc = controltest.Want(t, "anonymous, public map", res, raw, 200)
	if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "public") || !strings.Contains(cc, "s-maxage") {
		t.Errorf("public map document Cache-Control %q", cc)
	}
	if sk := res.Header.Get("Surrogate-Key"); !strings.Contains(sk, "map:"+id) {
		t.Errorf("Surrogate-Key %q", sk)
	}
	if doc["title"] != "Delaware draft" || doc["token"] != tok1 {
		t.Errorf("republished without new datasets: title %v, token changed %v", doc["title"], doc["token"] != tok1)
	}
	ds := doc["datasets"].([]any)
	if len(ds) != 2 || ds[0].(map[string]any)["providerId"] != "postgres" || ds[0].(map[string]any)["connectionName"] != "warehouse" {
		t.Errorf("datasets: %v", ds)
	}
	res, raw = e.Do(t, "POST", "/api/v3/maps/public/"+id, map[string]any{"v": "3.4"}, nil)
	controltest.Want(t, "POST public map", res, raw, 200)
	etag := res.Header.Get("ETag")
	res, _ = e.Do(t, "GET", "/api/v3/maps/public/"+id, nil, func(r *http.Request) { r.Header.Set("If-None-Match", etag) })
	if res.StatusCode != 304 {
		t.Errorf("revalidation: %d", res.StatusCode)
	}

	// New datasets: a new token; the old one is revoked.
	res, raw = ed.Do(t, "POST", "/workspace-api/maps/"+id+"/datasets", map[string]any{"id": "all", "type": "table", "source": "places", "connectionName": "warehouse"})
	controltest.Want(t, "third dataset", res, raw, 201)
	res, raw = ed.Do(t, "POST", "/workspace-api/maps/"+id+"/publish", nil)
	controltest.Want(t, "republish", res, raw, 200)
	res, raw = e.Do(t, "GET", "/api/v3/maps/public/"+id, nil, nil)
	tok2 := controltest.Want(t, "doc", res, raw, 200)["token"].(string)
	if tok2 == tok1 {
		t.Fatal("grants changed but the map token did not")
	}
	if old, err := e.Tokens.GetByToken(ctx, tok1); err != nil || !old.Revoked() {
		t.Errorf("the replaced map token is not revoked: %v", err)
	}
	nt, _ := e.Tokens.GetByToken(ctx, tok2)
	var kind string
	if err := e.DB.Pool.QueryRow(ctx, `SELECT kind FROM tokens WHERE id = $1`, nt.ID).Scan(&kind); err != nil || kind != "map" {
		t.Errorf("map token kind %q (%v)", kind, err)
	}

	// Thumbnails.
	png := "\x89PNG\r\n\x1a\n0000"
	res, raw = e.Do(t, "PUT", "/workspace-api/maps/"+id+"/thumbnail", strings.NewReader(png), func(r *http.Request) {
		r.AddCookie(ed.Cookie)
		r.Header.Set("Content-Type", "image/png")
	})
	controltest.Want(t, "thumbnail", res, raw, 204)
	res, raw = e.Do(t, "PUT", "/workspace-api/maps/"+id+"/thumbnail", strings.NewReader("GIF89a"), func(r *http.Request) {
		r.AddCookie(ed.Cookie)
		r.Header.Set("Content-Type", "image/png")
	})
	controltest.Want(t, "not a png", res, raw, 400)
	res, raw = viewer.Do(t, "GET", "/workspace-api/maps/"+id+"/thumbnail", nil)
	if res.StatusCode != 200 || string(raw) != png || res.Header.Get("Content-Type") != "image/png" {
		t.Errorf("viewer thumbnail: %d %q", res.StatusCode, raw)
	}

	// Duplicate: a private copy of what the caller sees.
	res, raw = ed2.Do(t, "POST", "/workspace-api/maps/"+id+"/duplicate", nil)
	dup := controltest.Want(t, "duplicate public map", res, raw, 201)
	if dup["ownerId"] != ed2.ID || dup["privacy"].(map[string]any)["privacy"] != "private" || dup["title"] != "Copy of Delaware draft" {
		t.Errorf("duplicate: %s", raw)
	}
	res, raw = viewer.Do(t, "POST", "/workspace-api/maps/"+id+"/duplicate", nil)
	controltest.Want(t, "viewer duplicates", res, raw, 403)

	// A dropped table: publishing says so.
	if _, err := data.Pool.Exec(ctx, `ALTER TABLE public.places RENAME TO places_old`); err != nil {
		t.Fatal(err)
	}
	res, raw = ed.Do(t, "POST", "/workspace-api/maps/"+id+"/publish", nil)
	controltest.Want(t, "publish with a dropped table", res, raw, 400)
	if !strings.Contains(string(raw), "does not exist") {
		t.Errorf("dropped table: %s", raw)
	}
	if _, err := data.Pool.Exec(ctx, `ALTER TABLE public.places_old RENAME TO places`); err != nil {
		t.Fatal(err)
	}

	// Unpublish: the document is gone and the token revoked.
	res, raw = ed.Do(t, "DELETE", "/workspace-api/maps/"+id+"/publish", nil)
	controltest.Want(t, "unpublish", res, raw, 200)
	res, raw = e.Do(t, "GET", "/api/v3/maps/public/"+id, nil, nil)
	controltest.Want(t, "unpublished", res, raw, 404)
	if tk, _ := e.Tokens.GetByToken(ctx, tok2); !tk.Revoked() {
		t.Error("unpublish left the map token alive")
	}

	// Another org cannot touch it.
	for _, c := range []struct{ m, p string }{{"GET", ""}, {"PATCH", ""}, {"DELETE", ""}, {"POST", "/duplicate"}, {"POST", "/publish"}, {"GET", "/datasets"}, {"GET", "/thumbnail"}} {
		var body any
		if c.m == "PATCH" {
			body = map[string]any{"title": "x"}
		}
		res, raw = adminB.Do(t, c.m, "/workspace-api/maps/"+id+c.p, body)
		controltest.Want(t, "another org "+c.m+c.p, res, raw, 404)
	}
	res, raw = ed2.Do(t, "DELETE", "/workspace-api/maps/"+id, nil)
	controltest.Want(t, "non-owner deletes a private map", res, raw, 404)
	res, raw = ed.Do(t, "DELETE", "/workspace-api/maps/"+id, nil)
	controltest.Want(t, "delete", res, raw, 204)
	res, raw = ed.Do(t, "GET", "/workspace-api/maps?scope=mine", nil)
	if strings.Contains(string(raw), id) {
		t.Error("deleted map listed")
	}

	// Every change is in the audit log.
	var actions string
	if err := e.DB.Pool.QueryRow(ctx, `SELECT string_agg(action, ',' ORDER BY id) FROM audit_log WHERE target = $1`, id).Scan(&actions); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"map.created", "map.shared", "map.published", "map.unpublished", "map.deleted"} {
		if !strings.Contains(actions, a) {
			t.Errorf("audit log %q lacks %s", actions, a)
		}
	}
}

// checkGrants verifies that token grants exactly want, for maps and sql.
func checkGrants(t *testing.T, e *controltest.Env, token string, want ...grant.Grant) {
	t.Helper()
	tk, err := e.Tokens.GetByToken(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tk.Grants) != fmt.Sprint(want) {
		t.Errorf("map token grants %v, want %v", tk.Grants, want)
	}
	if fmt.Sprint(tk.APIs) != "[maps sql]" {
		t.Errorf("map token APIs %v", tk.APIs)
	}
}

func TestCollaborativeMap(t *testing.T) {
	e, ed, _ := setup(t)
	ed2 := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	viewer := e.NewUser(t, identity.DefaultOrg, identity.RoleViewer)
	res, raw := ed.Do(t, "POST", "/workspace-api/maps", map[string]any{"title": "Team map"})
	id := controltest.Want(t, "create", res, raw, 201)["id"].(string)
	res, raw = ed.Do(t, "PATCH", "/workspace-api/maps/"+id, map[string]any{"collaborative": true, "privacy": map[string]any{"privacy": "shared", "sharingScope": "org"}})
	controltest.Want(t, "share with the org, collaborative", res, raw, 200)
	res, raw = ed2.Do(t, "PATCH", "/workspace-api/maps/"+id, map[string]any{"title": "Team map v2"})
	if m := controltest.Want(t, "collaborator edits", res, raw, 200); m["title"] != "Team map v2" || m["canEdit"] != true {
		t.Errorf("collaborator: %s", raw)
	}
	res, raw = ed2.Do(t, "PATCH", "/workspace-api/maps/"+id, map[string]any{"privacy": map[string]any{"privacy": "public"}})
	controltest.Want(t, "collaborator changes privacy", res, raw, 403)
	res, raw = ed2.Do(t, "DELETE", "/workspace-api/maps/"+id, nil)
	controltest.Want(t, "collaborator deletes", res, raw, 403)
	res, raw = viewer.Do(t, "PATCH", "/workspace-api/maps/"+id, map[string]any{"title": "x"})
	controltest.Want(t, "viewer edits a collaborative map", res, raw, 403)
	res, raw = viewer.Do(t, "GET", "/workspace-api/maps?scope=org", nil)
	if !strings.Contains(string(raw), id) {
		t.Errorf("org-shared map not listed to a viewer: %s", raw)
	}
}
