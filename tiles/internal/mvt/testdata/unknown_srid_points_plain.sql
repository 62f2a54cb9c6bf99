SELECT ST_AsMVT(t, 'default', 256, '__mvt_geom'), count(*), coalesce(max(s.__mn), 0)::int8
FROM (
  SELECT ST_SetSRID(g."geom", 4326) AS __mg, g."ok" AS "ok", count(*) OVER () AS __mn
  FROM "public"."odd" g
  WHERE ST_SetSRID(g."geom", 4326) && ST_Transform(ST_ClipByBox2D(ST_Expand(ST_TileEnvelope($1::int, $2::int, $3::int), (1.2523442714243277e+06 / 2.0::float8 ^ $1::int)), ST_MakeEnvelope(-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244, 3857)), 4326)
  ORDER BY md5(ST_AsBinary(ST_SetSRID(g."geom", 4326))), ST_XMin(postgis_getbbox(g."geom")), ST_YMin(postgis_getbbox(g."geom"))
  LIMIT (100 >> $4::int)
) s
CROSS JOIN LATERAL (SELECT ST_AsMVTGeom(ST_Transform(s.__mg, 3857), ST_TileEnvelope($1::int, $2::int, $3::int), 256, 8, true) AS __mvt_geom, s."ok") t
