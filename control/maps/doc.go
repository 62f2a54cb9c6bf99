// Package maps serves Builder maps: the workspace API that makes, edits,
// shares and publishes them (/workspace-api/maps…) and the public map
// document that @carto/api-client's fetchMap reads
// (/api/v3/maps/public/{id}). Spec: PLATFORM.md §4, CARTO_API.md §2.6.
//
// A map has a draft (title, description, tags, datasets and a
// keplerMapConfig the Builder replaces wholesale on every save) and, once
// published, a frozen snapshot. Its owner edits it; a collaborative map is
// also edited by the editors it is shared with. Everyone else it is shared
// with (its organization but guests, or users by name), and anyone at all
// when it is public, sees the last published snapshot, never the draft.
//
// Publishing mints a map token (tokens.kind 'map'): an API access token
// for the maps and SQL APIs whose grants are exactly the snapshot's
// datasets, so a published map's viewers reach only its data. Unpublishing
// revokes it (the revocation reaches every edge and tiles node) and makes
// the map private. The public document of a public map is cached by the
// edge under the tag map:<id>; every change of what it shows purges it.
//
// Routes:
//
//	GET    /workspace-api/maps?scope=mine|shared|org&q=&tag=&limit=&offset=
//	POST   /workspace-api/maps                       {title, description, tags, datasets, keplerMapConfig}
//	GET    /workspace-api/maps/{id}
//	PATCH  /workspace-api/maps/{id}                  {title, description, tags, collaborative, privacy, keplerMapConfig}
//	DELETE /workspace-api/maps/{id}
//	POST   /workspace-api/maps/{id}/duplicate
//	GET    /workspace-api/maps/{id}/datasets
//	POST   /workspace-api/maps/{id}/datasets         {id?, type, source, connectionName, geoColumn, columns, …}
//	PATCH  /workspace-api/maps/{id}/datasets/{dataset}
//	DELETE /workspace-api/maps/{id}/datasets/{dataset}
//	POST   /workspace-api/maps/{id}/publish          {privacy?}
//	DELETE /workspace-api/maps/{id}/publish
//	PUT    /workspace-api/maps/{id}/thumbnail        image/png or image/jpeg
//	GET    /workspace-api/maps/{id}/thumbnail
//	GET|POST /api/v3/maps/public/{id}
//
// Every lookup is scoped to the caller's organization: another
// organization's map, or a map the caller may not see, is a 404.
package maps
