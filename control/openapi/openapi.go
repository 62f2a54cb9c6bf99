// Package openapi describes the control plane's HTTP API as OpenAPI 3.1
// documents, served at /api/openapi.json (the /api routes) and
// /workspace-api/openapi.json (the /workspace-api and /accounts-api
// routes). A test in package control checks that the router and Ops
// agree: every route registered under those prefixes is documented here,
// and every documented operation answers (is routed).
//
// To document a new route, add one Op to Ops below, next to its package's
// others.
package openapi

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
)

// Who may call an operation.
const (
	Public = "public" // no credentials
	User   = "user"   // session cookie (+ CSRF) or user OAuth token
	API    = "api"    // API access token (grants)
	Admin  = "admin"  // a signed-in platform admin, or the admin bearer secret
)

// Op is one documented operation.
type Op struct {
	Method, Path string
	Tag          string
	Summary      string
	Auth         string
	// Body names the request body: "json", "form" (urlencoded),
	// "multipart", "image" (PNG or JPEG), or "" for none.
	Body string
	// Status is the success status. Default: 200.
	Status int
}

// Ops lists every operation of the control plane under /api,
// /workspace-api and /accounts-api.
var Ops = []Op{
	{"GET", "/api/version", "meta", "Version of the control plane", Public, "", 0},
	{"GET", "/api/openapi.json", "meta", "This document (the /api routes)", Public, "", 0},
	{"GET", "/workspace-api/openapi.json", "meta", "The workspace and accounts APIs' document", Public, "", 0},

	// accounts (control/accounts)
	{"GET", "/accounts-api/status", "accounts", "Whether the install needs its first account, and the sign-up policy", Public, "", 0},
	{"POST", "/accounts-api/signup", "accounts", "Sign up: the first user becomes admin; later by invite or open sign-up", Public, "json", 201},
	{"POST", "/accounts-api/login", "accounts", "Sign in with email and password (sets the session cookie)", Public, "json", 0},
	{"POST", "/accounts-api/logout", "accounts", "Sign out this browser", User, "", 204},
	{"POST", "/accounts-api/logout-all", "accounts", "Sign out everywhere: every session and user token of the user", User, "", 204},
	{"GET", "/accounts-api/me", "accounts", "The signed-in user and organization", User, "", 0},
	{"PATCH", "/accounts-api/me", "accounts", "Change one's name or password", User, "json", 0},
	{"GET", "/accounts-api/session", "accounts", "Whether this browser is signed in (always 200)", Public, "", 0},
	{"POST", "/accounts-api/password/forgot", "accounts", "Mail a single-use password reset link", Public, "json", 202},
	{"POST", "/accounts-api/password/reset", "accounts", "Set a new password with a reset link's token", Public, "json", 0},
	{"GET", "/accounts-api/invites/{token}", "accounts", "Whom an invite link is for", Public, "", 0},
	{"POST", "/accounts-api/oauth/token", "accounts", "OAuth 2.0 client credentials grant: a 24-hour user token", Public, "form", 0},
	{"GET", "/accounts-api/sso/login", "accounts", "Start single sign-on (OpenID Connect, code flow with PKCE); ?next= is where to land", Public, "", 302},
	{"GET", "/accounts-api/sso/callback", "accounts", "The provider's redirect back: verifies the sign-in and starts a session", Public, "", 302},
	{"POST", "/accounts-api/session/token", "accounts", "Exchange the session for a short-lived API access token (editors)", User, "", 0},
	{"GET", "/workspace-api/org", "organization", "The caller's organization", User, "", 0},
	{"PATCH", "/workspace-api/org", "organization", "Change the organization's name, default role or sign-up policy (admin)", User, "json", 0},
	{"GET", "/workspace-api/users", "organization", "The organization's people (editors and admins)", User, "", 0},
	{"PATCH", "/workspace-api/users/{id}", "organization", "Change a user's role (admin)", User, "json", 0},
	{"DELETE", "/workspace-api/users/{id}", "organization", "Remove a user; ?receiver= gets their tokens, imports, jobs and maps (admin)", User, "", 204},
	{"GET", "/workspace-api/invites", "organization", "Invites (admin)", User, "", 0},
	{"POST", "/workspace-api/invites", "organization", "Invite someone by email with a role (admin)", User, "json", 201},
	{"DELETE", "/workspace-api/invites/{id}", "organization", "Revoke an open invite (admin)", User, "", 204},
	{"GET", "/workspace-api/oauth-clients", "organization", "The caller's OAuth clients (all of the org's for admins)", User, "", 0},
	{"POST", "/workspace-api/oauth-clients", "organization", "Create an OAuth client; its secret is shown once (editors)", User, "json", 201},
	{"DELETE", "/workspace-api/oauth-clients/{id}", "organization", "Revoke an OAuth client and its tokens", User, "", 204},
	{"GET", "/workspace-api/audit", "organization", "The organization's audit log (admin)", User, "", 0},

	// tokens (control/tokens)
	{"POST", "/api/v3/tokens", "tokens", "Create an API access token (CARTO shape); never beyond the creator's connections", User, "json", 201},
	{"GET", "/api/v3/tokens", "tokens", "The caller's API access tokens", User, "", 0},
	{"GET", "/api/v3/tokens/{token}", "tokens", "One token, by its string or id", User, "", 0},
	{"PATCH", "/api/v3/tokens/{token}", "tokens", "Rename, or change grants/referers/APIs (re-issues the token, revokes the old)", User, "json", 0},
	{"DELETE", "/api/v3/tokens/{token}", "tokens", "Revoke a token (every node within about a second)", User, "", 204},

	// connections (control/connections)
	{"GET", "/api/v3/connections", "connections", "Connections the caller may use", User, "", 0},
	{"POST", "/api/v3/connections", "connections", "Create a connection (credentials write-only, sealed)", User, "json", 201},
	{"POST", "/api/v3/connections/test", "connections", "Test credentials before saving them", User, "json", 0},
	{"GET", "/api/v3/connections/{id}", "connections", "One connection (never its credentials)", User, "", 0},
	{"PATCH", "/api/v3/connections/{id}", "connections", "Change privacy or credentials (a PATCH without them keeps them)", User, "json", 0},
	{"DELETE", "/api/v3/connections/{id}", "connections", "Delete a connection; 409 while tokens or maps use it", User, "", 204},
	{"POST", "/api/v3/connections/{id}/test", "connections", "Test a saved connection", User, "", 0},

	// maps (control/maps)
	{"GET", "/workspace-api/maps", "maps", "Maps the caller may see: ?scope=mine|shared|org, q (title), tag, limit, offset → {maps, total}", User, "", 0},
	{"POST", "/workspace-api/maps", "maps", "Create a map {title, description, tags, datasets, keplerMapConfig} (editors)", User, "json", 201},
	{"GET", "/workspace-api/maps/{id}", "maps", "One map: the draft to its editors, the published snapshot to its viewers", User, "", 0},
	{"PATCH", "/workspace-api/maps/{id}", "maps", "Change title, description, tags, collaborative, privacy {privacy, sharingScope, users}; keplerMapConfig is replaced wholesale", User, "json", 0},
	{"DELETE", "/workspace-api/maps/{id}", "maps", "Delete a map (owner or admin); revokes its map token", User, "", 204},
	{"POST", "/workspace-api/maps/{id}/duplicate", "maps", "Copy a map the caller may see into a new private map of theirs", User, "", 201},
	{"GET", "/workspace-api/maps/{id}/datasets", "maps", "The map's datasets", User, "", 0},
	{"POST", "/workspace-api/maps/{id}/datasets", "maps", "Add a dataset {type table|query, source, connectionName, geoColumn, columns, …}; checked on the data connection", User, "json", 201},
	{"PATCH", "/workspace-api/maps/{id}/datasets/{dataset}", "maps", "Replace a dataset", User, "json", 0},
	{"DELETE", "/workspace-api/maps/{id}/datasets/{dataset}", "maps", "Remove a dataset no layer uses (409 otherwise)", User, "", 204},
	{"POST", "/workspace-api/maps/{id}/publish", "maps", "Publish: freeze the draft, mint the map token (grants = the datasets); optional {privacy}", User, "json", 0},
	{"DELETE", "/workspace-api/maps/{id}/publish", "maps", "Unpublish: drop the snapshot, revoke the map token, make the map private", User, "", 0},
	{"PUT", "/workspace-api/maps/{id}/thumbnail", "maps", "Store the map's thumbnail (image/png or image/jpeg, at most 512 KiB)", User, "image", 204},
	{"GET", "/workspace-api/maps/{id}/thumbnail", "maps", "The map's thumbnail", User, "", 0},
	{"GET", "/api/v3/maps/public/{id}", "maps", "The published map document fetchMap reads {id, title, token, datasets, keplerMapConfig}; public maps need no credentials", Public, "", 0},
	{"POST", "/api/v3/maps/public/{id}", "maps", "Same, for fetchMap's long-URL POST", Public, "json", 0},

	// catalog (control/catalog)
	{"GET", "/workspace-api/connections/{conn}/schemas", "catalog", "Schemas of a data connection", User, "", 0},
	{"GET", "/workspace-api/connections/{conn}/schemas/{schema}/tables", "catalog", "Tables of a schema: geometry, estimated rows, size", User, "", 0},
	{"GET", "/workspace-api/connections/{conn}/tables/{table}", "catalog", "One table (schema.table) and its columns", User, "", 0},
	{"GET", "/workspace-api/connections/{conn}/tables/{table}/sample", "catalog", "The first rows of a table (?limit ≤ 100)", User, "", 0},
	{"PATCH", "/workspace-api/connections/{conn}/tables/{table}", "catalog", "Rename a table (editors)", User, "json", 0},
	{"DELETE", "/workspace-api/connections/{conn}/tables/{table}", "catalog", "Drop a table (editors)", User, "", 204},

	// imports and batch SQL (control: imports.go, jobs.go)
	{"POST", "/api/v3/imports", "imports", "Import a file (multipart) or a URL into a table", API, "multipart", 201},
	{"POST", "/api/v3/imports/preview", "imports", "Describe a file without importing it: an upload (multipart: part file; fields format, layer, rows) " +
		"or a URL (JSON {url, format?, layer?, rows?}; private addresses refused). Answers " +
		"{format, layers: [{name, geometryType, features}], layer, layerRequired, columns: [{name, type}], " +
		"geometry: {kind: native|latlon|wkt|none, type?, latitude?, longitude?, column?}, rows: [{<column>: value, geometry: GeoJSON|null}]}; " +
		"400 with code UNKNOWN_FORMAT, BAD_INPUT (corrupt file, unknown layer), URL_NOT_ALLOWED or FETCH_FAILED", API, "multipart", 0},
	{"GET", "/api/v3/imports", "imports", "The organization's imports", API, "", 0},
	{"GET", "/api/v3/imports/{id}", "imports", "One import and its progress", API, "", 0},
	{"POST", "/api/v3/imports/{id}/cancel", "imports", "Cancel an import", API, "", 0},
	{"POST", "/api/v3/sql/{conn}/job", "sql", "Submit a batch SQL job", API, "json", 201},
	{"GET", "/api/v3/sql/{conn}/job", "sql", "Batch SQL jobs on a connection", API, "", 0},
	{"GET", "/api/v3/sql/{conn}/job/{id}", "sql", "One batch SQL job", API, "", 0},
	{"DELETE", "/api/v3/sql/{conn}/job/{id}", "sql", "Cancel a batch SQL job", API, "", 0},
	{"POST", "/api/v3/sql/{conn}/job/{id}/cancel", "sql", "Cancel a batch SQL job", API, "", 0},
	{"GET", "/api/v3/sql/jobs", "sql", "The organization's batch SQL jobs", API, "", 0},

	// Location Data Services (control/lds)
	{"GET", "/api/v3/lds/geocoding/geocode", "lds", "Geocode an address (address, country, limit)", API, "", 0},
	{"POST", "/api/v3/lds/geocoding/geocode", "lds", "Geocode an address (parameters in a JSON body)", API, "json", 0},
	{"GET", "/api/v3/lds/geocoding/reverse", "lds", "Reverse geocode a point (lat, lon)", API, "", 0},
	{"POST", "/api/v3/lds/geocoding/batch", "lds", "Geocode up to 10,000 addresses, answers in input order", API, "json", 0},
	{"GET", "/api/v3/lds/routing", "lds", "Route between origin and destination (lon,lat) via waypoints (lat,lon), mode car/walk", API, "", 0},
	{"GET", "/api/v3/lds/routing/matrix", "lds", "Travel times between origins and destinations", API, "", 0},
	{"GET", "/api/v3/lds/isolines", "lds", "Areas reachable within each range (time or distance)", API, "", 0},
	{"GET", "/api/v3/lds/isolines/h3", "lds", "Isolines as H3 cells (no engine yet: 400 Unsupported provider)", API, "", 0},
	{"GET", "/api/v3/lds/stats", "lds", "Monthly quota used and left per service", API, "", 0},

	// admin (control/admin)
	{"GET", "/api/admin/session", "admin", "Whether the caller may use the admin API", Public, "", 0},
	{"GET", "/api/admin/nodes", "admin", "Every node: component, version, uptime, readiness, heartbeat", Admin, "", 0},
	{"GET", "/api/admin/cache", "admin", "Edge cache statistics per node", Admin, "", 0},
	{"POST", "/api/admin/purge", "admin", "Purge by tag (every edge and tiles node), by URL or by path prefix (every edge) across the cluster", Admin, "json", 202},
	{"GET", "/api/admin/broker/subscriptions", "admin", "Broker topics, subscriptions and backlogs", Admin, "", 0},
	{"GET", "/api/admin/broker/subscriptions/{name}/dead-letters", "admin", "A subscription's dead letters", Admin, "", 0},
	{"POST", "/api/admin/broker/subscriptions/{name}/dead-letters/{id}/replay", "admin", "Replay a dead letter", Admin, "", 0},
	{"DELETE", "/api/admin/broker/subscriptions/{name}/dead-letters/{id}", "admin", "Drop a dead letter", Admin, "", 204},
	{"GET", "/api/admin/config", "admin", "The effective configuration, secrets redacted", Admin, "", 0},
	{"GET", "/api/admin/orgs", "admin", "Every organization: members, admins, pending invites, LDS use and quotas", Admin, "", 0},
	{"POST", "/api/admin/orgs", "admin", "Create an organization and invite its first admin (adminEmail)", Admin, "json", 201},
	{"GET", "/api/admin/orgs/{id}", "admin", "One organization", Admin, "", 0},
	{"GET", "/api/admin/orgs/{id}/users", "admin", "An organization's users", Admin, "", 0},
	{"POST", "/api/admin/orgs/{id}/invites", "admin", "Invite someone into an organization (default role admin)", Admin, "json", 201},
	{"GET", "/api/admin/orgs/{id}/quotas", "admin", "An organization's LDS quotas and use this month", Admin, "", 0},
	{"PUT", "/api/admin/orgs/{id}/quotas/{service}", "admin", "Set an organization's monthly LDS quota (null: the default)", Admin, "json", 0},
	{"DELETE", "/api/admin/orgs/{id}/quotas/{service}", "admin", "Return an organization's LDS quota to the default", Admin, "", 0},
	{"GET", "/api/admin/platform-admins", "admin", "The platform administrators", Admin, "", 0},
	{"GET", "/api/admin/users/{id}", "admin", "Any user", Admin, "", 0},
	{"PATCH", "/api/admin/users/{id}", "admin", "Make a user a platform administrator or not (the last one stays)", Admin, "json", 0},
}

