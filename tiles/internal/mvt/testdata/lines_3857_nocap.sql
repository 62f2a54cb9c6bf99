SELECT ST_AsMVT(t, 'default', 4096, '__mvt_geom'), count(*), count(*)
FROM (
  SELECT g."way" AS __mg, g."highway"::text AS "highway"
  FROM "osm"."Roads" g
  WHERE g."way" && ST_ClipByBox2D(ST_Expand(ST_TileEnvelope($1::int, $2::int, $3::int), (626172.1357121639 / 2.0::float8 ^ $1::int)), ST_MakeEnvelope(-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244, 3857))
  AND greatest((ST_XMax(postgis_getbbox(g."way")) - ST_XMin(postgis_getbbox(g."way"))), (ST_YMax(postgis_getbbox(g."way")) - ST_YMin(postgis_getbbox(g."way")))) >= (9783.93962050256 / 2.0::float8 ^ $1::int)
) s
CROSS JOIN LATERAL (SELECT ST_AsMVTGeom(ST_Simplify(ST_ClipByBox2D(s.__mg, (SELECT ST_ClipByBox2D(ST_Expand(ST_TileEnvelope($1::int, $2::int, $3::int), (1.2523442714243277e+06 / 2.0::float8 ^ $1::int)), ST_MakeEnvelope(-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244, 3857)))), ((9783.93962050256 / 2.0::float8 ^ $1::int) * 0.5 * 2.0::float8 ^ $4::int), true), ST_TileEnvelope($1::int, $2::int, $3::int), 4096, 64, true) AS __mvt_geom, s."highway") t
