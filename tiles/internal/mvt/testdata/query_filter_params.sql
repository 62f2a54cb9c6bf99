SELECT ST_AsMVT(t, 'default', 512, '__mvt_geom'), count(*), coalesce(max(s.__mn), 0)::int8
FROM (
  SELECT g."geom" AS __mg, g."kind"::text AS "kind", to_json(g."attrs")::text AS "attrs", count(*) OVER () AS __mn
  FROM (
SELECT * FROM stores WHERE kind = $1 -- trailing comment
) g
  WHERE g."geom" && ST_Transform(ST_ClipByBox2D(ST_Expand(ST_TileEnvelope($4::int, $5::int, $6::int), (1.2523442714243277e+06 / 2.0::float8 ^ $4::int)), ST_MakeEnvelope(-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244, 3857)), 4326)
  AND (g."revenue" BETWEEN $2 AND $3)
  ORDER BY (ST_XMax(postgis_getbbox(g."geom")) - ST_XMin(postgis_getbbox(g."geom"))) * (ST_YMax(postgis_getbbox(g."geom")) - ST_YMin(postgis_getbbox(g."geom"))) DESC, ST_XMin(postgis_getbbox(g."geom")), ST_YMin(postgis_getbbox(g."geom"))
  LIMIT (10000 >> $7::int)
) s
CROSS JOIN LATERAL (SELECT ST_AsMVTGeom(ST_Transform(ST_Simplify(ST_ClipByBox2D(s.__mg, (SELECT ST_Transform(ST_ClipByBox2D(ST_Expand(ST_TileEnvelope($4::int, $5::int, $6::int), (2.5046885428486555e+06 / 2.0::float8 ^ $4::int)), ST_MakeEnvelope(-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244, 3857)), 4326))), ((0.703125 / 2.0::float8 ^ $4::int) * 0.5 * 2.0::float8 ^ $7::int), true), 3857), ST_TileEnvelope($4::int, $5::int, $6::int), 512, 16, true) AS __mvt_geom, s."kind", s."attrs") t