var paramRE = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Document builds the OpenAPI 3.1 document of the operations whose path
// starts with one of prefixes.
func Document(title, version string, prefixes ...string) map[string]any {
	paths := map[string]any{}
	for _, op := range Ops {
		if !hasPrefix(op.Path, prefixes) {
			continue
		}
		item, _ := paths[op.Path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[op.Path] = item
		}
		item[strings.ToLower(op.Method)] = operation(op)
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": title, "version": version,
			"description": "Meridian's management API. Errors are JSON objects {error, status, code}; another organization's ids answer 404."},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"session":    map[string]any{"type": "apiKey", "in": "cookie", "name": "meridian_session", "description": "Browser session; unsafe methods must be same-origin (CSRF protection)."},
				"userToken":  map[string]any{"type": "http", "scheme": "bearer", "description": "24-hour user OAuth token (POST /accounts-api/oauth/token)."},
				"apiToken":   map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "API access token with grants (Tokens API)."},
				"adminToken": map[string]any{"type": "http", "scheme": "bearer", "description": "The operators' admin secret (MERIDIAN_CONTROL_ADMIN_TOKEN)."},
			},
			"schemas": map[string]any{
				"Error": map[string]any{"type": "object", "required": []string{"error", "status", "code"}, "properties": map[string]any{
					"error": map[string]any{"type": "string"}, "status": map[string]any{"type": "integer"}, "code": map[string]any{"type": "string"}}},
			},
		},
	}
}

func hasPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func operation(op Op) map[string]any {
	status := op.Status
	if status == 0 {
		status = http.StatusOK
	}
	id := strings.ToLower(op.Method) + paramRE.ReplaceAllString(op.Path, "By_$1")
	id = strings.NewReplacer("/", "_", "-", "_", ".", "_", "{", "", "}", "").Replace(id)
	o := map[string]any{
		"operationId": id,
		"summary":     op.Summary,
		"tags":        []string{op.Tag},
		"responses": map[string]any{
			itoa(status): map[string]any{"description": http.StatusText(status)},
			"default": map[string]any{"description": "An error", "content": map[string]any{
				"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}},
		},
	}
	switch op.Auth {
	case Public:
		o["security"] = []any{}
	case User:
		o["security"] = []any{map[string]any{"session": []string{}}, map[string]any{"userToken": []string{}}}
	case API:
		o["security"] = []any{map[string]any{"apiToken": []string{}}}
	case Admin:
		o["security"] = []any{map[string]any{"session": []string{}}, map[string]any{"userToken": []string{}}, map[string]any{"adminToken": []string{}}}
	}
	var params []any
	for _, m := range paramRE.FindAllStringSubmatch(op.Path, -1) {
		params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	if params != nil {
		o["parameters"] = params
	}
	if op.Body == "image" {
		o["requestBody"] = map[string]any{"required": true, "content": map[string]any{
			"image/png":  map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
			"image/jpeg": map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}}
	}
	ct := map[string]string{"json": "application/json", "form": "application/x-www-form-urlencoded", "multipart": "multipart/form-data"}[op.Body]
	if ct != "" {
		o["requestBody"] = map[string]any{"required": true, "content": map[string]any{ct: map[string]any{"schema": map[string]any{"type": "object"}}}}
	}
	return o
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

var (
	docsOnce      sync.Once
	apiDoc, wsDoc []byte
)

// Routes serves the two documents on mux.
func Routes(mux *http.ServeMux, version string) {
	docsOnce.Do(func() {
		apiDoc, _ = json.MarshalIndent(Document("Meridian API", version, "/api/"), "", "  ")
		wsDoc, _ = json.MarshalIndent(Document("Meridian workspace and accounts API", version, "/workspace-api/", "/accounts-api/"), "", "  ")
	})
	serve := func(b []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "public, max-age=300")
			w.Write(b)
		}
	}
	mux.HandleFunc("GET /api/openapi.json", serve(apiDoc))
	mux.HandleFunc("GET /workspace-api/openapi.json", serve(wsDoc))
}
