SELECT ST_AsMVT(t, 'default', 512, '__mvt_geom'), count(*), coalesce(max(s.__mn), 0)::int8
FROM (
  SELECT g."geom" AS __mg, g."name"::text AS "name", g."pop_est"::float8 AS "pop_est", count(*) OVER () AS __mn
  FROM "public"."admin1" g
  WHERE g."geom" && ST_Transform(ST_ClipByBox2D(ST_Expand(ST_TileEnvelope($1::int, $2::int, $3::int), (1.2523442714243277e+06 / 2.0::float8 ^ $1::int)), ST_MakeEnvelope(-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244, 3857)), 4326)
  AND greatest((ST_XMax(postgis_getbbox(g."geom")) - ST_XMin(postgis_getbbox(g."geom"))), (ST_YMax(postgis_getbbox(g."geom")) - ST_YMin(postgis_getbbox(g."geom")))) >= (0.703125 / 2.0::float8 ^ $1::int)
  ORDER BY (ST_XMax(postgis_getbbox(g."geom")) - ST_XMin(postgis_getbbox(g."geom"))) * (ST_YMax(postgis_getbbox(g."geom")) - ST_YMin(postgis_getbbox(g."geom"))) DESC, ST_XMin(postgis_getbbox(g."geom")), ST_YMin(postgis_getbbox(g."geom"))
  LIMIT (5000 >> $4::int)
) s
CROSS JOIN LATERAL (SELECT ST_AsMVTGeom(ST_Transform(ST_Simplify(ST_ClipByBox2D(s.__mg, (SELECT ST_Transform(ST_ClipByBox2D(ST_Expand(ST_TileEnvelope($1::int, $2::int, $3::int), (2.5046885428486555e+06 / 2.0::float8 ^ $1::int)), ST_MakeEnvelope(-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244, 3857)), 4326))), ((0.703125 / 2.0::float8 ^ $1::int) * 0.5 * 2.0::float8 ^ $4::int), true), 3857), ST_TileEnvelope($1::int, $2::int, $3::int), 512, 16, true) AS __mvt_geom, s."name", s."pop_est") t
