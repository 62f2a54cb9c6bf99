SELECT ST_AsMVT(t, 'default', 1024, '__mvt_geom'), count(*), coalesce(sum(a.__mn), 0)::int8
FROM (
  SELECT count(*) AS __mn, avg(m.x) AS __mx, avg(m.y) AS __my, sum(g."revenue")::float8 AS "total"
  FROM "public"."stores" g
  CROSS JOIN LATERAL (SELECT ST_Transform(g."geom", 3857) AS p) p
  CROSS JOIN LATERAL (SELECT ST_X(p.p) AS x, ST_Y(p.p) AS y) m
  WHERE g."geom" && ST_Transform(ST_ClipByBox2D(ST_Expand(ST_TileEnvelope($1::int, $2::int, $3::int), (1.2523442714243277e+06 / 2.0::float8 ^ $1::int)), ST_MakeEnvelope(-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244, 3857)), 2154)
  GROUP BY floor(m.x / (40075016.685578488 / 2.0::float8 ^ ($1::int + 9 - $4::int))), floor(m.y / (40075016.685578488 / 2.0::float8 ^ ($1::int + 9 - $4::int)))
  HAVING avg(m.x) BETWEEN -20037508.342789244 + $2::int * (40075016.685578488 / 2.0::float8 ^ $1::int) - (40075016.685578488 / 2.0::float8 ^ $1::int) * 0.03125 AND -20037508.342789244 + ($2::int + 1) * (40075016.685578488 / 2.0::float8 ^ $1::int) + (40075016.685578488 / 2.0::float8 ^ $1::int) * 0.03125
     AND avg(m.y) BETWEEN 20037508.342789244 - ($3::int + 1) * (40075016.685578488 / 2.0::float8 ^ $1::int) - (40075016.685578488 / 2.0::float8 ^ $1::int) * 0.03125 AND 20037508.342789244 - $3::int * (40075016.685578488 / 2.0::float8 ^ $1::int) + (40075016.685578488 / 2.0::float8 ^ $1::int) * 0.03125
) a
CROSS JOIN LATERAL (SELECT ST_MakePoint(round((a.__mx + 20037508.342789244 - $2::int * (40075016.685578488 / 2.0::float8 ^ $1::int)) * 1024 / (40075016.685578488 / 2.0::float8 ^ $1::int)), round((20037508.342789244 - $3::int * (40075016.685578488 / 2.0::float8 ^ $1::int) - a.__my) * 1024 / (40075016.685578488 / 2.0::float8 ^ $1::int))) AS __mvt_geom, a."total", a.__mn AS _carto_point_density) t
