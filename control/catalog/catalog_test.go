package catalog_test

import (
	"context"
	"strings"
	"testing"

	"github.com/meridian-gis/meridian/control/controltest"
	"github.com/meridian-gis/meridian/internal/dataconn"
	"github.com/meridian-gis/meridian/internal/identity"
	"github.com/meridian-gis/meridian/internal/pgdb/pgtest"
)

func TestCatalog(t *testing.T) {
	data := pgtest.Data(t)
	ctx := context.Background()
	for _, q := range []string{
		`CREATE SCHEMA shop`,
		`CREATE TABLE shop.stores (id serial PRIMARY KEY, name text NOT NULL, geom geometry(Point, 4326))`,
		`INSERT INTO shop.stores (name, geom) SELECT 'store ' || i, ST_SetSRID(ST_MakePoint(i, i), 4326) FROM generate_series(1, 50) i`,
		`ANALYZE shop.stores`,
		`CREATE VIEW shop.big_stores AS SELECT * FROM shop.stores WHERE id > 25`,
		`CREATE TABLE shop."Odd Name" (v int)`,
		`CREATE TABLE public.doomed (v int)`,
	} {
		if _, err := data.Pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	e := controltest.Start(t, nil)
	if _, err := dataconn.New(e.DB.Pool, e.Keyring).Create(ctx, dataconn.Connection{Name: "dw", URL: data.URL}); err != nil {
		t.Fatal(err)
	}
	orgB := e.NewOrg(t, "B")
	viewer := e.NewUser(t, identity.DefaultOrg, identity.RoleViewer)
	editor := e.NewUser(t, identity.DefaultOrg, identity.RoleEditor)
	outsider := e.NewUser(t, orgB, identity.RoleAdmin)

	res, raw := viewer.Do(t, "GET", "/workspace-api/connections/dw/schemas", nil)
	m := controltest.Want(t, "schemas", res, raw, 200)
	if !strings.Contains(string(raw), `"name":"shop","tables":3`) || strings.Contains(string(raw), "pg_catalog") || strings.Contains(string(raw), "information_schema") {
		t.Errorf("schemas: %s", raw)
	}
	_ = m
	res, raw = viewer.Do(t, "GET", "/workspace-api/connections/dw/schemas/shop/tables", nil)
	tables := controltest.Want(t, "tables", res, raw, 200)["tables"].([]any)
	if len(tables) != 3 {
		t.Fatalf("tables: %s", raw)
	}
	var stores map[string]any
	for _, x := range tables {
		if x.(map[string]any)["name"] == "shop.stores" {
			stores = x.(map[string]any)
		}
	}
	if stores == nil || stores["geometryType"] != "POINT" || stores["geometryColumn"] != "geom" || stores["srid"] != float64(4326) ||
		stores["estimatedRows"] != float64(50) || stores["sizeBytes"].(float64) <= 0 || stores["kind"] != "table" {
		t.Errorf("shop.stores: %v", stores)
	}
	res, raw = viewer.Do(t, "GET", "/workspace-api/connections/dw/tables/shop.stores", nil)
	tbl := controltest.Want(t, "table", res, raw, 200)
	cols := tbl["columns"].([]any)
	if len(cols) != 3 || cols[1].(map[string]any)["name"] != "name" || cols[1].(map[string]any)["nullable"] != false || !strings.HasPrefix(cols[2].(map[string]any)["type"].(string), "geometry(Point,4326)") {
		t.Errorf("columns: %v", cols)
	}
	res, raw = viewer.Do(t, "GET", "/workspace-api/connections/dw/tables/shop.stores/sample?limit=3", nil)
	rows := controltest.Want(t, "sample", res, raw, 200)["rows"].([]any)
	if len(rows) != 3 || rows[0].(map[string]any)["geom"].(map[string]any)["type"] != "Point" {
		t.Errorf("sample: %s", raw)
	}
	res, raw = viewer.Do(t, "GET", `/workspace-api/connections/dw/tables/shop."Odd%20Name"`, nil)
	controltest.Want(t, "quoted name", res, raw, 200)

	// Bad input and missing things.
	for path, status := range map[string]int{
		"/workspace-api/connections/dw/tables/shop.nope":                     404,
		"/workspace-api/connections/dw/tables/stores":                        400,
		"/workspace-api/connections/dw/tables/shop.stores;drop%20table%20x":  400,
		"/workspace-api/connections/dw/tables/shop.stores/sample?limit=1000": 400,
		"/workspace-api/connections/nope/schemas":                            404,
		"/workspace-api/connections/dw/tables/pg_catalog.pg_authid":          404,
		"/workspace-api/connections/dw/tables/a.b.c.d":                       400,
		"/workspace-api/connections/dw/tables/%22unterminated":               400,
	} {
		res, raw = viewer.Do(t, "GET", path, nil)
		controltest.Want(t, path, res, raw, status)
	}
	// Another org, and the metadata database, are out of reach.
	res, raw = outsider.Do(t, "GET", "/workspace-api/connections/dw/schemas", nil)
	controltest.Want(t, "another org", res, raw, 404)
	res, raw = viewer.Do(t, "GET", "/workspace-api/connections/local/tables/public.users", nil)
	if res.StatusCode == 200 {
		t.Errorf("the catalog read the metadata database's users table: %s", raw)
	}

	// Rename and drop: editors only; announced as invalidations.
	res, raw = viewer.Do(t, "PATCH", "/workspace-api/connections/dw/tables/shop.stores", map[string]string{"name": "shops"})
	controltest.Want(t, "viewer renames", res, raw, 403)
	res, raw = editor.Do(t, "PATCH", "/workspace-api/connections/dw/tables/shop.stores", map[string]string{"name": "bad name; drop"})
	controltest.Want(t, "bad new name", res, raw, 400)
	res, raw = editor.Do(t, "PATCH", "/workspace-api/connections/dw/tables/shop.stores", map[string]string{"name": "Odd Name"})
	controltest.Want(t, "bad new name with a space", res, raw, 400)
	res, raw = editor.Do(t, "DELETE", "/workspace-api/connections/dw/tables/shop.stores", nil)
	controltest.Want(t, "drop a table a view depends on", res, raw, 409)
	res, raw = editor.Do(t, "PATCH", "/workspace-api/connections/dw/tables/shop.stores", map[string]string{"name": "shops"})
	if m := controltest.Want(t, "rename", res, raw, 200); m["name"] != "shop.shops" {
		t.Errorf("renamed: %s", raw)
	}
	res, raw = editor.Do(t, "DELETE", "/workspace-api/connections/dw/tables/public.doomed", nil)
	controltest.Want(t, "drop", res, raw, 204)
	var n int
	data.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname = 'doomed'`).Scan(&n)
	if n != 0 {
		t.Error("public.doomed still exists")
	}
	var msgs int
	e.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM broker_messages WHERE topic = 'invalidations' AND convert_from(data, 'utf8') LIKE '%src:dw/public.doomed%'`).Scan(&msgs)
	if msgs != 1 {
		t.Errorf("%d invalidations of public.doomed published, want 1", msgs)
	}
}
